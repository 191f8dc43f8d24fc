"""Plain data objects and the steps that turn a Session into a TrialDataset (no NWB here)."""

from nwb_jedi.data.dataset import TrialDataset

__all__ = ["TrialDataset"]
