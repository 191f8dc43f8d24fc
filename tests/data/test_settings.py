"""ConditionMapper.to_settings / from_settings: plain JSON settings that rebuild the same mapper,
callables refused, malformed settings refused with one clear message."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.data.presets import preset
from nwb_jedi.errors import UserError

# Mapper settings for the MC_Maze-layout fixture, one per form of every setting.
MC_MAZE_MAPPERS = {
    "preset": preset("mc_maze"),
    "dict_by_out_of_alphabetical_order": dict(
        by={"trial_version": None, "trial_type": None}, align="move_onset_time",
        window=(-0.1, 0.2), bin_size=0.02, trial_filter={"success": True},
        split=(0.6, 0.2, 0.2), seed=4, behavior=["hand_pos"]),
    "binned_tuple": dict(
        by=("delay", 3), align="go_cue_time", window=(-0.1, 0.3), bin_size=0.01,
        min_rate_hz=0.5, smooth_sd=0.02, behavior=False),
    "edges_and_split_column": dict(
        by=("rt", np.array([200.0, 300.0, 350.0, 500.0])), align="move_onset_time",
        window=(-0.2, 0.2), bin_size=0.02, split="split", unit_filter="heldout == False",
        trial_filter={"trial_type": (0, 1, 2, 3, 4, 5)}, exclude_heldout=True),
    "mixed_dict": dict(
        by={"trial_type": None, "delay": 2}, align="target_on_time",
        align_reference=None, window=(0.0, 0.3), bin_size=0.05, seed=np.int64(2)),
}


def _json_round_trip(settings: dict) -> dict:
    # sort_keys, as the NWB writer stores the dataset metadata
    return json.loads(json.dumps(settings, sort_keys=True, allow_nan=False))


def assert_same_dataset(a, b) -> None:
    np.testing.assert_array_equal(a.counts, b.counts)
    pd.testing.assert_frame_equal(a.conditions, b.conditions)
    np.testing.assert_array_equal(a.condition, b.condition)
    np.testing.assert_array_equal(a.trial_id, b.trial_id)
    np.testing.assert_array_equal(a.unit_id, b.unit_id)
    np.testing.assert_array_equal(a.split, b.split)
    np.testing.assert_array_equal(a.time, b.time)
    np.testing.assert_array_equal(a.align_time, b.align_time)
    assert a.behavior.keys() == b.behavior.keys()
    for name in a.behavior:
        np.testing.assert_array_equal(a.behavior[name], b.behavior[name])
    pd.testing.assert_frame_equal(a.trials, b.trials)
    assert a.metadata == b.metadata


@pytest.mark.parametrize("name", sorted(MC_MAZE_MAPPERS))
def test_settings_round_trip_through_json_builds_the_same_dataset(name, mc_maze_nwb):
    from nwb_jedi.io.read import read_session

    session = read_session(mc_maze_nwb)
    mapper = ConditionMapper(**MC_MAZE_MAPPERS[name], verbose=False)
    settings = mapper.to_settings()
    rebuilt = ConditionMapper.from_settings(_json_round_trip(settings), verbose=False)
    assert rebuilt.to_settings() == settings
    assert json.dumps(rebuilt.to_settings()) == json.dumps(settings)
    original = mapper.build(session)
    assert_same_dataset(original, rebuilt.build(session))
    assert original.provenance.mapper == settings  # what build records is what from_settings reads
    assert rebuilt.report_ == mapper.report_


def test_tuple_and_dict_forms_come_back_as_they_were():
    for by in [("angle", 4), {"target": None, "angle": 3}, {"angle": 3, "target": None},
               ["target", "angle"], "target", ("angle", [0.0, 100.0, 360.0])]:
        mapper = ConditionMapper(by=by, align="go_time", window=(-0.1, 0.1), bin_size=0.01)
        rebuilt = ConditionMapper.from_settings(_json_round_trip(mapper.to_settings()))
        assert rebuilt.by == by and type(rebuilt.by) is type(by)
        if isinstance(by, dict):
            assert list(rebuilt.by) == list(by)  # the column order survives sorted JSON keys
    mapper = ConditionMapper(by=("angle", np.array([0.0, 100.0, 360.0])), align="go_time",
                             window=(-0.1, 0.1), bin_size=0.01, split=(0.5, 0.25, 0.25))
    rebuilt = ConditionMapper.from_settings(_json_round_trip(mapper.to_settings()))
    assert rebuilt.by == ("angle", [0.0, 100.0, 360.0])
    assert rebuilt.window == (-0.1, 0.1) and rebuilt.split == (0.5, 0.25, 0.25)


def test_dict_by_keeps_its_condition_columns_on_a_session(hand_session):
    session = hand_session
    mapper = ConditionMapper(by={"target": None, "angle": 3}, align="go_time",
                             window=(-0.1, 0.1), bin_size=0.01, verbose=False)
    rebuilt = ConditionMapper.from_settings(_json_round_trip(mapper.to_settings()),
                                            verbose=False)
    a, b = mapper.build(session), rebuilt.build(session)
    assert list(b.conditions.columns) == ["target", "angle", "label"]
    assert_same_dataset(a, b)


def test_the_embedded_data_round_trip():
    from nwb_jedi import datasets
    from nwb_jedi.io.read import read_session

    mapper = datasets.reaching_mapper()
    settings = mapper.to_settings()
    assert list(settings) == ["by", "align", "window", "bin_size", "align_reference",
                              "trial_filter", "unit_filter", "min_rate_hz", "exclude_heldout",
                              "smooth_sd", "split", "seed", "behavior"]
    assert settings["by"] == "reach_target" and settings["window"] == [0.1, 0.5]
    assert settings["trial_filter"] == {"subset": "ex1_delay"} and settings["behavior"] is True
    rebuilt = ConditionMapper.from_settings(_json_round_trip(settings), verbose=False)
    session = read_session(datasets.reaching_path())
    built = rebuilt.build(session)
    assert_same_dataset(mapper.build(session), built)
    assert built.n_trials == 210 and built.n_conditions == 7 and built.n_units == 61


def _is_even(trials):
    return np.arange(len(trials)) % 2 == 0


@pytest.mark.parametrize("setting, alternative", [
    ("by", "a column name"), ("align", "trials-table column"),
    ("trial_filter", "query string"), ("unit_filter", "query string")])
def test_to_settings_refuses_callables(setting, alternative):
    kwargs = dict(by="target", align="go_time", window=(-0.1, 0.1), bin_size=0.01)
    kwargs[setting] = _is_even
    with pytest.raises(UserError) as err:
        ConditionMapper(**kwargs).to_settings()
    message = str(err.value)
    assert message.startswith(f"{setting} is a callable (_is_even)")
    assert alternative in message and message.count(";") == 1


def test_a_dataset_built_with_a_callable_records_it_and_from_settings_asks_for_it(
        hand_session):
    session = hand_session
    mapper = ConditionMapper(by="target", align="go_time", window=(-0.1, 0.1), bin_size=0.01,
                             trial_filter=_is_even, verbose=False)
    ds = mapper.build(session)
    recorded = ds.provenance.mapper
    assert recorded["trial_filter"] is None and recorded["callables"] == {
        "trial_filter": "_is_even"}
    with pytest.raises(UserError, match=r"trial_filter was a callable \(_is_even\) when the "
                                        r"dataset was built.*query string"):
        ConditionMapper.from_settings(_json_round_trip(recorded))
    again = ConditionMapper.from_settings({**recorded, "trial_filter": "success == True"},
                                          verbose=False)
    assert again.trial_filter == "success == True"
    assert again.build(session).n_trials == 10


@pytest.mark.parametrize("settings, message", [
    (["by", "target"], "must be a dict"),
    ({"by": "target", "align": "go_time", "window": [0, 1], "bin_size": 0.1, "bins": 3},
     "unknown mapper setting(s) bins"),
    ({"align": "go_time", "window": [0, 1], "bin_size": 0.1}, "lack by"),
    ({"by": None, "align": "go_time", "window": [0, 1], "bin_size": 0.1}, "lack by"),
    ({"by": 5, "align": "go_time", "window": [0, 1], "bin_size": 0.1}, "'by' must be"),
    ({"by": [["a", None], ["a", 3]], "align": "t", "window": [0, 1], "bin_size": 0.1},
     "each column once"),
    ({"by": ["a", "x"], "align": "t", "window": [0, 1], "bin_size": 0.1, "seed": 1.5},
     "'seed' must be an integer"),
    ({"by": "a", "align": "t", "window": "0,1", "bin_size": 0.1}, "'window' must be a list"),
    ({"by": "a", "align": "t", "window": [0, 1, 2], "bin_size": 0.1}, "list of 2 finite"),
    ({"by": "a", "align": "t", "window": [0, 1], "bin_size": -0.1}, "positive number"),
    ({"by": "a", "align": "t", "window": [0, 1], "bin_size": 0.1, "exclude_heldout": "yes"},
     "'exclude_heldout' must be true or false"),
    ({"by": "a", "align": "t", "window": [0, 1], "bin_size": 0.1, "trial_filter": [1]},
     "'trial_filter' must be None, a query string"),
    ({"by": "a", "align": "t", "window": [0, 1], "bin_size": 0.1, "min_rate_hz": "1"},
     "'min_rate_hz' must be a finite number"),
    ({"by": "a", "align": "t", "window": [0, 1], "bin_size": 0.1, "split": [0.5, 0.5]},
     "'split' must be a list of 3"),
    ({"by": "a", "align": "t", "window": [0, 1], "bin_size": 0.1, "behavior": "hand"},
     "'behavior' must be true, false or a list"),
    ({"by": "a", "align": "t", "window": [0, 1], "bin_size": 0.1, "callables": {"x": 1}},
     "'callables' must map"),
    ({"by": ["a", [3, "b"]], "align": "t", "window": [0, 1], "bin_size": 0.1},
     "by['a'] bins"),
    ({"by": "a", "align": "t", "window": [0, 0.25], "bin_size": 0.1},
     "not a whole number of 100 ms bins"),
])
def test_from_settings_refuses_malformed_settings(settings, message):
    with pytest.raises(UserError) as err:
        ConditionMapper.from_settings(settings)
    assert message in str(err.value)


def test_to_settings_refuses_what_json_cannot_carry_back():
    mapper = ConditionMapper(by="a", align="t", window=(0, 1), bin_size=0.1,
                             min_rate_hz=float("nan"))
    with pytest.raises(UserError, match="'min_rate_hz' must be a finite number"):
        mapper.to_settings()
