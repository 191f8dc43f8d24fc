"""Regenerate docs/quickstart_figure.png: `nwb-jedi fit` then `nwb-jedi analyze` on the embedded
data (package defaults), with the embeddings and eigenvalue figures side by side.

Usage: python scripts/readme_figure.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        fit = os.path.join(tmp, "jedi_fit.nwb")
        figures = os.path.join(tmp, "figures")
        cli = [sys.executable, "-m", "nwb_jedi"]
        subprocess.run([*cli, "fit", "--out", fit, "--quiet"], check=True)
        subprocess.run([*cli, "analyze", fit, "--out", figures, "--quiet"], check=True)
        panels = [plt.imread(os.path.join(figures, name))
                  for name in ("embeddings.png", "eigenvalues.png")]
        fig, axes = plt.subplots(1, 2, figsize=(12, 5), dpi=120,
                                 gridspec_kw={"width_ratios": [p.shape[1] / p.shape[0]
                                                               for p in panels]})
        for ax, panel in zip(axes, panels, strict=True):
            ax.imshow(panel)
            ax.axis("off")
        fig.tight_layout()
        out = os.path.join(ROOT, "docs", "quickstart_figure.png")
        fig.savefig(out + ".tmp.png", bbox_inches="tight")
        os.replace(out + ".tmp.png", out)
        print(out)


if __name__ == "__main__":
    main()
