"""Evaluation protocols that need a fitted model: co-smoothing (Neural Latents Benchmark).

The array-level metrics these protocols report live in `nwb_jedi.metrics`.
"""

from __future__ import annotations

import numpy as np

from nwb_jedi.metrics import bits_per_spike

__all__ = ["co_smoothing_bits_per_spike"]


def co_smoothing_bits_per_spike(model, ds, heldout: np.ndarray, *, per_trial: bool = False,
                                max_epochs: int | None = None) -> float:
    """Co-smoothing bits per spike (NLB protocol) of a fitted JEDI on the trials of `ds`.

    The model (fitted on training trials with all neurons) infers embeddings for `ds` from the
    held-in neurons only (``infer_embeddings(ds, unit_mask=~heldout)``: the network is frozen),
    then predicts every neuron; the score is the bits per spike of the held-out neurons, which
    the inference never saw.

    Parameters
    ----------
    model : fitted JEDI
    ds : TrialDataset
        Evaluation trials (held out from training).
    heldout : array of bool (N,)
        Neurons to score (see `heldout_unit_mask`).
    per_trial : bool
        Infer a per-trial embedding offset as well as the condition embeddings.
    max_epochs : int, optional
        Budget of the inference.
    """
    heldout = np.asarray(heldout, dtype=bool)
    if heldout.shape != (ds.n_units,) or not heldout.any() or heldout.all():
        raise ValueError("heldout must be a boolean mask over the neurons with at least one "
                         "held-out and one held-in neuron")
    inferred = model.infer_embeddings(ds, per_trial=per_trial, unit_mask=~heldout,
                                      max_epochs=max_epochs)
    rates = inferred.predict_rates(ds)
    return bits_per_spike(rates, ds.counts, ds.bin_size, units=heldout)
