"""Test modules share helpers through fixtures (conftest.py) or plain helper modules, never by
importing another test module or a conftest (pytest imports those itself, under other names,
so an import runs them twice and ties one test file to another's internals)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _imported_modules(path: Path) -> list[str]:
    """The last part of every module imported by `path` (relative imports included)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name.rsplit(".", 1)[-1] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                names.append(node.module.rsplit(".", 1)[-1])
            else:  # from . import conftest
                names += [alias.name for alias in node.names]
    return names


def test_no_test_file_imports_a_test_module_or_a_conftest():
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        for name in _imported_modules(path):
            if name == "conftest" or name.startswith("test_"):
                offenders.append(f"{path.relative_to(TESTS)} imports {name}")
    assert not offenders, ("move the shared helper into a fixture (conftest.py) or a plain "
                           "helper module: " + "; ".join(offenders))


def test_the_check_sees_every_form_of_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import tests.model.test_jedi\nfrom .conftest import X\n"
                      "from . import conftest\nfrom tests.cli.test_fit import run_cli\n")
    assert _imported_modules(sample) == ["test_jedi", "conftest", "conftest", "test_fit"]
