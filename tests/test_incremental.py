"""Incremental Silver and Gold: a rerun parses only the bundles that changed, writes only the
rows that changed (appends on a cohort's first write, one MERGE of the changed keys after),
and ends exactly where a build from scratch of the same Bronze ends."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from conftest import build_lake, make_bundle, table_frame, write_bundles
from deltalake import DeltaTable

from fhirhouse import SILVER_TABLES, jobs
from fhirhouse.jobs.parse import parse_paths
from fhirhouse.layout import Layout
from fhirhouse.store.delta_log import silver_versions

RUN_COLUMNS = {"ingest_timestamp", "created_timestamp", "silver_versions"}


def _source(tmp_path: Path, n: int = 4) -> Path:
    return write_bundles(
        tmp_path / "src", {f"b{i}.json": make_bundle(f"p-{i}", n_enc=2) for i in range(n)}
    )


def _heart_rates(bundle: dict, delta: int) -> dict:
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Observation":
            r["valueQuantity"]["value"] += delta
    return bundle


def _relanded(root: Path, source: Path, name: str, bundle: dict) -> None:
    (source / name).write_text(json.dumps(bundle))
    jobs.land_job(Layout.of(root), source, cohorts=1)


def test_relanding_one_bundle_parses_one_bundle_and_changes_only_its_rows(tmp_path):
    source = _source(tmp_path)
    root = build_lake(tmp_path / "root", source, cohorts=1)
    layout = jobs.Layout.of(root)
    obs = DeltaTable(str(layout.silver_table("observation")))
    v0 = obs.version()
    _relanded(root, source, "b2.json", _heart_rates(make_bundle("p-2", n_enc=2), 5))
    silver = jobs.silver_job(Layout.of(root), "A").marker
    assert (silver["files"], silver["read_files"], silver["parsed_files"]) == (4, 1, 1)
    assert not silver["full"]
    tables = silver["tables"]
    assert tables["observation"]["updated"] == 2 and tables["observation"]["committed"]
    assert not any(tables[t]["committed"] for t in SILVER_TABLES if t != "observation")
    obs.update_incremental()
    assert obs.version() == v0 + 1  # one commit for the table, for the cohort
    cdf = pa.table(obs.load_cdf(starting_version=v0 + 1).read_all())
    ids, kinds = cdf["observation_id"].to_pylist(), cdf["_change_type"].to_pylist()
    changes = sorted(zip(ids, kinds, strict=True))
    assert changes == [
        (f"p-2-enc-{k}-hr", kind)
        for k in (0, 1)
        for kind in ("update_postimage", "update_preimage")
    ]
    gold = jobs.gold_job(Layout.of(root), "A")
    assert not gold["full"] and gold["recomputed"] == 2 and gold["updated"] == 2


def test_a_bundle_touched_but_not_changed_commits_nothing(tmp_path):
    source = _source(tmp_path)
    root = build_lake(tmp_path / "root", source, cohorts=1)
    lake = Layout.of(root)
    versions = silver_versions(lake)
    landed = root / "bronze/fhir/cohort=A/b1.json"
    os.utime(landed, ns=(landed.stat().st_atime_ns, landed.stat().st_mtime_ns + 10**9))
    silver = jobs.silver_job(lake, "A").marker
    assert (silver["read_files"], silver["parsed_files"]) == (1, 0)  # read and found the same
    assert silver_versions(lake) == versions
    again = jobs.silver_job(lake, "A").marker  # the new time is recorded: nothing is read
    assert again["read_files"] == 0


def test_the_quarantine_list_follows_the_bundles(tmp_path):
    source = _source(tmp_path)
    (source / "bad.json").write_text('{"resourceType": "Bundle", "entry": [')
    root = build_lake(tmp_path / "root", source, cohorts=1)
    layout = jobs.Layout.of(root)

    def entries() -> list[dict]:
        return json.loads(layout.quarantine("A").read_text())["entries"]

    assert [e["kind"] for e in entries()] == ["file"]
    landed = root / "bronze/fhir/cohort=A/bad.json"
    os.utime(landed, ns=(landed.stat().st_atime_ns, landed.stat().st_mtime_ns + 10**9))
    _relanded(root, source, "b0.json", _heart_rates(make_bundle("p-0", n_enc=2), 2))
    jobs.silver_job(Layout.of(root), "A")  # bad.json read again (touched), b0.json parsed again
    assert [e["kind"] for e in entries()] == ["file"]  # listed once, not twice
    landed.unlink()
    (source / "bad.json").unlink()
    jobs.silver_job(Layout.of(root), "A")
    assert entries() == []  # gone with its file


def test_first_writes_append_and_each_run_commits_each_table_at_most_once(tmp_path, monkeypatch):
    source = _source(tmp_path, 6)
    monkeypatch.setenv("FHIRHOUSE_RUN_ID", "first")
    root = build_lake(tmp_path / "root", source, cohorts=3)
    _relanded(root, source, "b0.json", _heart_rates(make_bundle("p-0", n_enc=3), 1))
    monkeypatch.setenv("FHIRHOUSE_RUN_ID", "second")
    build_lake(root, None, cohorts=3)
    layout = jobs.Layout.of(root)
    for t in [*SILVER_TABLES]:
        history = DeltaTable(str(layout.silver_table(t))).history()
        fhirhouse = [h for h in history if h.get("fhirhouse.cohort")]
        per_run = pl.DataFrame(
            [(h["fhirhouse.run_id"], h["fhirhouse.cohort"]) for h in fhirhouse],
            schema=["run", "cohort"],
            orient="row",
        )
        if per_run.height:
            assert per_run.group_by("run", "cohort").len()["len"].max() == 1, t
        first = [h["operation"] for h in fhirhouse][-3:]  # the oldest: each cohort's first
        assert "MERGE" not in first, (t, first)
    gold_ops = [h["operation"] for h in DeltaTable(str(layout.gold_table)).history()]
    assert gold_ops[-4:] == ["WRITE", "WRITE", "WRITE", "CREATE TABLE"]


def test_a_changed_parser_reparses_every_bundle(tmp_path, monkeypatch):
    source = _source(tmp_path)
    root = build_lake(tmp_path / "root", source, cohorts=1)
    monkeypatch.setattr("fhirhouse.jobs.silver.code_digest", lambda: "another parser")
    lake = Layout.of(root)
    silver = jobs.silver_job(lake, "A").marker
    assert silver["full"] and silver["parsed_files"] == 4
    assert not any(silver["tables"][t]["committed"] for t in SILVER_TABLES)  # same rows
    gold = jobs.gold_job(lake, "A")
    assert gold["full"] and not gold["committed"]


def test_the_parse_on_several_processes_equals_the_parse_on_one(tmp_path, monkeypatch):
    source = _source(tmp_path, 5)
    (source / "bad.json").write_text('{"resourceType": "Bundle", "entry": [')
    paths = sorted(source.glob("*.json"))
    sizes = [p.stat().st_size for p in paths]
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    one = parse_paths("A", paths, sizes, tmp_path / "dicom", now, workers=1)
    monkeypatch.setattr(jobs, "WORKER_BYTES", 1)  # every byte is worth a worker
    two = parse_paths("A", paths, sizes, tmp_path / "dicom", now, workers=2)
    assert one.digests == two.digests and one.bytes == two.bytes
    key = lambda q: (q["file_ref"], q["reason"])  # noqa: E731
    assert sorted(one.quarantine, key=key) == sorted(two.quarantine, key=key)
    for t in SILVER_TABLES:
        a, b = (pl.from_arrow(x.tables[t]).sort(pl.all()) for x in (one, two))
        assert a.equals(b), t


def _same_as_a_fresh_build(root: Path, tmp_path: Path, step: int) -> None:
    """Silver, Gold, the checks' and the manifest's numbers equal a build from scratch of a
    copy of the same Bronze tree."""
    fresh = tmp_path / f"fresh-{step}"
    shutil.copytree(root / "bronze" / "fhir", fresh / "bronze" / "fhir")
    build_lake(fresh, None)
    a, b = jobs.Layout.of(root), jobs.Layout.of(fresh)
    for t in SILVER_TABLES:
        got = table_frame(a.silver_table(t), RUN_COLUMNS)
        want = table_frame(b.silver_table(t), RUN_COLUMNS)
        assert got.equals(want), (step, t)
    assert table_frame(a.gold_table, RUN_COLUMNS).equals(table_frame(b.gold_table, RUN_COLUMNS))
    for cohort in jobs.silver_cohorts(Layout.of(fresh)):
        for path in (a.check_gold(cohort), a.check_cohort("observation", cohort)):
            mine = json.loads(path.read_text())
            theirs = json.loads(Path(str(path).replace(str(a.root), str(b.root))).read_text())
            assert mine["checks"] == theirs["checks"], (step, path.name)
    ma, mb = (json.loads(x.corpus_manifest.read_text()) for x in (a, b))
    assert ma["corpus_stats"] == mb["corpus_stats"] and ma["cohorts"] == mb["cohorts"], step


def test_incremental_builds_end_where_a_fresh_build_ends(tmp_path):
    """Random edits, removals and additions, including resource ids shared by two bundles of
    a cohort (the later file wins): after each step the incremental build equals a fresh one."""
    rng = random.Random(7)
    source = _source(tmp_path, 6)
    root = build_lake(tmp_path / "root", source, cohorts=2)
    for step in range(6):
        names = sorted(p.name for p in source.glob("*.json"))
        action = rng.choice(["edit", "edit", "remove", "add", "share"])
        if action == "edit":
            name = rng.choice(names)
            bundle = json.loads((source / name).read_text())
            _relanded(root, source, name, _heart_rates(bundle, rng.randint(1, 9)))
        elif action == "remove" and len(names) > 2:
            name = rng.choice(names)
            (source / name).unlink()
            next(root.glob(f"bronze/fhir/cohort=*/{name}")).unlink()
        else:  # a new bundle; "share": it repeats an observation id of an existing bundle
            pid = f"p-new-{step}"
            bundle = make_bundle(pid, n_enc=1 + step % 3)
            if action == "share":
                other = json.loads((source / rng.choice(names)).read_text())
                shared = next(
                    e for e in other["entry"] if e["resource"]["resourceType"] == "Observation"
                )
                copy = json.loads(json.dumps(shared))
                copy["resource"]["subject"] = {"reference": f"urn:uuid:{pid}"}
                copy["resource"]["encounter"] = {"reference": f"urn:uuid:{pid}-enc-0"}
                bundle["entry"].append(copy)
            _relanded(root, source, f"z{step}.json", bundle)
        build_lake(root, None, cohorts=2)
        _same_as_a_fresh_build(root, tmp_path, step)


def test_gold_numbers_in_doubt_after_a_crash_are_recomputed(tmp_path):
    source = _source(tmp_path)
    root = build_lake(tmp_path / "root", source, cohorts=1)
    layout = jobs.Layout.of(root)
    state = json.loads(layout.gold_state("A").read_text())
    layout.gold_state("A").write_text(json.dumps({**state, "dirty": True, "counts": {}}))
    _relanded(root, source, "b1.json", _heart_rates(make_bundle("p-1", n_enc=2), 3))
    jobs.silver_job(Layout.of(root), "A")
    gold = jobs.gold_job(Layout.of(root), "A")
    assert gold["full"] and gold["rows"] == 8
    assert json.loads(layout.gold_state("A").read_text())["counts"]["rows"] == 8


@pytest.mark.parametrize("table", ["observation", "patient"])
def test_one_table_is_rewritten_from_the_parse_cache(tmp_path, table):
    source = _source(tmp_path)
    root = build_lake(tmp_path / "root", source, cohorts=1)
    lake = Layout.of(root)
    layout = lake
    want = table_frame(layout.silver_table(table), RUN_COLUMNS)
    path = layout.silver_table(table)
    DeltaTable(str(path)).delete("patient_id = 'p-1'")  # damage one table behind our back
    for bundle in root.glob("bronze/fhir/cohort=A/*.json"):
        bundle.unlink()  # the rewrite reads no bundle
    marker = jobs.silver_table_job(lake, "A", table)
    assert marker["inserted"] >= 1 and marker["table"] == table
    assert table_frame(path, RUN_COLUMNS).equals(want)


def test_a_dicom_file_counts_for_its_own_bundle_only(tmp_path):
    """The DICOM files of a bundle are those named after its stem: a bundle whose stem
    begins another bundle's stem does not take that bundle's DICOM files."""
    from fhirhouse.jobs.parse import file_states

    uuid = "0123456789abcdef0123456789abcdef0123"
    short, longer = tmp_path / "A.json", tmp_path / f"A_{uuid}.json"
    for p in (short, longer):
        p.write_text("{}")
    dicom = tmp_path / f"A_{uuid}1.2.3.dcm"  # stem A_<uuid>, StudyInstanceUID 1.2.3
    dicom.write_bytes(b"x")
    states = file_states([short, longer], [dicom])
    assert states[short.name].dicom == "" and states[longer.name].dicom != ""
