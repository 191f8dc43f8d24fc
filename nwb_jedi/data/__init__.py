"""Plain data objects and the steps that turn a Session into a TrialDataset (no NWB here)."""

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.data.provenance import Provenance

__all__ = ["Provenance", "TrialDataset"]
