"""The analysis report of a fitted model: everything `nwb-jedi analyze` shows, computed once.

`analysis_report` computes, for a fitted JEDI and the trials it was fitted on:

- J's eigenvalues of every condition and the Jacobian's eigenvalues along every condition's
  noiseless trajectory (`nwb_jedi.analysis.spectra`);
- the fixed points of the chosen conditions (`nwb_jedi.analysis.fixedpoints`), searched once;
- the distances between condition embeddings (`nwb_jedi.analysis.embedding`);
- the predicted rates and scores on the held-out trials (all trials when there are none).

The result, an `AnalysisReport`, holds them as plain data: its `summary_lines` are the summary
`nwb-jedi analyze` prints, and the figures of `nwb_jedi.analysis.plots` are drawn from its
fields (no analysis runs again):

>>> report = analysis_report(model, ds)                                  # doctest: +SKIP
>>> print("\\n".join(report.summary_lines("my fit")))                    # doctest: +SKIP
>>> plots.plot_fixed_points(report.trajectories, report.fixed_points)    # doctest: +SKIP
>>> plots.plot_psth(report.rates, report.scored)                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nwb_jedi.analysis.embedding import embedding_distances
from nwb_jedi.analysis.fixedpoints import FixedPoints, fixed_points
from nwb_jedi.analysis.spectra import JacobianSpectrum, condition_spectra, jacobian_spectrum
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import UserError, first_few
from nwb_jedi.metrics import score_rates

__all__ = ["AnalysisReport", "analysis_report"]

#: Fixed-point search starts per condition (about a second per condition on a CPU).
FIXED_POINT_STARTS = 128

#: ``fixed_point_conditions="auto"`` searches every condition up to this many, else this many
#: spread evenly over the condition table (about a second each).
MAX_FIXED_POINT_CONDITIONS = 24

STABILITIES = ("stable", "saddle", "unstable")


@dataclass
class AnalysisReport:
    """Everything `analysis_report` computed about one fitted model.

    Attributes
    ----------
    model_name : str
        The estimator's class name (e.g. "JEDI").
    labels : list of str
        Condition labels, in the model's order.
    conditions : DataFrame
        The model's condition table.
    embeddings : ndarray (C, d)
        Condition embeddings.
    n_units, rank, embed_dim : int, int or None, int or None
        The model's size.
    n_bins, bin_size : int, float
        Trial length (bins) and bin width (s) of the data; trajectories are `n_bins` long.
    j_spectra : dict of label -> ndarray
        Nonzero eigenvalues of each condition's J, by decreasing modulus.
    jacobian_spectra : dict of label -> JacobianSpectrum
        Jacobian eigenvalues at each state of each condition's noiseless trajectory (its
        ``states`` are the trajectory).
    fixed_points : dict of label -> FixedPoints
        Fixed points of the chosen conditions.
    fixed_point_choice : str
        How those conditions were chosen (e.g. "every condition"), for the summary.
    distances : ndarray (C, C)
        Euclidean distances between condition embeddings.
    scored : TrialDataset
        The trials scored: the held-out (test) trials, or all trials when there are none.
    held_out : bool
        Whether `scored` are held-out trials.
    rates : ndarray (K, T, N)
        The model's predicted rates (Hz) on `scored`.
    scores : dict
        Metrics of `rates` on `scored` (as ``model.evaluate``).
    history : dict or None
        The training history (``train_loss``, ``val_loss`` ... per epoch), if recorded.
    """

    model_name: str
    labels: list[str]
    conditions: pd.DataFrame
    embeddings: np.ndarray
    n_units: int
    rank: int | None
    embed_dim: int | None
    n_bins: int
    bin_size: float
    j_spectra: dict[str, np.ndarray]
    jacobian_spectra: dict[str, JacobianSpectrum]
    fixed_points: dict[str, FixedPoints]
    distances: np.ndarray
    scored: TrialDataset
    held_out: bool
    rates: np.ndarray
    scores: dict[str, float]
    history: dict | None = None
    fixed_point_choice: str = ""

    @property
    def leading_real(self) -> dict[str, float]:
        """Largest real part of each condition's J eigenvalues (stability boundary: 1)."""
        return {lab: float(np.max(ev.real)) if len(ev) else float("nan")
                for lab, ev in self.j_spectra.items()}

    @property
    def leading_modulus(self) -> dict[str, float]:
        """Largest |eigenvalue| of each condition's J."""
        return {lab: float(np.max(np.abs(ev))) for lab, ev in self.j_spectra.items()}

    @property
    def spectral_radius(self) -> dict[str, float]:
        """Largest Jacobian |eigenvalue| along each condition's trajectory (NaN if empty)."""
        return {lab: float(np.abs(s.eigenvalues).max()) if s.eigenvalues.size else float("nan")
                for lab, s in self.jacobian_spectra.items()}

    @property
    def trajectories(self) -> dict[str, np.ndarray]:
        """Noiseless trajectories (n_bins, N) of the conditions whose fixed points were found."""
        return {lab: self.jacobian_spectra[lab].states for lab in self.fixed_points}

    @property
    def has_history(self) -> bool:
        """Whether a training history with at least one epoch was recorded."""
        return bool(self.history) and len(self.history.get("train_loss", [])) > 0

    def fixed_point_counts(self) -> dict[str, dict[str, int]]:
        """Per searched condition, how many fixed points are stable, saddles or unstable."""
        return {lab: {kind: int(np.sum(fps.stability == kind)) for kind in STABILITIES}
                for lab, fps in self.fixed_points.items()}

    def closest_pair(self) -> tuple[str, str, float] | None:
        """The two conditions with the closest embeddings and their distance (None if < 2)."""
        n = len(self.labels)
        if n < 2:
            return None
        i, j = np.unravel_index(np.argmin(self.distances + np.diag(np.full(n, np.inf))),
                                self.distances.shape)
        return self.labels[i], self.labels[j], float(self.distances[i, j])

    def summary_lines(self, name: str) -> list[str]:
        """The summary of `nwb-jedi analyze`, one finding per line; `name` heads it (e.g. the
        file the model was read from)."""
        lines = [f"{name}: {self.model_name} with {len(self.labels)} conditions, "
                 f"{self.n_units} neurons, rank {self.rank}, embedding size {self.embed_dim}, "
                 f"{self.n_bins} bins of {self.bin_size * 1e3:g} ms"]
        lines += self._spectra_lines()
        if self.fixed_points:
            lines.append(self._fixed_point_line())
        pair = self.closest_pair()
        if pair is not None:
            off = self.distances[~np.eye(len(self.labels), dtype=bool)]
            lines.append(f"embedding distances: median {np.median(off):.3f}; closest pair "
                         f"{pair[0]} / {pair[1]} ({pair[2]:.3f})")
        which = "held-out" if self.held_out else "all"
        s = self.scores
        lines.append(f"{which} trials ({self.scored.n_trials}): bits/spike "
                     f"{s['bits_per_spike']:.3f}, PSTH R² (smoothed) "
                     f"{s['psth_r2_smoothed']:.3f}, single-trial R² {s['r2']:.3f}")
        return lines

    def _spectra_lines(self) -> list[str]:
        """J's spectrum against Re λ = 1 and DF's against |λ| = 1: each matrix against its
        own stability boundary (see `nwb_jedi.analysis.plots.plot_eigenvalues`)."""
        real, radius = self.leading_real, self.spectral_radius
        lo, hi = min(real, key=real.get), max(real, key=real.get)
        beyond = sum(v > 1 for v in real.values())
        j_line = (f"J (connectivity) eigenvalues: largest Re λ {real[lo]:.3f} ({lo}) to "
                  f"{real[hi]:.3f} ({hi}); " + (
                      "every condition below Re λ = 1, the boundary for J" if not beyond else
                      f"{beyond} condition(s) beyond Re λ = 1, the boundary for J at x = 0 "
                      f"(away from 0, where tanh′ < 1, the step Jacobian decides)"))
        expanding = sum(v > 1 for v in radius.values())
        df_line = (f"step Jacobian DF along trajectories: spectral radius "
                   f"{min(radius.values()):.3f} to {max(radius.values()):.3f}; " + (
                       "inside |λ| = 1 in every condition (locally contracting)"
                       if not expanding else
                       f"beyond |λ| = 1 in {expanding} condition(s) (locally expanding there)"))
        return [j_line, df_line]

    def _fixed_point_line(self) -> str:
        counts = self.fixed_point_counts()
        totals = {kind: sum(c[kind] for c in counts.values()) for kind in STABILITIES}
        total = ", ".join(f"{v} {k}" for k, v in totals.items()) or "none"
        per = "; ".join(f"{lab}: " + (", ".join(f"{v} {k}" for k, v in kinds.items() if v)
                                      or "none") for lab, kinds in counts.items())
        choice = f", {self.fixed_point_choice}" if self.fixed_point_choice else ""
        return (f"fixed points of {len(counts)} of {len(self.labels)} conditions{choice} "
                f"(stable: DF's eigenvalues all inside |λ| = 1): {total}; {per}")


