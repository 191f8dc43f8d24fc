"""The ``ndx-jedi`` NWB extension: fitted JEDI models and their results inside NWB.

Importing this module loads the namespace (the YAML shipped next to this file, built by
`nwb_jedi.io.ndx.spec`) into pynwb's type map, once, and exposes the container classes that
pynwb generates from the spec. Files written with them cache the spec, so they open in plain
pynwb on machines without nwb_jedi.

Types
-----
JEDIModel            fitted model: config, fit state, provenance, one JEDIParameter per tensor
JEDIParameter        one parameter tensor (dataset), original tensor name in 'tensor_name'
JEDIConditionTable   one row per condition: defining values, label, embedding, trial count
JEDITrialTable       one row per modelled trial: trial id, its row in /intervals/trials,
                     condition, split, alignment time, embedding, its event in the counts and
                     its samples in the rates
JEDIModelledData     bin size, bin centers, unit ids and settings of the modelled dataset (its
                     counts are an ndx-binned-spikes BinnedAlignedSpikes next to it)
JEDIBinnedCounts     the modelled counts as ndx-jedi 0.1 stored them (read, no longer written)
JEDIMetricsTable     metric, value, split
JEDIEigenvalueTable  per-condition eigenvalues of the connectivity (real, imag)
"""

from __future__ import annotations

from pynwb import get_class, load_namespaces
from pynwb import get_type_map as _get_type_map

from nwb_jedi.io.ndx.spec import NAMESPACE, SPEC_DIR, VERSION

NAMESPACE_PATH = SPEC_DIR / f"{NAMESPACE}.namespace.yaml"


def load_namespace() -> None:
    """Load the ``ndx-jedi`` namespace into pynwb's global type map (idempotent)."""
    if NAMESPACE not in _get_type_map().namespace_catalog.namespaces:
        load_namespaces(str(NAMESPACE_PATH))


load_namespace()

JEDIParameter = get_class("JEDIParameter", NAMESPACE)
JEDIModel = get_class("JEDIModel", NAMESPACE)
JEDIConditionTable = get_class("JEDIConditionTable", NAMESPACE)
JEDITrialTable = get_class("JEDITrialTable", NAMESPACE)
JEDIModelledData = get_class("JEDIModelledData", NAMESPACE)
JEDIBinnedCounts = get_class("JEDIBinnedCounts", NAMESPACE)
JEDIMetricsTable = get_class("JEDIMetricsTable", NAMESPACE)
JEDIEigenvalueTable = get_class("JEDIEigenvalueTable", NAMESPACE)

__all__ = [
    "NAMESPACE", "NAMESPACE_PATH", "VERSION", "JEDIBinnedCounts", "JEDIConditionTable",
    "JEDIEigenvalueTable", "JEDIMetricsTable", "JEDIModel", "JEDIModelledData",
    "JEDIParameter", "JEDITrialTable",
    "load_namespace",
]
