"""The package's layers import one way, with no cycle, lazy (function-level) imports included.

Layers, lowest first (DESIGN §2): errors/_version/_files/_runtime/_limits → data → metrics →
model | synthetic → analysis | io → datasets → commands → cli → the top-level facade. A module may
import from its own subpackage and from lower layers only; two subpackages on the same layer
(model and synthetic, analysis and io) do not import each other. Inside the package nobody
imports the top-level facade (`nwb_jedi/__init__.py`), which lazily re-exports everything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nwb_jedi"

LAYERS = {
    "_version": 0, "errors": 0, "_files": 0, "_runtime": 0, "_limits": 0,
    "data": 1,
    "metrics": 2,
    "model": 3, "synthetic": 3,
    "analysis": 4, "io": 4,
    "datasets": 5,
    "commands": 6,
    "cli": 7,
    "__main__": 8,
}
FACADE = "nwb_jedi"


def module_names(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under the package directory `root`."""
    names = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imports_of(path: Path, modules: dict[str, Path], package: str) -> set[str]:
    """Package modules that `path` imports anywhere (module level or inside functions), by
    import statements or ``import_module("literal")`` calls."""
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                targets.append(sub if sub in modules else node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                node.func, "attr", None)) == "import_module" and node.args and isinstance(
                node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            targets = [node.args[0].value]
        for target in targets:
            if target == package or target.startswith(package + "."):
                # the longest package module that the dotted name starts with
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                found.add(target)
    return found


def layer_of(module: str, package: str) -> tuple[int, str]:
    if module == package:
        return max(LAYERS.values()) + 1, package
    top = module.split(".")[1]
    return LAYERS[top], top


def violations(root: Path, package: str) -> tuple[list[str], list[list[str]]]:
    """Imports against the layers, and import cycles, in the package at `root`."""
    modules = module_names(root)
    graph = {name: imports_of(path, modules, package) - {name} for name, path in modules.items()}
    wrong = []
    for name, targets in graph.items():
        if name == package:
            continue
        level, top = layer_of(name, package)
        for target in targets:
            t_level, t_top = layer_of(target, package)
            if t_top == top:
                continue
            if target == package:
                wrong.append(f"{name} imports the top-level facade {package}")
            elif t_level >= level:
                wrong.append(f"{name} (layer {top}) imports {target} (layer {t_top})")
    return sorted(wrong), find_cycles(graph)


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_every_module_has_a_layer():
    for name in module_names(PACKAGE):
        if name != FACADE:
            assert name.split(".")[1] in LAYERS, f"{name} has no layer in this test"


def test_imports_run_one_way_without_cycles():
    wrong, cycles = violations(PACKAGE, FACADE)
    assert wrong == []
    assert cycles == []


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "nwb_jedi"


@pytest.mark.parametrize("files, expected", [
    ({"model/base.py": "def f():\n    from nwb_jedi.analysis import spectra\n"},
     "nwb_jedi.model.base (layer model) imports nwb_jedi.analysis.spectra (layer analysis)"),
    ({"data/x.py": "from nwb_jedi.io.read import y\n"},
     "nwb_jedi.data.x (layer data) imports nwb_jedi.io.read (layer io)"),
    ({"analysis/a.py": "from importlib import import_module\nimport_module('nwb_jedi.io.read')\n"},
     "nwb_jedi.analysis.a (layer analysis) imports nwb_jedi.io.read (layer io)"),
    ({"metrics.py": "from nwb_jedi import TrialDataset\n"},
     "nwb_jedi.metrics imports the top-level facade nwb_jedi"),
])
def test_the_check_catches_an_import_against_the_layers(tmp_path, files, expected):
    base = {"__init__.py": "", "model/__init__.py": "", "analysis/__init__.py": "",
            "analysis/spectra.py": "", "io/__init__.py": "", "io/read.py": "y = 1\n",
            "data/__init__.py": ""}
    root = _write(tmp_path, {f"nwb_jedi/{k}": v for k, v in {**base, **files}.items()})
    wrong, _ = violations(root, "nwb_jedi")
    assert wrong == [expected]


def test_the_check_catches_a_lazy_cycle(tmp_path):
    root = _write(tmp_path, {
        "nwb_jedi/__init__.py": "",
        "nwb_jedi/analysis/__init__.py": "",
        "nwb_jedi/analysis/a.py": "def f():\n    from nwb_jedi.analysis import b\n",
        "nwb_jedi/analysis/b.py": "from nwb_jedi.analysis.a import f\n",
    })
    _, cycles = violations(root, "nwb_jedi")
    assert cycles == [["nwb_jedi.analysis.a", "nwb_jedi.analysis.b"]]