def analysis_report(model, dataset: TrialDataset, *,
                    fixed_point_conditions: int | str | Sequence[int | str] = "auto",
                    seed: int = 0,
                    n_initial: int = FIXED_POINT_STARTS,
                    log: Callable[[str], None] | None = None) -> AnalysisReport:
    """Analyse a fitted model's dynamics, embeddings and fit, each analysis run once.

    Parameters
    ----------
    model : fitted JEDI
    dataset : TrialDataset
        The trials the model was fitted on, with their split (e.g. `load_dataset` of a file
        written by `nwb-jedi fit`); trajectories are as long as its trials, and the fit is
        scored on its test trials (all trials when it has none).
    fixed_point_conditions : "auto", "all", int or sequence of int or str
        Where to search fixed points: "auto" (default) every condition up to
        `MAX_FIXED_POINT_CONDITIONS`, else that many spread evenly over the condition table;
        "all"; the first N conditions; or these (rows or labels). The report says which.
    seed : int
        Seed of the fixed-point search's starts.
    n_initial : int
        Starts of the fixed-point search per condition.
    log : callable, optional
        Called with a short progress message before each slow step.

    Returns
    -------
    AnalysisReport
    """
    say = log or (lambda message: None)
    labels = list(model.conditions_["label"].astype(str))
    chosen, choice = _chosen_conditions(fixed_point_conditions, labels)
    n_steps = dataset.n_bins

    # Spectra: J's eigenvalues (the low-rank connectivity) and the Jacobian along the
    # trajectory (the local linear dynamics the data actually visit).
    say("spectra ...")
    j_spectra = condition_spectra(model)
    jacobian = {lab: jacobian_spectrum(model, i, n_steps=n_steps) for i, lab in enumerate(labels)}
    found = {}
    if chosen:
        say(f"fixed points of {len(chosen)} condition(s) ...")
        found = {labels[c]: fixed_points(model, c, n_initial=n_initial, n_steps=n_steps,
                                         seed=seed) for c in chosen}

    # The fit itself, on held-out trials when the dataset has them.
    test = dataset.test
    held_out = test.n_trials > 0
    scored = test if held_out else dataset
    rates = model.predict_rates(scored)
    return AnalysisReport(
        model_name=type(model).__name__, labels=labels, conditions=model.conditions_,
        embeddings=np.asarray(model.embeddings_), n_units=model.n_units_,
        rank=getattr(model, "rank", None), embed_dim=getattr(model, "embed_dim", None),
        n_bins=dataset.n_bins, bin_size=dataset.bin_size, j_spectra=j_spectra,
        jacobian_spectra=jacobian, fixed_points=found, distances=embedding_distances(model),
        scored=scored, held_out=held_out, rates=rates, scores=score_rates(rates, scored),
        history=_history(model), fixed_point_choice=choice)


