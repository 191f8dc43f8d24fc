"""Provenance: a typed record of where a TrialDataset came from, round-tripping through JSON,
refusing malformed input; TrialDataset.metadata stays its (read-only) dict form."""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
import pytest

from nwb_jedi.data.conditions import ConditionMapper
from nwb_jedi.data.dataset import TrialDataset
from nwb_jedi.data.provenance import MapperReport, Provenance
from nwb_jedi.errors import UserError


def _full() -> Provenance:
    return Provenance(
        source={"kind": "local", "path": "/data/s.nwb", "sha256": "ab" * 32},
        session={"session_id": "s1", "subject": {"species": "Macaca mulatta"}},
        mapper={"by": [["maze", None], ["angle", 8]], "align": "t", "window": [-0.1, 0.2],
                "bin_size": 0.02},
        report=MapperReport(n_trials_total=10, n_trials_kept=8,
                            trials_dropped={"no condition label": 2}, n_units_total=3,
                            n_units_kept=3, units_dropped={}, conditions_dropped=["x"],
                            n_conditions=2),
        extras={"phases": [["delay", 0.0, 0.2]], "seed": 3})


def test_round_trips_through_json():
    record = _full()
    as_dict = record.to_dict()
    assert list(as_dict) == ["source", "session", "mapper", "report", "phases", "seed"]
    assert Provenance.from_dict(json.loads(json.dumps(as_dict, sort_keys=True))) == record
    assert Provenance.from_dict({}) == Provenance() and Provenance().to_dict() == {}


def test_to_dict_is_a_copy():
    record = _full()
    as_dict = record.to_dict()
    as_dict["session"]["session_id"] = "changed"
    as_dict["phases"].append("x")
    assert record.session["session_id"] == "s1" and len(record.extras["phases"]) == 1


def test_reads_the_metadata_of_files_written_before_it():
    old = {"source": "synthetic", "tasks": ["sine"], "seed": 0}
    record = Provenance.from_dict(old)
    assert record.source == {"kind": "synthetic"}
    assert record.extras == {"tasks": ["sine"], "seed": 0}
    old_report = {"n_trials_total": 5, "trials_dropped": {"a": 1}}  # keys added later default
    assert Provenance.from_dict({"report": old_report}).report == MapperReport(
        n_trials_total=5, trials_dropped={"a": 1})


@pytest.mark.parametrize("data, message", [
    ([1, 2], "dataset provenance is of type list, not an object"),
    ({1: "x"}, "keys that are not strings"),
    ({"source": 5}, "field 'source' is of type int"),
    ({"session": ["s1"]}, "field 'session' is of type list"),
    ({"mapper": "by=target"}, "field 'mapper' is of type str"),
    ({"report": []}, "field 'report' is of type list"),
    ({"report": {"n_trials_kept": -1}}, "'report.n_trials_kept' is -1, not a count"),
    ({"report": {"n_trials_kept": 1.5}}, "not a count"),
    ({"report": {"n_trials_kept": True}}, "not a count"),
    ({"report": {"trials_dropped": {"a": "3"}}}, "'report.trials_dropped.a'"),
    ({"report": {"trials_dropped": [1]}}, "not an object of counts"),
    ({"report": {"conditions_dropped": "a"}}, "not a list of strings"),
    ({"report": {"evil": 1}}, "unknown keys ['evil']"),
])
def test_from_dict_refuses_malformed_input(data, message):
    with pytest.raises(UserError) as err:
        Provenance.from_dict(data)
    assert message in str(err.value)
    assert "damaged or was not written by nwb_jedi" in str(err.value)


def test_extras_may_not_shadow_fields():
    with pytest.raises(UserError, match="extras may not be named"):
        Provenance(extras={"source": "x"})
    with pytest.raises(UserError, match="extras may not be named"):
        Provenance().with_extras(report={})
    assert Provenance().with_extras(phases=[1]).extras == {"phases": [1]}


