"""The benchmark scripts (``benchmarks/*.py``, not a package) as modules for their tests.

Each script is loaded from its file path with importlib, under a name of its own, so no test
puts ``benchmarks/`` on ``sys.path`` (where its modules could shadow others).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """The script ``benchmarks/<name>.py`` as a module (loaded once per test session)."""
    module_name = f"nwb_jedi_benchmarks_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses look their module up in sys.modules.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


@pytest.fixture(scope="session")
def validate() -> ModuleType:
    """``benchmarks/validate.py``."""
    return load_benchmark("validate")


@pytest.fixture(scope="session")
def nlb_crosscheck() -> ModuleType:
    """``benchmarks/nlb_crosscheck.py``."""
    return load_benchmark("nlb_crosscheck")


@pytest.fixture(scope="session")
def sweep_single_trials() -> ModuleType:
    """``benchmarks/sweep_single_trials.py``."""
    return load_benchmark("sweep_single_trials")
