"""Deprecated location of `nwb_jedi.metrics`, kept as a re-export for one release.

The array-level metrics moved to `nwb_jedi.metrics` (below the models, which report them);
`co_smoothing_bits_per_spike`, which needs a fitted model, moved to
`nwb_jedi.analysis.evaluation`. Import from there.
"""

import warnings

from nwb_jedi.analysis.evaluation import co_smoothing_bits_per_spike
from nwb_jedi.metrics import *  # noqa: F403
from nwb_jedi.metrics import __all__ as _moved

warnings.warn("nwb_jedi.analysis.metrics moved to nwb_jedi.metrics (and co-smoothing to "
              "nwb_jedi.analysis.evaluation); this alias will be removed in the next release",
              DeprecationWarning, stacklevel=2)

__all__ = [*_moved, "co_smoothing_bits_per_spike"]