def _dataset(**kwargs) -> TrialDataset:
    rng = np.random.default_rng(0)
    return TrialDataset.from_arrays(rng.poisson(1, (12, 4, 3)), [i % 3 for i in range(12)],
                                    0.02, **kwargs)


def test_dataset_takes_metadata_dicts_and_keeps_a_metadata_view():
    ds = _dataset(metadata=_full().to_dict())
    assert ds.provenance == _full()
    assert ds.metadata == _full().to_dict()
    assert json.loads(json.dumps(ds.metadata)) == json.loads(json.dumps(_full().to_dict()))
    with pytest.raises(TypeError, match="read-only view of TrialDataset.provenance"):
        ds.metadata["phases"] = []
    with pytest.raises(TypeError, match="read-only"):
        ds.metadata.update(x=1)
    changeable = dict(ds.metadata)
    changeable["x"] = 1
    assert type(copy.copy(ds.metadata)) is dict
    assert type(pickle.loads(pickle.dumps(ds.metadata))) is dict
    ds.metadata = {"source": {"kind": "local"}}  # the old assignment still works
    assert ds.provenance == Provenance(source={"kind": "local"})
    with pytest.raises(UserError, match="field 'session'"):
        _dataset(metadata={"session": 3})


def test_dataset_provenance_argument():
    record = _full()
    ds = _dataset(provenance=record)
    assert ds.provenance is record
    with pytest.raises(ValueError, match="not both"):
        _dataset(provenance=record, metadata={})
    with pytest.raises(TypeError, match="must be a Provenance"):
        _dataset(provenance={"source": {}})


def test_derived_datasets_get_their_own_copy():
    ds = _dataset(provenance=_full())
    for derived in (ds.train, ds.subset([0, 1]), ds.select_units([0])):
        assert derived.provenance == ds.provenance
        assert derived.provenance is not ds.provenance
        derived.provenance.extras["seed"] = 99
        derived.provenance.session["session_id"] = "other"
    assert ds.provenance == _full()


def test_the_mapper_builds_the_record(hand_session):
    mapper = ConditionMapper(by="target", align="go_time", window=(-0.1, 0.1), bin_size=0.01,
                             split="split", verbose=False)
    ds = mapper.build(hand_session)
    record = ds.provenance
    assert record.session == {"session_id": "s1"}
    assert record.mapper == mapper.to_settings()
    assert record.report == mapper.report_ and record.report is not mapper.report_
    assert record.report.n_conditions == ds.n_conditions == 3
    assert ds.metadata["report"]["trials_dropped"]["split not train/val/test"] == 3
    assert Provenance.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_phases_and_synthetic_data_use_extras(hand_session):
    from nwb_jedi.analysis.phases import split_phases

    ds = ConditionMapper(by="target", align="go_time", window=(-0.1, 0.1), bin_size=0.01,
                         verbose=False).build(hand_session)
    phased = split_phases(ds, [("early", -0.1, 0.0), ("late", 0.0, 0.1)])
    assert phased.provenance.extras["phases"] == [["early", -0.1, 0.0], ["late", 0.0, 0.1]]
    assert phased.provenance.mapper == ds.provenance.mapper
    assert "phases" not in ds.provenance.extras


def test_a_synthetic_dataset_can_be_written_without_a_source(tmp_path):
    """Its source used to be the string "synthetic", which the writer could not use."""
    from nwb_jedi import load_dataset, write_results
    from nwb_jedi.model.jedi import JEDI

    ds = _dataset(provenance=Provenance(source={"kind": "synthetic"},
                                        extras={"tasks": ["sine"], "seed": 0}))
    model = JEDI(embed_dim=2, hidden=8, rank=2, max_epochs=1, device="cpu",
                 progress=False).fit(ds.train, ds.val)
    path = write_results(model, ds, tmp_path / "synthetic.nwb")
    assert load_dataset(path).provenance == ds.provenance
