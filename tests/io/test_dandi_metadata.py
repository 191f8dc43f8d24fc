"""What DANDI reads from the files the package writes: the subject (nothing invented; a
missing age is asked for, not made up) and the session id that names a derived file."""

from __future__ import annotations

import dataclasses
import warnings

import pytest

from nwb_jedi.errors import UserError
from nwb_jedi.io.dandi_metadata import (
    DandiMetadataWarning,
    check_age,
    clean_label,
    dandi_gaps,
    default_label,
    merge_subject,
)
from nwb_jedi.io.write import write_results


@pytest.mark.parametrize("age", ["P90D", "P7Y", "P2Y6M", "P1DT12H", "P5Y/P8Y", "P2Y/", "/P1Y"])
def test_iso_8601_ages_are_accepted(age):
    assert check_age(age) == age


@pytest.mark.parametrize("age", ["7", "P", "90 days", "P0D/P1D/P2D", "/", "PT", "p90d"])
def test_other_ages_are_one_clear_error(age):
    with pytest.raises(UserError, match="not an ISO 8601 duration; write e.g. P90D"):
        check_age(age)


def test_given_fields_fill_gaps_and_never_contradict_the_source():
    source = {"subject_id": "m1", "species": "Macaca mulatta"}
    assert merge_subject(source, {"age": "P7Y"}) == {**source, "age": "P7Y", "sex": "U"}
    assert merge_subject(source, None) == {**source, "sex": "U"}  # no age made up
    with pytest.raises(UserError, match="says the subject's species is 'Macaca mulatta'"):
        merge_subject(source, {"species": "Mus musculus"})
    with pytest.raises(UserError, match="not one of M, F, U, O"):
        merge_subject(source, {"sex": "male"})
    with pytest.raises(UserError, match="unknown subject field 'colour'"):
        merge_subject(source, {"colour": "brown"})


def test_dandi_gaps_name_what_validation_requires():
    assert dandi_gaps(None) == ["subject"]
    assert dandi_gaps({"subject_id": "m", "species": "Mus musculus", "sex": "U"}) == ["age"]
    assert dandi_gaps({"subject_id": "m", "species": "Mus musculus", "age": "P9D"}) == []


def test_labels():
    assert default_label({"format": "nwb_jedi.JEDI", "params": {"rank": 6}}) == "jedi-rank6"
    assert default_label({"format": "nwb_jedi.PSTHBaseline", "params": {}}) == "psthbaseline"
    assert clean_label("Rank 6, seed_1!") == "rank-6-seed-1"
    with pytest.raises(UserError, match="no letters or digits"):
        clean_label("__")


# ---------------------------------------------------------------------------------- derived files
def _without_age(session):
    subject = {k: v for k, v in session.metadata["subject"].items() if k != "age"}
    return dataclasses.replace(session, metadata={**session.metadata, "subject": subject})


def test_a_missing_age_is_not_invented_and_the_warning_says_how(maze_fit, tmp_path):
    from pynwb import NWBHDF5IO

    model, ds, session = maze_fit
    with pytest.warns(DandiMetadataWarning, match=r"no age.*dandi validate.*--subject-age"):
        out = write_results(model, ds, tmp_path / "no_age.nwb", source=_without_age(session))
    with NWBHDF5IO(out, "r") as io:
        subject = io.read().subject
        assert subject.age is None and subject.date_of_birth is None  # not "P0D/"
        assert subject.species == session.metadata["subject"]["species"]


def test_a_given_age_is_written_and_silences_the_warning(maze_fit, tmp_path):
    from pynwb import NWBHDF5IO

    model, ds, session = maze_fit
    with warnings.catch_warnings():
        warnings.simplefilter("error", DandiMetadataWarning)
        out = write_results(model, ds, tmp_path / "aged.nwb", source=_without_age(session),
                            subject={"age": "P6Y/P9Y"}, label="Rank 2 seed 0")
    with NWBHDF5IO(out, "r") as io:
        nwb = io.read()
        assert nwb.subject.age == "P6Y/P9Y"
        assert nwb.session_id == f"{session.metadata['session_id']}-rank-2-seed-0"
        assert "(rank-2-seed-0)" in nwb.session_description


def test_append_keeps_the_file_metadata_and_refuses_subject_or_label(maze_fit, mc_maze_nwb,
                                                                      tmp_path):
    import shutil

    model, ds, _ = maze_fit
    path = tmp_path / "copy.nwb"
    shutil.copyfile(mc_maze_nwb, path)
    with pytest.raises(UserError, match="apply to derived files"):
        write_results(model, ds, path, append=True, subject={"age": "P1Y"})
    with pytest.raises(UserError, match="apply to derived files"):
        write_results(model, ds, path, append=True, label="x")


def test_a_file_without_any_subject_says_so(arrays_fit, tmp_path):
    model, ds = arrays_fit
    bare = dataclasses.replace(ds)
    bare.metadata = {}
    with pytest.warns(DandiMetadataWarning, match=r"gives no subject.*subject_id.*species"):
        write_results(model, bare, tmp_path / "bare.nwb")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DandiMetadataWarning)
        write_results(model, bare, tmp_path / "given.nwb", subject={
            "subject_id": "m1", "species": "Mus musculus", "age": "P90D"})
