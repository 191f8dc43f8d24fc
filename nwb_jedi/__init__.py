"""nwb_jedi: one model of population dynamics across many behavioral conditions, from NWB.

JEDI (Jointly Embedded Inference of Neural Dynamics; Jamkhandi, Korojy, Codol, Lajoie, Perich,
2026) maps a learned embedding per condition, through a hypernetwork, to the weights of a
low-rank data-constrained RNN whose units are the recorded neurons.
"""

from importlib import import_module

from nwb_jedi._version import __version__
from nwb_jedi.data.dataset import TrialDataset

# Names resolved on first use, so `import nwb_jedi` stays cheap (no torch, pynwb or
# matplotlib until a name that needs them is used).
_LAZY = {
    "JEDI": "nwb_jedi.model.jedi",
    "read_session": "nwb_jedi.io.read",
    "Session": "nwb_jedi.data.session",
    "ConditionMapper": "nwb_jedi.data.conditions",
    "write_results": "nwb_jedi.io.write",
    "load_model": "nwb_jedi.io.load",
    "load_dataset": "nwb_jedi.io.load",
    "metrics": "nwb_jedi.metrics",
    "analysis": "nwb_jedi.analysis",
    "synthetic": "nwb_jedi.synthetic",
    "datasets": "nwb_jedi.datasets",
}


def __getattr__(name: str):
    if name in _LAZY:
        module = import_module(_LAZY[name])
        value = module if module.__name__.endswith(name) else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nwb_jedi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = ["__version__", "TrialDataset", *_LAZY]
