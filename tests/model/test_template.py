"""The estimator template: one fitting setup for JEDI and the RNN baselines, the same checks
for every estimator, the scikit-learn edges, and state that every estimator can save."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.errors import NotFittedError, UserError
from nwb_jedi.model import estimator_from_state
from nwb_jedi.model.baselines import (
    PerConditionRNN,
    PSTHBaseline,
    PSTHResidualGLM,
    SharedRNN,
    SmoothingGLM,
)
from nwb_jedi.model.jedi import JEDI

SMALL = dict(rank=2, max_epochs=4, patience=2, batch_size=8, device="cpu", seed=0)
ESTIMATORS = {
    "JEDI": lambda: JEDI(hidden=16, embed_dim=3, **SMALL),
    "PerConditionRNN": lambda: PerConditionRNN(**SMALL),
    "SharedRNN": lambda: SharedRNN(**SMALL),
    "PSTHBaseline": lambda: PSTHBaseline(),
    "SmoothingGLM": lambda: SmoothingGLM(heldout=np.arange(8) % 3 == 0),
    "PSTHResidualGLM": lambda: PSTHResidualGLM(heldout=np.arange(8) % 3 == 0),
}


def _dataset(n_units: int = 8, seed: int = 0, unit_offset: int = 0) -> TrialDataset:
    rng = np.random.default_rng(seed)
    cond = np.repeat(np.arange(3), 8)
    counts = rng.poisson(0.4 + 0.3 * cond[:, None, None], size=(len(cond), 12, n_units))
    return TrialDataset.from_arrays(counts, [f"c{c}" for c in cond], 0.02, seed=seed,
                                    unit_ids=np.arange(n_units) + unit_offset)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_validation_data_of_other_neurons_is_one_user_error(name):
    train = _dataset().train
    for other in (_dataset(n_units=9).val, _dataset(unit_offset=100).val):
        with pytest.raises(UserError, match="neurons|unit ids"):
            ESTIMATORS[name]().fit(train, other)


@pytest.mark.parametrize("name", ESTIMATORS)
def test_unfitted_attributes_are_attribute_errors_and_score_is_a_number(name):
    model = ESTIMATORS[name]()
    with pytest.raises(NotFittedError):
        model.predict_rates(_dataset())
    with pytest.raises(AttributeError):
        model.get_state()
    if name == "JEDI":
        assert not hasattr(model, "embeddings_")
    ds = _dataset()
    model.fit(ds.train, ds.val)
    score = model.score(ds.test)
    assert isinstance(score, float)
    assert score == pytest.approx(model.evaluate(ds.test)["bits_per_spike"])


@pytest.mark.parametrize("name", ESTIMATORS)
def test_every_estimator_round_trips_through_its_state(name, tmp_path):
    ds = _dataset()
    model = ESTIMATORS[name]().fit(ds.train, ds.val)
    config, tensors = model.get_state()
    assert config["format"] == f"nwb_jedi.{name}"
    again = estimator_from_state(config, tensors)
    assert type(again) is type(model)
    np.testing.assert_array_equal(again.predict_rates(ds.test), model.predict_rates(ds.test))
    model.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(type(model).load(tmp_path / "m.npz").predict_rates(ds.test),
                                  model.predict_rates(ds.test))


def test_a_state_of_one_estimator_is_not_read_as_another():
    ds = _dataset()
    config, tensors = SharedRNN(**SMALL).fit(ds.train).get_state()
    with pytest.raises(UserError, match="SharedRNN"):
        PerConditionRNN.from_state(config, tensors)
    with pytest.raises(UserError, match="format"):
        estimator_from_state({**config, "format": "evil.Module"}, tensors)


@pytest.mark.parametrize("cls", [PerConditionRNN, SharedRNN])
def test_baselines_resume_from_checkpoints_to_identical_parameters(cls, tmp_path):
    ds = _dataset()
    params = {**SMALL, "max_epochs": 6, "patience": 100}
    whole = cls(**params).fit(ds.train, ds.val)
    ckpt = tmp_path / "ckpt"
    cls(**{**params, "max_epochs": 3}).fit(ds.train, ds.val, checkpoint_dir=ckpt,
                                           checkpoint_every=3)
    resumed = cls(**params).fit(ds.train, ds.val, checkpoint_dir=ckpt, checkpoint_every=3,
                                resume=True)
    assert resumed.resumed_from_epoch_ == 3
    a, b = resumed.get_state()[1], whole.get_state()[1]
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_baselines_default_to_jedis_hyperparameters():
    jedi = JEDI.default_params()
    for cls in (PerConditionRNN, SharedRNN):
        for name, value in cls.default_params().items():
            assert value == jedi[name], (cls.__name__, name)
