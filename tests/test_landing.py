"""Bronze landing rules and the Bronze manifest."""

from __future__ import annotations

import json

import pytest
from conftest import make_bundle, write_bundles

from fhirhouse.bronze.landing import (
    cohort_files,
    land,
    list_cohorts,
    manifest_path,
    resolve_labels,
)
from fhirhouse.layout import Layout
from fhirhouse.redact import name_key


def _names(root, cohort):
    return [p.name for p in cohort_files(Layout.of(root), cohort)]


def _source(tmp_path, n=7):
    return write_bundles(
        tmp_path / "src", {f"f{i:02d}.json": make_bundle(f"p{i}") for i in range(n)}
    )


def test_initial_landing_is_round_robin_over_sorted_names(tmp_path):
    src, root = _source(tmp_path), tmp_path / "root"
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    res = land(Layout.of(root), src, cohorts=3)
    assert list_cohorts(Layout.of(root)) == ["A", "B", "C"]
    assert _names(root, "A") == ["f00.json", "f03.json", "f06.json"]
    assert _names(root, "B") == ["f01.json", "f04.json"]
    assert _names(root, "C") == ["f02.json", "f05.json"]
    assert res.new == {"A": 3, "B": 2, "C": 2}
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # source untouched
    manifest = json.loads(manifest_path(Layout.of(root)).read_text())
    assert manifest["file_count"] == 7 and manifest["cohorts"] == {"A": 3, "B": 2, "C": 2}
    assert manifest["total_bytes"] == sum(len(b) for b in before.values())
    assert manifest["source"] == str(src) and manifest["ingested_at"].endswith("+00:00")


def test_new_drop_into_named_cohort_and_landed_files_keep_their_cohort(tmp_path):
    src, root = _source(tmp_path, 3), tmp_path / "root"
    land(Layout.of(root), src)
    write_bundles(src, {"g1.json": make_bundle("q1"), "g2.json": make_bundle("q2")})
    res = land(Layout.of(root), src, cohort="D")
    assert res.new == {"D": 2} and res.unchanged == 3
    assert _names(root, "D") == ["g1.json", "g2.json"]
    assert _names(root, "A") == ["f00.json"]


def test_changed_bytes_replace_the_bronze_copy_in_place(tmp_path):
    src, root = _source(tmp_path, 3), tmp_path / "root"
    lake = Layout.of(root)
    land(lake, src)
    write_bundles(src, {"f01.json": make_bundle("p1", n_enc=2)})
    res = land(lake, src)
    assert res.replaced == {"B": 1} and res.new == {}
    assert (root / "bronze/fhir/cohort=B/f01.json").read_bytes() == (src / "f01.json").read_bytes()
    assert land(lake, src).touched_cohorts == []  # idempotent


def test_later_batch_without_cohort_is_round_robin_too(tmp_path):
    src, root = _source(tmp_path, 2), tmp_path / "root"
    lake = Layout.of(root)
    land(lake, src, cohorts=2)
    write_bundles(src, {"h1.json": make_bundle("r1"), "h2.json": make_bundle("r2")})
    assert land(lake, src, cohorts=2).new == {"A": 1, "B": 1}


def test_existing_bronze_tree_is_used_as_is(tmp_path):
    root = tmp_path / "root"
    write_bundles(root / "bronze/fhir/cohort=test", {"x.json": make_bundle()})
    lake = Layout.of(root)
    res = land(lake, None)
    assert list_cohorts(lake) == ["test"] and res.manifest["cohorts"] == {"test": 1}


