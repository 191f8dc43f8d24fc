import numpy as np
import pytest

from nwb_jedi.errors import UserError
from nwb_jedi.synthetic import TASKS, MemoryProTask, MultiTask, SineTask, get_task

DT = 0.01


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_condition_has_consistent_shapes(name):
    task = get_task(name)
    assert len(task.conditions) >= 2
    for value in task.conditions:
        tr = task.trial(value, DT)
        t = int(round(task.natural_duration / DT))
        assert tr.inputs.shape == (t, task.n_inputs)
        assert tr.targets.shape == (t, task.n_outputs) == tr.mask.shape
        assert tr.inputs.dtype == tr.targets.dtype == tr.mask.dtype == np.float32
        assert np.all(tr.mask >= 0) and tr.mask.sum() > 0
        # The noiseless target solves the task; a silent output does not.
        assert task.performance(value, tr.targets, tr) == 1.0
        assert task.performance(value, np.zeros_like(tr.targets), tr) == 0.0


@pytest.mark.parametrize("name", sorted(TASKS))
def test_noise_is_seeded(name):
    task = get_task(name)
    v = task.conditions[1]
    a = task.trial(v, DT, rng=np.random.default_rng(3), noise=0.1).inputs
    b = task.trial(v, DT, rng=np.random.default_rng(3), noise=0.1).inputs
    c = task.trial(v, DT, rng=np.random.default_rng(4), noise=0.1).inputs
    clean = task.trial(v, DT).inputs
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 0.05 < np.std(a - clean) < 0.2


def test_sine_target_and_input_level():
    task = SineTask()
    assert task.conditions[0] == 1.0 and task.conditions[-1] == 10.0
    tr = task.trial(4.0, DT)
    t = np.arange(100) * DT
    np.testing.assert_allclose(tr.targets[:, 0], np.sin(2 * np.pi * 4.0 * t), atol=1e-6)
    np.testing.assert_allclose(tr.inputs[:, 0], 0.4)
    assert np.all(tr.mask[:10] == 0) and np.all(tr.mask[10:] == 1)


def test_memorypro_epochs():
    task = MemoryProTask()
    assert len(task.conditions) == 8
    tr = task.trial(90.0, DT)
    s0, s1 = tr.epochs["stimulus"]
    r0, r1 = tr.epochs["response"]
    assert (s0, s1, r0, r1) == (10, 30, 70, 100)
    assert np.all(tr.inputs[:r0, 0] == 1) and np.all(tr.inputs[r0:, 0] == 0)
    np.testing.assert_allclose(tr.inputs[s0:s1, 2], 1.0)
    assert np.all(tr.inputs[s1:, 1:] == 0)  # nothing to see during the memory delay
    np.testing.assert_allclose(tr.targets[r0:, 2], 1.0)
    # A longer trial stretches the response epoch only.
    long = task.trial(90.0, DT, duration=1.5)
    assert long.epochs["response"] == (70, 150)


def test_too_short_duration_and_bad_values_raise():
    with pytest.raises(UserError, match="shorter than the task needs"):
        MemoryProTask().trial(0.0, DT, duration=0.5)
    with pytest.raises(UserError, match="not a condition"):
        SineTask().trial(7.5, DT)
    with pytest.raises(UserError, match="unknown task"):
        get_task("flipflop")
    with pytest.raises(UserError, match="repeated"):
        MultiTask(("sine", "sine"))


def test_multitask_layout():
    mt = MultiTask(("sine", "memorypro", "dm"))
    assert mt.n_inputs == 3 + 1 + 3 + 2 and mt.n_outputs == 1 + 3 + 2
    assert len(mt.conditions()) == 24
    u, y, m = mt.batch([("memorypro", 45.0), ("dm", -0.2)], DT)
    assert u.shape == (2, 100, 9) and y.shape == m.shape == (2, 100, 6)
    np.testing.assert_array_equal(u[0, :, :3], np.tile([0, 1, 0], (100, 1)))  # rule input
    np.testing.assert_array_equal(u[1, :, :3], np.tile([0, 0, 1], (100, 1)))
    assert np.all(m[0, :, [0, 4, 5]] == 0) and m[0, :, 1:4].sum() > 0  # own outputs only
    assert np.all(m[1, :, :4] == 0) and m[1, :, 4:].sum() > 0
    assert np.all(u[0, :, 7:] == 0) and np.all(u[0, :, 3] == 0)  # other tasks' inputs silent
