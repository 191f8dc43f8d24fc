"""The training schedule: warm-up, decay on plateau, stopping, recovery from loss spikes and
the moving average of the parameters, on small problems whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nwb_jedi.model.train import Schedule, run_training


class Toy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.tensor([4.0]))


def _fit(val_losses=None, spike_at=None, spike=float("nan"), **kwargs):
    """Fit p to 0 with a squared loss; the validation loss can be scripted per epoch. At epoch
    `spike_at` the training loss is `spike` (NaN: not finite; a number: added to the loss,
    which leaves its gradient as it is)."""
    module = Toy()
    calls = {"epoch": 0, "batch": 0}
    n_items, batch_size = 8, 4

    def batch_loss(batch, local, net):
        calls["batch"] += 1
        epoch = (calls["batch"] - 1) // (n_items // batch_size)
        if spike_at is not None and epoch == spike_at:
            if math.isnan(spike):
                return net.p.sum() * spike
            return (net.p ** 2).sum() + spike
        return (net.p ** 2).sum()

    def val_loss():
        calls["epoch"] += 1
        if val_losses is None:
            return float((module.p ** 2).sum())
        return val_losses(calls["epoch"])

    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    history = run_training(batch_loss, n_items, optimizer, list(module.parameters()), module,
                           val_loss=val_loss, batch_size=batch_size, grad_clip=None,
                           **kwargs)
    return module, history


def test_warm_up_then_decay_on_each_plateau_then_stop():
    schedule = Schedule(patience=3, decay=0.5, n_decays=2, warmup=4, min_epochs=0)
    # Improves for 10 epochs, then never again.
    _, history = _fit(val_losses=lambda e: 1.0 / e if e <= 10 else 1.0, schedule=schedule,
                      max_epochs=100)
    scales = history["lr_scale"]
    assert scales[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert scales[4:10] == [1.0] * 6
    # Plateau from epoch 11: 3 stale epochs at 1.0, then 3 at 0.5, then 3 at 0.25, then stop.
    assert scales[10:] == [1.0] * 3 + [0.5] * 3 + [0.25] * 3
    assert len(history["epoch"]) == 19
    assert schedule.epochs_left(0, 0) == 9


def test_no_fit_ends_before_min_epochs_and_the_budget_is_a_cap():
    flat = Schedule(patience=1, decay=0.5, n_decays=0, warmup=0, min_epochs=12)
    _, history = _fit(val_losses=lambda e: 1.0, schedule=flat, max_epochs=100)
    assert len(history["epoch"]) == 12
    _, history = _fit(val_losses=lambda e: 1.0 / e, schedule=Schedule(warmup=0),
                      max_epochs=7)
    assert len(history["epoch"]) == 7


def test_a_spike_restores_the_best_state_at_a_lower_rate_instead_of_ending_flat():
    schedule = Schedule(patience=50, decay=0.5, n_decays=3, warmup=0, min_epochs=0)
    module, history = _fit(spike_at=5, schedule=schedule, max_epochs=16)
    assert not math.isfinite(history["train_loss"][5])
    assert history["lr_scale"][6] == 0.5  # lowered after the spike
    assert len(history["epoch"]) == 16  # and the fit went on from the best state
    p = float(module.p.detach())
    # 10 steps at 0.8 per step, then 20 at 0.9: p = 4 * 0.8^10 * 0.9^20
    assert p == pytest.approx(4 * 0.8 ** 10 * 0.9 ** 20, rel=1e-4)


def test_a_finite_loss_that_undoes_the_progress_is_a_spike_too():
    schedule = Schedule(patience=50, decay=0.5, n_decays=3, warmup=0, min_epochs=0)
    module, history = _fit(spike_at=5, spike=100.0, schedule=schedule, max_epochs=16)
    assert 100 < history["train_loss"][5] < 101
    assert history["lr_scale"][6] == 0.5
    # The epoch's own steps were undone: 10 steps at 0.8, then 20 at 0.9 (not 32 steps).
    assert float(module.p.detach()) == pytest.approx(4 * 0.8 ** 10 * 0.9 ** 20, rel=1e-4)
    # A loss that rises by less than the criterion is not a spike.
    _, history = _fit(spike_at=5, spike=1e-9, schedule=schedule, max_epochs=16)
    assert history["lr_scale"][6] == 1.0


def test_the_moving_average_is_what_is_validated_and_kept():
    plain, _ = _fit(schedule=Schedule(warmup=0), max_epochs=5)
    averaged, _ = _fit(schedule=Schedule(warmup=0), max_epochs=5, ema=0.9)
    # p shrinks toward 0 geometrically; its average lags behind it.
    assert abs(float(averaged.p.detach())) > abs(float(plain.p.detach())) > 0
    expected = 4.0
    p = 4.0
    for step in range(1, 5 * 2 + 1):
        p *= 1 - 2 * 0.1
        decay = min(0.9, (1 + step) / (10 + step))  # the decay warms up over the first steps
        expected = decay * expected + (1 - decay) * p
    assert float(averaged.p.detach()) == pytest.approx(expected, rel=1e-5)


def test_bad_schedule_settings_are_refused():
    from nwb_jedi.errors import UserError
    from nwb_jedi.model.jedi import JEDI

    for params in ({"lr_decay": 1.0}, {"lr_decay": 0}, {"ema": 1.0}, {"ema": -0.1},
                   {"n_decays": -1}, {"warmup": 1.5}, {"min_epochs": -2}):
        with pytest.raises(UserError):
            JEDI(**params)._check_params()
    assert np.isfinite(JEDI(ema=0.99).ema)
