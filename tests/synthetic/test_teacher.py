import zipfile

import numpy as np
import pytest
import torch

from nwb_jedi.errors import UserError
from nwb_jedi.synthetic import (
    TeacherRNN,
    get_teacher,
    teacher_cache_dir,
    teacher_step,
    train_teacher,
    training_count,
)

TINY = {"n_units": 12, "max_iters": 4}


def test_training_is_deterministic_and_seeded():
    a = train_teacher("dm", seed=1, **TINY)
    b = train_teacher("dm", seed=1, **TINY)
    c = train_teacher("dm", seed=2, **TINY)
    for key, val in a.weights().items():
        np.testing.assert_array_equal(val, b.weights()[key])
    assert not np.array_equal(a.M, c.M) and not np.array_equal(a.chi, c.chi)
    assert a.info["iterations"] == 4


def test_small_teacher_solves_dm_below_loss_threshold(tmp_path):
    # The perceptual decision task trains in a few dozen iterations at 30 units.
    teacher = get_teacher("dm", n_units=30, seed=0, loss_threshold=0.03, max_iters=300,
                          cache_dir=tmp_path)
    info = teacher.info
    assert info["converged"] and info["last_batch_loss"] < 0.03
    assert info["iterations"] < 300
    assert info["final_loss"] < 0.05  # noiseless trials of every condition
    assert info["performance"]["dm"] == 1.0


def test_structure_and_dynamics_match_the_definition(small_teacher):
    t = small_teacher
    n, r = t.n_units, t.rank
    assert (n, r) == (40, 5) and t.g == 1.8
    np.testing.assert_allclose(t.W, 1.8 * t.chi / np.sqrt(n) + t.M @ t.N.T / n, rtol=1e-5,
                               atol=1e-6)
    mt = t.multitask
    u, _, _ = mt.batch(mt.conditions()[:3], t.dt)
    states, outputs = t.run(u)
    assert states.shape == (3, 100, n) and outputs.shape == (3, 100, mt.n_outputs)
    x1 = teacher_step(np.zeros((3, n), np.float32), u[:, 0], t.W, t.B, t.b, t.alpha)
    np.testing.assert_allclose(states[:, 0], x1, rtol=1e-5, atol=1e-6)
    x2 = t.step(states[:, 0], u[:, 1])
    np.testing.assert_allclose(states[:, 1], x2, rtol=1e-4, atol=1e-5)
    # The autonomous torch step under a static input is the same map.
    step = t.step_fn(u[0, 5])
    x = torch.as_tensor(states[0, 4])
    np.testing.assert_allclose(step(x).numpy(), t.step(states[0, 4], u[0, 5]), rtol=1e-4,
                               atol=1e-5)
    # and works with torch states in teacher_step too (for fixed-point finders)
    xt = teacher_step(x, torch.as_tensor(u[0, 5]), torch.as_tensor(t.W), torch.as_tensor(t.B),
                      torch.as_tensor(t.b), t.alpha)
    np.testing.assert_allclose(xt.numpy(), step(x).numpy(), rtol=1e-5, atol=1e-6)


def test_cache_loads_without_retraining_and_has_no_pickle(tmp_path):
    before = training_count()
    a = get_teacher("sine", seed=3, cache_dir=tmp_path, **TINY)
    assert training_count() == before + 1 and not a.from_cache
    files = list(teacher_cache_dir(tmp_path).glob("*.npz"))
    assert len(files) == 1 and "sine_n12_s3" in files[0].name
    b = get_teacher("sine", seed=3, cache_dir=tmp_path, **TINY)
    assert training_count() == before + 1 and b.from_cache
    for key, val in a.weights().items():
        np.testing.assert_array_equal(val, b.weights()[key])
    assert b.info == a.info and b.config == a.config
    # Every member is a plain .npy that loads with pickle disabled.
    with zipfile.ZipFile(files[0]) as zf:
        assert all(name.endswith(".npy") for name in zf.namelist())
    with np.load(files[0], allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
    # A different setting is a different cache entry, never the stale one.
    c = get_teacher("sine", seed=3, cache_dir=tmp_path, g=1.5, **TINY)
    assert training_count() == before + 2 and not c.from_cache
    assert len(list(teacher_cache_dir(tmp_path).glob("*.npz"))) == 2


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NWB_JEDI_CACHE", str(tmp_path / "c"))
    assert teacher_cache_dir() == tmp_path / "c" / "teachers"


def test_broken_cache_file_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"not a zip")
    with pytest.raises(UserError, match="delete it"):
        TeacherRNN.load(path)


def test_bad_settings_raise():
    with pytest.raises(UserError, match="rank"):
        train_teacher("sine", n_units=4, rank=5)
    with pytest.raises(TypeError, match="unknown teacher settings"):
        get_teacher("sine", n_units=4, learning_rate=0.1)
