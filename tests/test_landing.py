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


def _names(root, cohort):
    return [p.name for p in cohort_files(root, cohort)]


def _source(tmp_path, n=7):
    return write_bundles(
        tmp_path / "src", {f"f{i:02d}.json": make_bundle(f"p{i}") for i in range(n)}
    )


def test_initial_landing_is_round_robin_over_sorted_names(tmp_path):
    src, root = _source(tmp_path), tmp_path / "root"
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    res = land(root, src, cohorts=3)
    assert list_cohorts(root) == ["A", "B", "C"]
    assert _names(root, "A") == ["f00.json", "f03.json", "f06.json"]
    assert _names(root, "B") == ["f01.json", "f04.json"]
    assert _names(root, "C") == ["f02.json", "f05.json"]
    assert res.new == {"A": 3, "B": 2, "C": 2}
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # source untouched
    manifest = json.loads(manifest_path(root).read_text())
    assert manifest["file_count"] == 7 and manifest["cohorts"] == {"A": 3, "B": 2, "C": 2}
    assert manifest["total_bytes"] == sum(len(b) for b in before.values())
    assert manifest["source"] == str(src) and manifest["ingested_at"].endswith("+00:00")


def test_new_drop_into_named_cohort_and_landed_files_keep_their_cohort(tmp_path):
    src, root = _source(tmp_path, 3), tmp_path / "root"
    land(root, src)
    write_bundles(src, {"g1.json": make_bundle("q1"), "g2.json": make_bundle("q2")})
    res = land(root, src, cohort="D")
    assert res.new == {"D": 2} and res.unchanged == 3
    assert _names(root, "D") == ["g1.json", "g2.json"]
    assert _names(root, "A") == ["f00.json"]


def test_changed_bytes_replace_the_bronze_copy_in_place(tmp_path):
    src, root = _source(tmp_path, 3), tmp_path / "root"
    land(root, src)
    write_bundles(src, {"f01.json": make_bundle("p1", n_enc=2)})
    res = land(root, src)
    assert res.replaced == {"B": 1} and res.new == {}
    assert (root / "bronze/fhir/cohort=B/f01.json").read_bytes() == (src / "f01.json").read_bytes()
    assert land(root, src).touched_cohorts == []  # idempotent


def test_later_batch_without_cohort_is_round_robin_too(tmp_path):
    src, root = _source(tmp_path, 2), tmp_path / "root"
    land(root, src, cohorts=2)
    write_bundles(src, {"h1.json": make_bundle("r1"), "h2.json": make_bundle("r2")})
    assert land(root, src, cohorts=2).new == {"A": 1, "B": 1}


def test_existing_bronze_tree_is_used_as_is(tmp_path):
    root = tmp_path / "root"
    write_bundles(root / "bronze/fhir/cohort=test", {"x.json": make_bundle()})
    res = land(root, None)
    assert list_cohorts(root) == ["test"] and res.manifest["cohorts"] == {"test": 1}


def test_no_source_and_no_bronze_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no source folder"):
        land(tmp_path / "root", None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        land(tmp_path / "root", tmp_path / "missing")


def test_labels():
    assert resolve_labels(3) == ["A", "B", "C"]
    assert resolve_labels(["x1", "y2"]) == ["x1", "y2"]
    for bad in (0, 27, ["A", "A"], ["../up"]):
        with pytest.raises(ValueError):
            resolve_labels(bad)
