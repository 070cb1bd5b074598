"""Concurrency, idempotence and re-landing, and identifiers under debug logging, through the
real `snakemake` CLI with the workflow profile."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import polars as pl
import pytest
from conftest import (
    FIXTURES,
    make_bundle,
    no_surfaced_conflicts,
    require_shared,
    snakemake,
    snakemake_side_by_side,
    write_bundles,
)

from fhirhouse import SILVER_TABLES, jobs
from fhirhouse.bronze import landing
from fhirhouse.layout import Layout
from fhirhouse.redact import redact
from fhirhouse.silver.registry import spec
from fhirhouse.store.delta import table_version
from fhirhouse.store.history import read_run_history

pytestmark = pytest.mark.workflow

ODD_NAMES = ['it\'s "quoted".json', "with  spaces .json", "Zoë Ågård.json", "-dash;$(id).json"]


def _versions(root: Path) -> dict[str, int | None]:
    layout = jobs.Layout.of(root)
    return {t: table_version(layout.silver_table(t)) for t in [*SILVER_TABLES]} | {
        "gold": table_version(layout.gold_table)
    }


def _keys(root: Path, table: str) -> pl.DataFrame:
    key = spec(table).key
    return pl.read_delta(str(jobs.Layout.of(root).silver_table(table))).select("cohort", key)


def _assert_complete(root: Path, patients: set[str], encounters_per_patient: int) -> None:
    """Every patient and encounter present once, Gold one row per encounter."""
    for table in SILVER_TABLES:
        keys = _keys(root, table)
        assert keys[spec(table).key].is_unique().all(), table
    pids = set(_keys(root, "patient")["patient_id"])
    assert pids == patients
    assert _keys(root, "encounter").height == len(patients) * encounters_per_patient
    gold = pl.read_delta(str(jobs.Layout.of(root).gold_table))
    assert gold.height == len(patients) * encounters_per_patient
    assert gold["encounter_id"].is_unique().all()


def _source_of(folder: Path, n: int, odd: bool = False) -> tuple[Path, set[str]]:
    bundles = {f"b{i:03d}.json": make_bundle(f"p-{i:03d}", n_enc=2) for i in range(n)}
    if odd:
        for k, name in enumerate(ODD_NAMES):
            bundles[name] = bundles.pop(f"b{k:03d}.json")
    write_bundles(folder, bundles)
    return folder, {f"p-{i:03d}" for i in range(n)}


# slow: a scale run; two parallel invocations (below) cover concurrent cohorts in `make test`.
@pytest.mark.slow
def test_twelve_cohorts_with_four_cores(tmp_path):
    source, patients = _source_of(tmp_path / "src", 24, odd=True)
    root = tmp_path / "lake"
    proc = snakemake(
        tmp_path, "--cores", "4", config={"root": root, "source": source, "cohorts": 12}
    )
    no_surfaced_conflicts(proc)
    lake = Layout.of(root)
    assert landing.list_cohorts(lake) == [chr(ord("A") + i) for i in range(12)]
    _assert_complete(root, patients, 2)
    # each table got one commit per cohort, and no cohort's rows ended in another's partition
    for table in ("patient", "encounter", "observation"):
        versions = table_version(lake.silver_table(table))
        assert versions == 12, (table, versions)  # version 0 is the creation
    per_cohort = _keys(root, "patient").group_by("cohort").len()
    assert per_cohort["len"].sum() == 24 and per_cohort.height == 12


def test_two_parallel_invocations_on_disjoint_cohorts(tmp_path):
    source, patients = _source_of(tmp_path / "src", 8)
    root = tmp_path / "lake"
    config = {"root": root, "source": source, "cohorts": 4}
    # land first (one checkpoint for the whole root), then two backfills side by side
    lake = Layout.of(root)
    snakemake(tmp_path, "--cores", "1", str(lake.landing_marker()), config=config)
    runs = [
        ["--cores", "2", *[str(lake.gold_marker(c)) for c in cohorts]] for cohorts in ("AB", "CD")
    ]
    for proc in snakemake_side_by_side(tmp_path, runs, config):
        no_surfaced_conflicts(proc)
    snakemake(tmp_path, "--cores", "2", config=config)  # the manifest and whole-table checks
    _assert_complete(root, patients, 2)


def test_relanding_the_same_drop_a_changed_bundle_and_a_removed_bundle(tmp_path):
    source, patients = _source_of(tmp_path / "src", 4)
    root = tmp_path / "lake"
    config = {"root": root, "source": source, "cohorts": 2}

    def run_then_noop() -> dict[str, int | None]:
        snakemake(tmp_path, "--cores", "2", config=config)
        dry = snakemake(tmp_path, "--cores", "2", "-n", config=config)
        assert "Nothing to be done" in dry.stdout + dry.stderr
        return _versions(root)

    first = run_then_noop()
    _assert_complete(root, patients, 2)

    # 1. the same drop again (files touched, bytes equal): nothing lands, nothing commits
    for p in source.iterdir():
        p.write_bytes(p.read_bytes())
    assert run_then_noop() == first

    # 2. a changed bundle: its rows are updated in place, nothing else changes
    changed = make_bundle("p-001", n_enc=2)
    changed["entry"][0]["resource"]["gender"] = "male"
    (source / "b001.json").write_text(json.dumps(changed))
    second = run_then_noop()
    assert second["patient"] == first["patient"] + 1
    assert second["observation"] == first["observation"]  # unchanged table: no commit
    lake = Layout.of(root)
    pat = pl.read_delta(str(lake.silver_table("patient")))
    assert pat.filter(pl.col("patient_id") == "p-001")["gender"].to_list() == ["male"]
    _assert_complete(root, patients, 2)

    # 3. a bundle withdrawn (from the source and from its Bronze cohort): its rows go
    (source / "b002.json").unlink()
    [bronze_copy] = lake.bronze_fhir.glob("cohort=*/b002.json")
    bronze_copy.unlink()
    run_then_noop()
    _assert_complete(root, patients - {"p-002"}, 2)


def _secrets(folder: Path) -> set[str]:
    """Patient ids, names, bundle file names and note texts of a folder of bundles."""
    secrets: set[str] = set()
    for f in folder.glob("*.json"):
        secrets.update({f.name, f.stem})
        for e in json.loads(f.read_bytes()).get("entry", []):
            r = e.get("resource", {})
            if r.get("resourceType") == "Patient":
                secrets.add(r["id"])
                for name in r.get("name", []):
                    secrets.update([name.get("family", ""), *name.get("given", [])])
            if r.get("resourceType") == "DocumentReference":
                for c in r.get("content", []):
                    data = c.get("attachment", {}).get("data")
                    if data:
                        text = base64.b64decode(data).decode("utf-8", "replace")
                        # whole lines of free text, long enough not to be boilerplate headers
                        secrets.update(ln for ln in text.splitlines() if len(ln) > 40)
    secrets.discard("")
    return secrets


def test_no_identifier_leaks_with_debug_logging_on_the_shared_fixtures(tmp_path):
    require_shared()
    source = tmp_path / "src"
    source.mkdir()
    for f in sorted(FIXTURES.glob("*.json")):
        shutil.copy(f, source / f.name)
    real = sorted(source.glob("*.json"))
    secrets = _secrets(source) | {f"Broken_{real[0].name}", f"Empty_{real[1].name}"}
    # bad files named like real bundles, so error paths run with identifying names
    (source / f"Broken_{real[0].name}").write_bytes(real[0].read_bytes()[:5000])
    (source / f"Empty_{real[1].name}").write_bytes(b"")
    assert len(secrets) > 200
    root = tmp_path / "lake"
    env_before = os.environ.get("FHIRHOUSE_LOG_LEVEL")
    os.environ["FHIRHOUSE_LOG_LEVEL"] = "DEBUG"
    try:
        ok = snakemake(tmp_path, "--cores", "2", config={"root": root, "source": source})
        # then a run whose checks fail the build, for the error messages
        cfg = tmp_path / "fail.yaml"
        cfg.write_text(json.dumps({"root": str(root), "checks": {"on_failure": "fail"}}))
        (source / real[2].name).write_bytes(real[3].read_bytes())  # a duplicate patient
        failed = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg), "--config",
                           f"source={source}", check=False)  # fmt: skip
    finally:
        if env_before is None:
            os.environ.pop("FHIRHOUSE_LOG_LEVEL", None)
        else:
            os.environ["FHIRHOUSE_LOG_LEVEL"] = env_before
    assert failed.returncode != 0
    logs = list((root / "_logs").rglob("*.log"))
    assert any("DEBUG" in p.read_text() for p in logs)  # debug logging was on
    texts = {str(p.relative_to(tmp_path)): p.read_text() for p in logs}
    # bookkeeping too: the landing index and plan, the parse indexes (not the parse cache
    # itself, which holds rows like the tables do)
    for folder in ("_markers", "_checks", "bronze/_quarantine", "bronze/_metadata"):
        for p in (root / folder).rglob("*"):
            if p.is_file():
                texts[str(p.relative_to(tmp_path))] = p.read_text()
    for p in (root / "_staging").rglob("files.json"):
        texts[str(p.relative_to(tmp_path))] = p.read_text()
    assert any("files.json" in k for k in texts) and any("landed.json" in k for k in texts)
    for p in (tmp_path / ".snakemake" / "log").glob("*.log"):
        texts[p.name] = p.read_text()
    texts["run_history"] = str(read_run_history(Layout.of(root).run_history).to_dicts())
    texts["ingest_log"] = str(pl.read_delta(str(root / "silver/ingest_log")).to_dicts())
    texts["stdout/stderr"] = ok.stdout + ok.stderr + failed.stdout + failed.stderr
    assert "check failed" in texts["stdout/stderr"]
    quarantined = "".join(t for k, t in texts.items() if "_quarantine" in k)
    assert redact(f"Broken_{real[0].name}") in quarantined
    assert redact(f"Empty_{real[1].name}") in quarantined
    leaks = {name: [s for s in secrets if s in text] for name, text in texts.items()}
    assert not {k: v[:3] for k, v in leaks.items() if v}
