"""The estimators (JEDI and its baselines) and their torch building blocks (no NWB here).

`estimator_from_state` rebuilds any fitted estimator from the JSON config and numpy tensors
that its ``get_state()`` returned (the form stored in NWB files), choosing the class by the
config's ``format`` name; it never unpickles or evaluates anything.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import numpy as np

from nwb_jedi.errors import ModelFileError

# format name stored in a model's config -> (module, class) that reads it back
FORMATS = {
    "nwb_jedi.JEDI": ("nwb_jedi.model.jedi", "JEDI"),
    "nwb_jedi.PerConditionRNN": ("nwb_jedi.model.baselines", "PerConditionRNN"),
    "nwb_jedi.SharedRNN": ("nwb_jedi.model.baselines", "SharedRNN"),
    "nwb_jedi.PSTHBaseline": ("nwb_jedi.model.baselines", "PSTHBaseline"),
    "nwb_jedi.SmoothingGLM": ("nwb_jedi.model.baselines", "SmoothingGLM"),
    "nwb_jedi.PSTHResidualGLM": ("nwb_jedi.model.baselines", "PSTHResidualGLM"),
}


def estimator_from_state(config: dict[str, Any], tensors: dict[str, np.ndarray]):
    """Rebuild a fitted estimator from ``get_state()`` output, refusing unknown formats.

    Raises
    ------
    ModelFileError
        The config names no known estimator format, or the state is malformed.
    """
    name = config.get("format") if isinstance(config, dict) else None
    if name not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise ModelFileError(f"this is not a model nwb_jedi can load (its config names format "
                             f"{name!r}; known: {known}); the file is damaged or was written "
                             f"by another program")
    module, cls = FORMATS[name]
    return getattr(import_module(module), cls).from_state(config, tensors)


__all__ = ["FORMATS", "estimator_from_state"]
