"""The bad-input matrix: each bad file next to good ones, built through the job functions.

Every case ends with the good bundles built through Gold, the bad file listed in
``<root>/bronze/_quarantine/cohort=A.json`` with a reason, and one WARNING line naming the
file only by its redacted reference.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from conftest import build_lake, make_bundle, make_claims_bundle, write_bundles

from fhirhouse import jobs
from fhirhouse.checks.validate import validate_table
from fhirhouse.layout import Layout
from fhirhouse.redact import redact
from fhirhouse.store.delta import read_table

GOOD = {"good-1.json": make_bundle("p-good-1", n_enc=2), "good-2.json": make_bundle("p-good-2")}


def _resources(bundle: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"].get("resourceType") == rtype]


def _build(tmp_path: Path, name: str, content: bytes) -> Path:
    src = write_bundles(tmp_path / "src", GOOD)
    (src / name).write_bytes(content)
    return build_lake(tmp_path / "root", src, cohorts=1)


def _quarantine(root: Path) -> list[dict[str, Any]]:
    return json.loads(jobs.Layout.of(root).quarantine("A").read_text())["entries"]


def _ids(root: Path, table: str, key: str) -> list[str]:
    return sorted(read_table(jobs.Layout.of(root).silver_table(table)).column(key).to_pylist())


def _assert_good_built(root: Path, extra_patients: tuple[str, ...] = ()) -> None:
    assert _ids(root, "patient", "patient_id") == sorted(["p-good-1", "p-good-2", *extra_patients])
    gold = pl.read_delta(str(jobs.Layout.of(root).gold_table))
    good_encounters = {"p-good-1-enc-0", "p-good-1-enc-1", "p-good-2-enc-0"}
    assert good_encounters <= set(gold["encounter_id"])
    assert gold["encounter_id"].is_unique().all()


def _one_warning(caplog: pytest.LogCaptureFixture, name: str) -> str:
    lines = [r.getMessage() for r in caplog.records if redact(name) in r.getMessage()]
    assert len(lines) == 1, lines
    assert "\n" not in lines[0] and name not in lines[0]
    return lines[0]


def _bytes(doc: Any) -> bytes:
    return orjson.dumps(doc)


def _no_patient() -> bytes:
    b = make_bundle("p-bad")
    b["entry"] = b["entry"][1:]
    return _bytes(b)


def _two_patients() -> bytes:
    b = make_bundle("p-bad")
    b["entry"] += make_bundle("p-bad-2", n_enc=0)["entry"]
    return _bytes(b)


def _deep_claim() -> bytes:
    """A Claim nested 2000 levels deep: it used to stop the job with a RecursionError."""
    b = make_bundle("p-bad")
    b["entry"].append({"resource": {"resourceType": "Claim", "id": "c", "item": "DEEP"}})
    return _bytes(b).replace(b'"DEEP"', b"[" * 2000 + b"]" * 2000)


def _non_utf8_full_url() -> bytes:
    """A fullUrl that is not UTF-8: it used to stop the job with a UnicodeDecodeError."""
    return _bytes(make_bundle("p-bad")).replace(b"urn:uuid:p-bad", b"urn:uuid:\xff", 1)


# (file content, the quarantine reason it must start with)
WHOLE_FILE_CASES: dict[str, tuple[Callable[[], bytes], str]] = {
    "empty": (lambda: b"", "empty file"),
    "whitespace": (lambda: b"  \n\t", "empty file"),
    "truncated": (lambda: _bytes(make_bundle("p-bad"))[:300], "not valid JSON (unexpected end"),
    "garbage": (lambda: b"\x89PNG\r\n\x1a\n", "not valid JSON"),
    "not-object": (lambda: b"[1, 2, 3]", "not a FHIR Bundle: top-level JSON is list"),
    "string": (lambda: b'"Bundle"', "not a FHIR Bundle: top-level JSON is str"),
    "not-bundle": (
        lambda: _bytes({"resourceType": "Patient", "id": "p-bad"}),
        "not a FHIR Bundle: resourceType is 'Patient'",
    ),
    "no-resource-type": (lambda: b'{"entry": []}', "not a FHIR Bundle: resourceType is missing"),
    "no-patient": (_no_patient, "Bundle has no Patient resource"),
    "two-patients": (_two_patients, "Bundle has 2 Patient resources"),
    "entry-not-list": (
        lambda: _bytes({"resourceType": "Bundle", "entry": {"resource": {}}}),
        "Bundle.entry is dict, not a list",
    ),
    "deep-claim": (_deep_claim, "JSON nested deeper than 128 levels"),
    "non-utf8-full-url": (_non_utf8_full_url, "not valid JSON (str is not valid UTF-8"),
}


@pytest.mark.parametrize("case", sorted(WHOLE_FILE_CASES))
def test_whole_file_is_quarantined_and_the_rest_builds(tmp_path, caplog, case):
    content, reason = WHOLE_FILE_CASES[case]
    name = f"bad-{case}.json"
    data = content()
    with caplog.at_level(logging.WARNING):
        root = _build(tmp_path, name, data)
    _assert_good_built(root)
    [entry] = [e for e in _quarantine(root) if e["kind"] == "file"]
    assert entry["file_ref"] == redact(name) and entry["reason"].startswith(reason)
    assert entry["bytes"] == len(data)
    assert f"quarantined: {entry['reason']}" in _one_warning(caplog, name)
    marker = json.loads(jobs.Layout.of(root).silver_cohort_marker("A").read_text())
    assert marker["files"] == 3 and marker["quarantined_files"] == 1


def _entries_without_type() -> dict:
    b = make_bundle("p-bad")
    b["entry"] += [{"resource": {"id": "x"}}, {"fullUrl": "urn:uuid:y"}, "entry"]
    return b


def _without_ids() -> dict:
    b = make_bundle("p-bad", n_enc=2)
    del _resources(b, "Observation")[0]["id"]
    _resources(b, "Observation")[1]["id"] = {"value": "not a string"}
    return b


def _dangling() -> dict:
    b = make_bundle("p-bad", n_enc=2)
    _resources(b, "Observation")[0]["encounter"] = {"reference": "urn:uuid:gone"}
    _resources(b, "DocumentReference")[1]["subject"] = {"reference": "Patient/p-good-1"}
    return b


def _bad_notes() -> dict:
    b = make_bundle("p-bad", n_enc=2)
    notes = _resources(b, "DocumentReference")
    notes[0]["content"][0]["attachment"]["data"] = "abc"  # bad padding
    latin1 = base64.b64encode("Plan: caf\u00e9".encode("latin-1")).decode()
    notes[1]["content"][0]["attachment"]["data"] = latin1  # not UTF-8
    return b


# (bundle of p-bad, the reasons of its resource-level entries, rows of p-bad kept per table)
RESOURCE_CASES: dict[str, tuple[Callable[[], dict], list[str], dict[str, int]]] = {
    "entries-without-resourceType": (
        _entries_without_type,
        ["entry_not_an_object", "entry_without_resource", "entry_without_resourceType"],
        {"encounter": 1, "observation": 1},
    ),
    "resources-without-id": (
        _without_ids,
        ["missing_id", "missing_id"],
        {"encounter": 2, "observation": 0},
    ),
    "references-to-missing-resources": (
        _dangling,
        ["dangling_reference:encounter", "dangling_reference:subject"],
        {"encounter": 2, "observation": 1, "soap_note": 1},
    ),
    "invalid-base64-and-non-utf8-notes": (
        _bad_notes,
        ["note_undecodable:Error", "note_undecodable:UnicodeDecodeError"],
        {"encounter": 2, "soap_note": 0},
    ),
}


@pytest.mark.parametrize("case", sorted(RESOURCE_CASES))
def test_bad_resources_are_dropped_listed_and_the_rest_of_the_file_builds(tmp_path, caplog, case):
    bundle, reasons, kept = RESOURCE_CASES[case]
    name = f"bad-{case}.json"
    with caplog.at_level(logging.WARNING):
        root = _build(tmp_path, name, _bytes(bundle()))
    _assert_good_built(root, extra_patients=("p-bad",))
    entries = [e for e in _quarantine(root) if e["kind"] == "resource"]
    assert all(e["file_ref"] == redact(name) for e in entries)
    assert sorted(e["reason"] for e in entries) == reasons
    for table, n in kept.items():
        key = {"soap_note": "note_id"}.get(table, f"{table}_id")
        rows = [k for k in _ids(root, table, key) if k.startswith("p-bad")]
        assert len(rows) == n, (table, rows)
    line = _one_warning(caplog, name)
    assert f"{len(reasons)} resource(s) dropped" in line
    # what is left is consistent: no Silver row points at a patient or encounter not in Silver
    layout = jobs.Layout.of(root)
    pids = pl.from_arrow(read_table(layout.silver_table("patient")))["patient_id"]
    eids = pl.from_arrow(read_table(layout.silver_table("encounter")))["encounter_id"]
    for table in ("observation", "soap_note", "encounter"):
        df = pl.from_arrow(read_table(layout.silver_table(table)))
        result = validate_table(table, df, patient_ids=pids, encounter_ids=eids)
        assert all(c.passed for c in result.checks if c.rule.startswith("references")), table


def test_odd_and_invalid_dates_parse_or_become_listed_nulls(tmp_path, caplog):
    b = make_bundle("p-bad", n_enc=4)
    patient = _resources(b, "Patient")[0]
    patient["birthDate"] = "1980-07"  # partial date: first day of the month
    patient["deceasedDateTime"] = "yesterday-ish"  # invalid: null, listed
    starts = ["20210310", "2021-03-10T09:00:00+14:00", "2021-03-10 09:00", "31/02/2021"]
    for enc, start in zip(_resources(b, "Encounter"), starts, strict=True):
        enc["period"]["start"] = start
    with caplog.at_level(logging.WARNING):
        root = _build(tmp_path, "bad-dates.json", _bytes(b))
    _assert_good_built(root, extra_patients=("p-bad",))
    layout = jobs.Layout.of(root)
    pat = pl.read_delta(str(layout.silver_table("patient"))).filter(pl.col("patient_id") == "p-bad")
    assert str(pat["birth_date"][0]) == "1980-07-01"
    assert pat["deceased_date"][0] is None and pat["deceased"][0] is True
    enc = pl.read_delta(str(layout.silver_table("encounter"))).filter(
        pl.col("patient_id") == "p-bad"
    )
    got = dict(zip(enc["encounter_id"], enc["start_date"], strict=True))
    assert got["p-bad-enc-0"].isoformat() == "2021-03-10T00:00:00+00:00"
    assert got["p-bad-enc-1"].isoformat() == "2021-03-09T19:00:00+00:00"
    assert got["p-bad-enc-2"].isoformat() == "2021-03-10T09:00:00+00:00"
    assert got["p-bad-enc-3"] is None  # 31 February
    values = {
        (e["table"], e["column"]): e["count"] for e in _quarantine(root) if e["kind"] == "value"
    }
    assert values == {("patient", "deceased_date"): 1, ("encounter", "start_date"): 1}
    marker = json.loads(layout.silver_cohort_marker("A").read_text())
    assert marker["null_coerced_values"] == 2
    logged = [r.getMessage() for r in caplog.records if redact("bad-dates.json") in r.getMessage()]
    assert len(logged) == 2 and all("stored as null" in m for m in logged)
    assert not any("31/02" in m or "yesterday" in m for m in logged)  # values are never logged


def test_numbers_as_strings_and_strings_as_numbers(tmp_path):
    b = make_bundle("p-bad", n_enc=3)
    obs = _resources(b, "Observation")
    obs[0]["valueQuantity"]["value"] = "72.5"  # a number as a string: read as 72.5
    obs[1]["valueQuantity"]["value"] = "high"  # not a number: null, listed
    obs[2]["code"]["coding"][0]["code"] = 88674  # a code as a number: read as "88674"
    _resources(b, "Patient")[0]["address"][0]["postalCode"] = 2118  # as a number
    _resources(b, "Encounter")[0]["status"] = {"text": "finished"}  # an object for a string
    root = _build(tmp_path, "bad-types.json", _bytes(b))
    _assert_good_built(root, extra_patients=("p-bad",))
    layout = jobs.Layout.of(root)
    o = pl.read_delta(str(layout.silver_table("observation"))).filter(
        pl.col("patient_id") == "p-bad"
    )
    by_id = {r["observation_id"]: r for r in o.to_dicts()}
    assert by_id["p-bad-enc-0-hr"]["value"] == 72.5
    assert by_id["p-bad-enc-1-hr"]["value"] is None
    assert by_id["p-bad-enc-2-hr"]["code"] == "88674"
    pat = pl.read_delta(str(layout.silver_table("patient"))).filter(pl.col("patient_id") == "p-bad")
    assert pat["zip"][0] == "2118"
    values = {
        (e["table"], e["column"]): e["count"] for e in _quarantine(root) if e["kind"] == "value"
    }
    assert values == {("observation", "value"): 1, ("encounter", "status"): 1}


def test_a_200_mb_bundle_builds(tmp_path):
    """Most of a big Synthea bundle is claims; this one is 200 MB of them around 30 rows."""
    b = make_claims_bundle("p-big", 200)
    data = json.dumps(b).encode()  # as make_claims_bundle measures it
    assert len(data) >= 199_000_000
    root = _build(tmp_path, "big.json", data)
    del data, b
    _assert_good_built(root, extra_patients=("p-big",))
    assert len([k for k in _ids(root, "encounter", "encounter_id") if k.startswith("p-big")]) == 10
    assert _quarantine(root) == []


ODD_NAMES = ['it\'s "quoted".json', "with  spaces .json", "Zoë_Ågård_Dvořák.json", "-dash.json"]


def test_odd_file_names_build_and_never_appear(tmp_path, caplog):
    src = write_bundles(tmp_path / "src", GOOD)
    for k, name in enumerate(ODD_NAMES):
        (src / name).write_bytes(_bytes(make_bundle(f"p-odd-{k}")))
    (src / "bad 'name'.json").write_bytes(b"{")
    with caplog.at_level(logging.DEBUG):
        root = build_lake(tmp_path / "root", src, cohorts=2)
    _assert_good_built(root, extra_patients=tuple(f"p-odd-{k}" for k in range(4)))
    assert [e["file_ref"] for e in _quarantine(root) + _quarantine_b(root)] == [
        redact("bad 'name'.json")
    ]
    text = "\n".join(r.getMessage() for r in caplog.records)
    for name in [*ODD_NAMES, "bad 'name'.json"]:
        assert name not in text and Path(name).stem not in text


def _quarantine_b(root: Path) -> list[dict[str, Any]]:
    return json.loads(jobs.Layout.of(root).quarantine("B").read_text())["entries"]


def test_same_patient_in_two_cohorts_is_caught_by_the_duplicate_check(tmp_path):
    """Documented outcome (README, "Bad input"): Silver keeps both copies, one per cohort;
    the whole-table check `no_cross_cohort_duplicates` fails for every table the copy touches;
    under `on_failure: fail` the run stops there; Gold keeps one row per encounter."""
    src = write_bundles(
        tmp_path / "src",
        {
            "a-1.json": make_bundle("p-1"),
            "b-1.json": make_bundle("p-2"),
            "c-1.json": GOOD["good-1.json"],
        },
    )
    # the same patient again in a later drop landed into cohort D
    drop = write_bundles(tmp_path / "drop", {"copy.json": GOOD["good-1.json"]})
    root = build_lake(tmp_path / "root", src, cohorts=2)
    jobs.land_job(Layout.of(root), drop, cohorts=2, cohort="D")
    build_lake(root, None, cohorts=2)
    layout = jobs.Layout.of(root)
    patients = pl.read_delta(str(layout.silver_table("patient")))
    assert patients.filter(pl.col("patient_id") == "p-good-1")["cohort"].sort().to_list() == [
        "A",
        "D",
    ]
    summary = jobs.check_tables_job(Layout.of(root), policy="warn")
    assert not summary["passed"]
    failed = {
        (t, c["rule"])
        for t in ("patient", "encounter", "observation", "soap_note", "condition")
        for c in json.loads(layout.check_table(t).read_text())["checks"]
        if not c["passed"] and c["rule"].startswith(("no_cross", "unique"))
    }
    assert failed == {
        (t, f"{rule}:{key}")
        for t, key in [
            ("patient", "patient_id"),
            ("encounter", "encounter_id"),
            ("observation", "observation_id"),
            ("soap_note", "note_id"),
        ]
        for rule in ("unique", "no_cross_cohort_duplicates")
    }
    with pytest.raises(jobs.CheckFailed, match="check failed: patient"):
        jobs.check_tables_job(Layout.of(root), policy="fail")
    gold = pl.read_delta(str(layout.gold_table))
    assert gold["encounter_id"].is_unique().all()
    assert gold.filter(pl.col("patient_id") == "p-good-1").height == 2