def test_no_source_and_no_bronze_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no source folder"):
        land(Layout.of(tmp_path / "root"), None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        land(Layout.of(tmp_path / "root"), tmp_path / "missing")


def test_labels():
    assert resolve_labels(3) == ["A", "B", "C"]
    assert resolve_labels(["x1", "y2"]) == ["x1", "y2"]
    for bad in (0, 27, ["A", "A"], ["../up"]):
        with pytest.raises(ValueError):
            resolve_labels(bad)


def test_dicom_files_land_and_belong_to_their_bundles_cohort(tmp_path):
    from fhirhouse.bronze.landing import cohort_dicom_files, cohort_inputs

    uid = "1.2.840.99.7"
    names = [
        "A1_B1_0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "A2_B2_1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
    ]
    src = write_bundles(
        tmp_path / "src", {f"{n}.json": make_bundle(f"p{i}") for i, n in enumerate(names)}
    )
    (src / "dicom").mkdir()
    for n in names:
        (src / "dicom" / f"{n}{uid}.dcm").write_bytes(b"header-only")
    (src / "dicom" / "unrelated_name.dcm").write_bytes(b"x")
    root = tmp_path / "root"
    lake = Layout.of(root)
    res = land(lake, src, cohorts=2)
    assert res.dicom == 3
    assert sorted(p.name for p in (root / "bronze/dicom").iterdir()) == sorted(
        [f"{n}{uid}.dcm" for n in names] + ["unrelated_name.dcm"]
    )
    a_files = cohort_files(lake, "A")
    assert [p.name for p in cohort_dicom_files(lake, a_files)] == [f"{names[0]}{uid}.dcm"]
    assert len(cohort_inputs(lake, "B")) == 2  # its bundle and its DICOM file
    assert land(lake, src, cohorts=2).dicom == 0  # unchanged: nothing copied again


def test_landing_index_skips_unchanged_files_and_catches_same_size_edits(tmp_path):
    import os

    src, root = _source(tmp_path, 3), tmp_path / "root"
    lake = Layout.of(root)
    land(lake, src)
    text = (root / "bronze/_metadata/landed.json").read_text()
    index = json.loads(text)
    assert sorted(index) == sorted(name_key(f"f0{i}.json") for i in range(3))
    assert ".json" not in text  # file names are keyed by a digest, never written down
    path = src / "f01.json"
    os.utime(path, ns=(1, 1))  # touched, same bytes: hashed once, not replaced
    assert land(lake, src).replaced == {}
    data = path.read_bytes()
    path.write_bytes(data.replace(b"female", b"femalX"))  # same size, new bytes
    assert land(lake, src).replaced == {"B": 1}
    assert (root / "bronze/fhir/cohort=B/f01.json").read_bytes() == path.read_bytes()


def test_a_landing_cut_short_resumes_with_the_same_cohorts(tmp_path, monkeypatch):
    """Found by the crash campaign: after a kill mid-landing, the rerun used to spread the
    remaining files round-robin from A again, so cohorts differed from a clean landing."""
    import fhirhouse.bronze.landing as landing_mod

    src, root = _source(tmp_path), tmp_path / "root"
    real_copy, copies = landing_mod._copy_atomic, []

    def copy_then_crash(a, b, previous=None):
        if len(copies) == 2:
            raise KeyboardInterrupt  # stands in for the kill
        copies.append(b)
        return real_copy(a, b, previous)

    monkeypatch.setattr(landing_mod, "_copy_atomic", copy_then_crash)
    with pytest.raises(KeyboardInterrupt):
        land(Layout.of(root), src, cohorts=3)
    monkeypatch.undo()
    assert landing_mod.plan_path(Layout.of(root)).exists()
    land(Layout.of(root), src, cohorts=3)
    assert _names(root, "A") == ["f00.json", "f03.json", "f06.json"]
    assert _names(root, "B") == ["f01.json", "f04.json"]
    assert _names(root, "C") == ["f02.json", "f05.json"]
    assert not landing_mod.plan_path(Layout.of(root)).exists()


def test_temporary_copies_a_killed_landing_left_are_removed(tmp_path):
    """Several copies run at once, so a kill can leave one half-written under its temporary
    name; the next landing deletes it, and Bronze holds exactly the bundles."""
    src, root = _source(tmp_path, 3), tmp_path / "root"
    land(Layout.of(root), src)
    stale = root / "bronze/fhir/cohort=B" / ".f01.json.tmp-123-456"
    stale.write_bytes(b'{"resourceType": "Bun')
    (root / "bronze/dicom").mkdir(parents=True)
    (root / "bronze/dicom" / ".x.dcm.tmp-1-2").write_bytes(b"")
    land(Layout.of(root), src)
    assert not stale.exists() and not list((root / "bronze/dicom").iterdir())
    assert _names(root, "B") == ["f01.json"]
