"""Resumable fits: a fit killed with SIGKILL and resumed equals an uninterrupted fit."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from nwb_jedi import JEDI
from nwb_jedi._files import TMP_MARK
from nwb_jedi.errors import UserError
from tests.model.rotation import rotation_dataset

PARAMS = dict(hidden=16, embed_dim=3, rank=2, max_epochs=40, patience=100, batch_size=8,
              seed=2)
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_killed_fit_resumes_to_identical_parameters(tmp_path):
    ckpt = tmp_path / "ckpt"
    script = textwrap.dedent(f"""
        from nwb_jedi import JEDI
        from tests.model.rotation import rotation_dataset
        ds = rotation_dataset()
        JEDI(**{PARAMS!r}).fit(ds.train, ds.val, checkpoint_dir={str(ckpt)!r},
                               checkpoint_every=3)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    deadline = time.time() + 60
    while not (ckpt / "checkpoint.pt").exists():
        assert proc.poll() is None, "the fit ended before writing a checkpoint"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    ds = rotation_dataset()
    resumed = JEDI(**PARAMS).fit(ds.train, ds.val, checkpoint_dir=ckpt, checkpoint_every=3,
                                 resume=True)
    assert resumed.resumed_from_epoch_ >= 3  # it continued, it did not start afresh
    whole = JEDI(**PARAMS).fit(ds.train, ds.val)
    assert whole.resumed_from_epoch_ == 0
    assert resumed.history_["epoch"] == whole.history_["epoch"]
    a, b = resumed.get_state()[1], whole.get_state()[1]
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert not list(ckpt.glob(f"*{TMP_MARK}*"))  # no half-written checkpoint left behind


def test_resume_refuses_a_different_fit(tmp_path):
    ds = rotation_dataset()
    JEDI(**{**PARAMS, "max_epochs": 3}).fit(ds.train, checkpoint_dir=tmp_path,
                                             checkpoint_every=1)
    with pytest.raises(UserError, match="different fit"):
        JEDI(**{**PARAMS, "max_epochs": 3, "rank": 3}).fit(ds.train, checkpoint_dir=tmp_path,
                                                           resume=True)


def test_resume_may_train_longer_and_a_damaged_checkpoint_is_a_clear_error(tmp_path):
    ds = rotation_dataset()
    JEDI(**{**PARAMS, "max_epochs": 3}).fit(ds.train, checkpoint_dir=tmp_path,
                                             checkpoint_every=1)
    longer = JEDI(**{**PARAMS, "max_epochs": 5, "progress": True}).fit(
        ds.train, checkpoint_dir=tmp_path, checkpoint_every=1, resume=True)
    assert longer.resumed_from_epoch_ == 3 and longer.n_epochs_ == 5
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="damaged"):
        JEDI(**PARAMS).fit(ds.train, checkpoint_dir=tmp_path, resume=True)


@pytest.mark.parametrize("content", [b"junk\n", b"PK\x03\x04" + bytes(60), b""])
def test_any_damaged_checkpoint_is_a_clear_error(tmp_path, content):
    """Whatever the bytes (text, a broken zip header, nothing), resuming says the checkpoint is
    damaged; before, some of them escaped torch.load as a KeyError."""
    ds = rotation_dataset()
    (tmp_path / "checkpoint.pt").write_bytes(content)
    with pytest.raises(UserError, match="damaged or not a nwb_jedi checkpoint"):
        JEDI(**PARAMS).fit(ds.train, checkpoint_dir=tmp_path, resume=True)
