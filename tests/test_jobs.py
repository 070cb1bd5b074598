"""The job functions end to end without Snakemake: quarantine, markers, parity with the oracle."""

from __future__ import annotations

import json

import polars as pl
import pytest
from conftest import FIXTURES, ORACLE, build_lake, make_bundle, require_shared, write_bundles

from fhirhouse import SILVER_TABLES, jobs
from fhirhouse.bronze.landing import cohort_files, list_cohorts
from fhirhouse.layout import Layout
from fhirhouse.redact import redact
from fhirhouse.silver.registry import spec
from fhirhouse.store.delta import read_table


def build_all(root, source, cohorts=3):
    return build_lake(root, source, cohorts=cohorts, gold=False)


def test_bad_files_are_quarantined_and_the_rest_builds(tmp_path):
    bad_note = {
        "resourceType": "DocumentReference",
        "id": "bad-note",
        "content": [{"attachment": {"data": "abc"}}],  # bad Base64 padding
    }
    src = write_bundles(
        tmp_path / "src",
        {"good1.json": make_bundle("p1"), "good2.json": make_bundle("p2", extra=[bad_note])},
    )
    (src / "empty.json").write_bytes(b"")
    (src / "trunc.json").write_text('{"resourceType": "Bundle", "entry": [')
    (src / "list.json").write_text("[1, 2]")
    (src / "patient.json").write_text(json.dumps({"resourceType": "Patient", "id": "x"}))
    root = tmp_path / "root"
    build_all(root, src, cohorts=1)
    lake = Layout.of(root)
    marker = json.loads(lake.silver_cohort_marker("A").read_text())
    assert marker["files"] == 6
    assert marker["quarantined_files"] == 4 and marker["quarantined_resources"] == 1
    q = json.loads(lake.quarantine("A").read_text())
    reasons = {e["file_ref"]: e["reason"] for e in q["entries"] if e["kind"] == "file"}
    assert reasons[redact("empty.json")] == "empty file"
    assert reasons[redact("trunc.json")].startswith("not valid JSON")
    assert reasons[redact("list.json")].startswith("not a FHIR Bundle")
    assert reasons[redact("patient.json")].startswith("not a FHIR Bundle")
    note_issue = next(e for e in q["entries"] if e["kind"] == "resource")
    assert note_issue["file_ref"] == redact("good2.json")
    assert note_issue["reason"].startswith("note_undecodable")
    assert "good2" not in json.dumps(q)  # file names never appear, only refs
    patients = read_table(lake.silver_table("patient"))
    assert sorted(patients.column("patient_id").to_pylist()) == ["p1", "p2"]
    notes = read_table(lake.silver_table("soap_note"))
    assert "bad-note" not in notes.column("note_id").to_pylist()


def test_the_parse_index_records_each_bundle_by_a_digest_of_its_name(tmp_path):
    """What each bundle was parsed from is kept under a digest of its name (no file name is
    written down) with the digest of the bytes parsed; a quarantine entry carries the
    SHA-256 of its file."""
    import hashlib

    from fhirhouse import digest
    from fhirhouse.jobs.parse import ParseIndex
    from fhirhouse.redact import name_key
    from fhirhouse.synth import write_corpus

    src = tmp_path / "src"
    assert write_corpus(src, 4, 3)["dicom_files"] > 0
    (src / "broken.json").write_bytes(b'{"resourceType": "Bundle", "entry": [')
    root = tmp_path / "root"
    lake = Layout.of(root)
    jobs.land_job(lake, src, cohorts=1)
    silver = jobs.silver_job(lake, "A")
    assert silver.marker["quarantined_files"] == 1 and silver.marker["parsed_files"] == 5
    layout = lake
    index = ParseIndex.read(layout.parse_index("A"))
    files = cohort_files(lake, "A")
    assert set(index.files) == {name_key(p.name) for p in files}
    for p in files:
        assert index.files[name_key(p.name)].digest == digest.of_bytes(p.read_bytes())
    text = layout.parse_index("A").read_text()
    assert not any(p.stem in text for p in files)
    with_dicom = [s for s in index.files.values() if s.dicom]
    assert with_dicom  # a bundle's DICOM files are part of what it was parsed from
    q = json.loads(layout.quarantine("A").read_text())
    broken = next(e for e in q["entries"] if e["kind"] == "file")
    data = (src / "broken.json").read_bytes()
    assert broken["sha256"] == hashlib.sha256(data).hexdigest()
    assert broken["bytes"] == len(data)


def test_every_table_exists_with_cdf_even_when_empty(tmp_path):
    src = write_bundles(tmp_path / "src", {"a.json": make_bundle()})
    root = tmp_path / "root"
    build_all(root, src, cohorts=1)
    from deltalake import DeltaTable

    for table in SILVER_TABLES:
        t = DeltaTable(str(jobs.Layout.of(root).silver_table(table)))
        assert t.metadata().configuration["delta.enableChangeDataFeed"] == "true"
        assert t.schema().to_arrow().names == spec(table).schema.names


def test_removing_a_bundle_deletes_its_rows_from_that_cohort_only(tmp_path):
    src = write_bundles(
        tmp_path / "src", {f"f{i}.json": make_bundle(f"p{i}", n_enc=2) for i in range(4)}
    )
    root = tmp_path / "root"
    build_all(root, src, cohorts=2)
    (root / "bronze/fhir/cohort=A/f0.json").unlink()
    lake = Layout.of(root)
    jobs.bronze_cohort_job(lake, "A")
    m = jobs.silver_job(lake, "A").marker
    assert m["parsed_files"] == 0
    enc = m["tables"]["encounter"]
    assert (enc["deleted"], enc["inserted"], enc["updated"]) == (2, 0, 0)
    enc = read_table(lake.silver_table("encounter"))
    assert sorted(set(enc.column("patient_id").to_pylist())) == ["p1", "p2", "p3"]


@pytest.fixture(scope="module")
def fixture_build(tmp_path_factory):
    require_shared()
    root = tmp_path_factory.mktemp("parity") / "root"
    build_all(root, FIXTURES, cohorts=3)
    return root


def test_cohort_assignment_matches_reference(fixture_build):
    expected = json.loads((ORACLE / "cohort_assignment.json").read_text())
    got = {
        p.name: c
        for c in list_cohorts(Layout.of(fixture_build))
        for p in cohort_files(Layout.of(fixture_build), c)
    }
    assert got == {e["file"]: e["cohort"] for e in expected}


@pytest.mark.parametrize("table", SILVER_TABLES)
def test_silver_parity_with_reference(fixture_build, table):
    key = spec(table).key
    ours = pl.from_arrow(read_table(jobs.Layout.of(fixture_build).silver_table(table)))
    ref = pl.read_parquet(ORACLE / f"silver_{table}.parquet")
    cols = [c for c in ref.columns if c != "ingest_timestamp"]
    ours = ours.select(cols).sort(key)
    ref = ref.select(cols).sort(key)
    assert ours.schema == ref.schema
    assert ours.height == ref.height
    for col in cols:
        assert ours[col].equals(ref[col]), f"{table}.{col} differs from the reference"
