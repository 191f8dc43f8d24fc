"""A model's units are recorded neurons: another file's units match them by id AND by subject,
session and recording site, or the match is said to be an accident (issue 14)."""

from __future__ import annotations

import pandas as pd
import pytest

from nwb_jedi.data.units import match_units, unit_identity
from nwb_jedi.errors import UserError

MODEL_SESSION = {"session_id": "s1", "subject": {"subject_id": "mouse-a"}}
IDS = [1001, 1002, 1003]


def _units(locations, groups=None) -> pd.DataFrame:
    table = {"id": IDS, "location": locations}
    if groups is not None:
        table["electrode_group"] = groups
    return pd.DataFrame(table)


def _match(data_locations, data_session, model_identity=None, groups=None):
    identity = {"location": ["ALM", "ALM", "M1"]} if model_identity is None else model_identity
    return match_units(IDS, identity, MODEL_SESSION, IDS, _units(data_locations, groups),
                       data_session, where="other.nwb")


def test_unit_identity_keeps_only_recording_sites():
    units = pd.DataFrame({"id": [1, 2], "location": ["ALM", None], "quality": ["good", "mua"],
                          "electrode_group": [None, None]})
    assert unit_identity(units) == {"location": ["ALM", ""]}
    assert unit_identity(None) == {} and unit_identity(pd.DataFrame({"id": [1]})) == {}


def test_the_models_own_session_matches_by_id():
    match = _match(["x", "y", "z"], {"session_id": "s1", "subject": {"subject_id": "mouse-a"}})
    assert match.level == "same" and not match.refused and match.message == ""


def test_another_subject_is_refused_whatever_the_sites():
    match = _match(["ALM", "ALM", "M1"], {"session_id": "s9",
                                          "subject": {"subject_id": "mouse-b"}})
    assert match.refused
    assert "another subject (mouse-b, the model's mouse-a)" in match.message
    assert "another animal's units cannot be the model's neurons" in match.message


def test_another_session_with_the_same_sites_is_confirmed():
    match = _match(["ALM", "ALM", "M1"], {"session_id": "s2",
                                          "subject": {"subject_id": "mouse-a"}})
    assert match.level == "confirmed" and not match.refused
    assert "3 units match the model's by id and location" in match.message


def test_sites_that_differ_for_some_units_warn_and_for_all_refuse():
    other = {"session_id": "s2", "subject": {"subject_id": "mouse-a"}}
    some = _match(["ALM", "V1", "M1"], other)
    assert some.level == "warning" and not some.refused
    assert "the location differs for 1 of 3 units (e.g. unit 1002: 'V1' here, 'ALM'" \
        in some.message
    every = _match(["V1", "V1", "S1"], other)
    assert every.refused and "the location of every unit differs" in every.message


def test_nothing_but_bare_ids_is_refused():
    other = {"session_id": "s2"}
    assert _match(["ALM", "ALM", "M1"], other, model_identity={}).refused
    no_sites = match_units(IDS, {"location": ["ALM", "ALM", "M1"]}, MODEL_SESSION, IDS,
                           pd.DataFrame({"id": IDS}), other)
    assert no_sites.refused and "neither says where its units were recorded" in \
        no_sites.message
    unnamed = match_units(IDS, None, {}, IDS, pd.DataFrame({"id": IDS}), {})
    assert unnamed.refused and "(unnamed)" in unnamed.message


def test_electrode_groups_are_compared_too():
    other = {"session_id": "s2"}
    match = _match(["ALM", "ALM", "M1"], other, groups=["g1", "g1", "g2"],
                   model_identity={"location": ["ALM", "ALM", "M1"],
                                   "electrode_group": ["g1", "g2", "g2"]})
    assert match.level == "warning" and "location/electrode_group" in match.message


def test_ids_missing_from_the_data_are_an_error():
    with pytest.raises(UserError, match="the model has 3 units, the data 2, 2 ids in common"):
        match_units(IDS, None, MODEL_SESSION, IDS[:2], _units(["a", "b", "c"]).iloc[:2],
                    MODEL_SESSION)
