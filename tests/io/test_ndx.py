"""The ndx-jedi extension spec: shipped YAML up to date, loaded, documented, well named."""

from __future__ import annotations

import os
import re

import yaml

from nwb_jedi.io import ndx
from nwb_jedi.io.ndx.spec import NAMESPACE, SPEC_DIR, write_spec


def test_shipped_yaml_matches_the_spec_builder(tmp_path):
    namespace, extensions = write_spec(tmp_path)
    for built in (namespace, extensions):
        shipped = SPEC_DIR / built.name
        assert yaml.safe_load(built.read_text()) == yaml.safe_load(shipped.read_text()), (
            f"{shipped.name} is stale; run python nwb_jedi/io/ndx/spec.py")


def test_shipped_yaml_is_exactly_a_fresh_export(tmp_path, monkeypatch):
    """Byte for byte, so the shipped files can never drift from spec.py; the export writes
    into the folder it is given and leaves the working directory alone."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    written = write_spec(tmp_path / "export")
    assert sorted(p.name for p in (tmp_path / "export").iterdir()) == sorted(
        p.name for p in written)
    assert list(elsewhere.iterdir()) == [] and os.getcwd() == str(elsewhere)
    for built in written:
        shipped = SPEC_DIR / built.name
        assert built.read_bytes() == shipped.read_bytes(), (
            f"{shipped.name} is stale; run python nwb_jedi/io/ndx/spec.py")


def test_namespace_names_an_email_contact_per_author():
    namespace = yaml.safe_load((SPEC_DIR / f"{NAMESPACE}.namespace.yaml").read_text())
    entry = namespace["namespaces"][0]
    assert len(entry["contact"]) == len(entry["author"])
    for contact in entry["contact"]:
        assert re.fullmatch(r"[\w.+-]+@[\w-]+(\.[\w-]+)+", contact), contact


def test_namespace_is_loaded_and_types_registered():
    from pynwb import get_type_map

    catalog = get_type_map().namespace_catalog
    assert NAMESPACE in catalog.namespaces
    ndx.load_namespace()  # idempotent
    for name in ("JEDIModel", "JEDIParameter", "JEDIConditionTable", "JEDITrialTable",
                 "JEDIModelledData", "JEDIBinnedCounts", "JEDIMetricsTable",
                 "JEDIEigenvalueTable"):
        assert getattr(ndx, name).__name__ == name


def _walk(spec, path=""):
    yield path, spec
    for key in ("attributes", "datasets", "groups"):
        for child in spec.get(key, []) or []:
            name = child.get("name") or child.get("neurodata_type_def") or \
                child.get("neurodata_type_inc")
            yield from _walk(child, f"{path}/{name}")


def test_every_field_documented_and_names_follow_best_practices():
    types = yaml.safe_load((SPEC_DIR / f"{NAMESPACE}.extensions.yaml").read_text())
    specs = types.get("groups", []) + types.get("datasets", [])
    assert len(specs) == 8  # 0.2 adds JEDIModelledData
    for spec in specs:
        name = spec["neurodata_type_def"]
        assert name.startswith("JEDI")
        if spec.get("neurodata_type_inc") == "DynamicTable":
            assert name.endswith("Table"), name
        for path, field in _walk(spec, name):
            assert isinstance(field.get("doc"), str) and len(field["doc"]) > 10, path
            if field.get("name"):
                assert re.fullmatch(r"[a-z][a-z0-9_]*", field["name"]), path
