"""JEDI recovers a teacher RNN's rates on held-out trials (small synthetic ground truth)."""

import time

import pytest

from nwb_jedi import JEDI
from nwb_jedi.metrics import pooled_r2, rate_r2
from nwb_jedi.synthetic import make_dataset


@pytest.fixture(scope="module")
def dm_data():
    # A 40-unit teacher trained on perceptual decisions (cached after the first run, ~5 s).
    return make_dataset(("dm",), n_units=40, trials_per_condition=20, seed=0, max_iters=300)


def test_teacher_solved_its_task(dm_data):
    info = dm_data.ground_truth["teacher_info"]
    assert info["converged"] and info["performance"]["dm"] == 1.0


def test_small_fit_recovers_teacher_rates_on_held_out_trials(dm_data):
    start = time.perf_counter()
    model = JEDI(lr=1e-2, embed_lr=3e-2, max_epochs=300, patience=50, device="cpu",
                 seed=0).fit(dm_data.train, dm_data.val)
    seconds = time.perf_counter() - start
    test = dm_data.test
    pred = model.predict_rates(test)
    truth = dm_data.ground_truth["rates"][test.condition]  # noiseless teacher rates
    r2 = pooled_r2(pred, truth)
    per_neuron = rate_r2(pred, truth)
    print(f"held-out R² vs teacher rates: pooled {r2:.3f}, mean over neurons {per_neuron:.3f}, "
          f"{model.n_epochs_} epochs in {seconds:.1f} s")
    assert r2 >= 0.8
