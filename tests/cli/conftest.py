"""Every CLI test runs in a directory of its own, so files in the caller's working directory
(such as the jedi_fit.nwb that the README's set-up command writes) never change an outcome, and
no test leaves files in the repository."""

import pytest


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