def _chosen_conditions(which: int | str | Sequence[int | str], labels: list[str]
                       ) -> tuple[list[int], str]:
    """Rows of the conditions whose fixed points are searched, and how they were chosen."""
    n = len(labels)
    if isinstance(which, str) and which in ("auto", "all"):
        if which == "all" or n <= MAX_FIXED_POINT_CONDITIONS:
            return list(range(n)), "every condition"
        rows = np.unique(np.linspace(0, n - 1, MAX_FIXED_POINT_CONDITIONS).round().astype(int))
        return [int(r) for r in rows], "spread evenly over the conditions"
    if isinstance(which, int | np.integer):
        if which < 0:
            raise UserError(f"fixed_point_conditions must be 0 or more, got {which}")
        rows = list(range(min(int(which), n)))
        return rows, ("every condition" if len(rows) == n else
                      "the first one" if len(rows) == 1 else f"the first {len(rows)}")
    if isinstance(which, str):
        raise UserError(f"fixed_point_conditions must be 'auto', 'all', a number or condition "
                        f"labels, got {which!r}")
    rows = []
    for c in which:
        if isinstance(c, int | np.integer) and 0 <= c < n:
            rows.append(int(c))
        elif str(c) in labels:
            rows.append(labels.index(str(c)))
        else:
            raise UserError(f"unknown condition {c!r}; known: {first_few(labels)}")
    return rows, "chosen by name"


def _history(model) -> dict | None:
    history = getattr(model, "history_", None)  # NotFittedError is an AttributeError
    return dict(history) if isinstance(history, Mapping) else None
