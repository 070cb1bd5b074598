"""Integrity: a dangerous root is refused, tampered or vanished Bronze is never taken, a table
that lost a commit is never reported as built, and bookkeeping names no bundle file."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import BIN, build_lake, make_bundle, snakemake, write_bundles

from fhirhouse import jobs
from fhirhouse.bronze import landing
from fhirhouse.layout import Layout, check_root
from fhirhouse.redact import name_key, redact


def fhirhouse(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "fhirhouse"), *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.exists() else set()


@pytest.mark.parametrize("where", ["filesystem", "home", "source", "bronze"])
def test_a_dangerous_root_is_one_error_line_and_nothing_is_written(
    tmp_path, sample_source, monkeypatch, where
):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    lake = tmp_path / "lake"
    (lake / "bronze" / "fhir" / "cohort=A").mkdir(parents=True)
    root = {
        "filesystem": "/",
        "home": str(home),
        "source": str(sample_source),
        "bronze": str(lake / "bronze" / "fhir" / "cohort=A"),
    }[where]
    before = tree(tmp_path) | set(Path("/").iterdir())
    proc = fhirhouse("run", "--root", root, "--source", str(sample_source), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: root ") and proc.stdout == ""
    assert tree(tmp_path) | set(Path("/").iterdir()) == before

    proc = snakemake(
        tmp_path, "-n", "--cores", "1", check=False, config={"root": root, "source": sample_source}
    )
    assert proc.returncode != 0
    assert f"error: root {root!r}" in proc.stdout + proc.stderr
    # nothing but Snakemake's own folders
    assert tree(tmp_path) - before <= tree(tmp_path / ".snakemake") | tree(home) | {home / ".cache"}
    assert set(Path("/").iterdir()) <= before


def test_check_root_accepts_ordinary_roots(tmp_path):
    check_root(tmp_path / "lake", tmp_path / "lake" / "_synth" / "bundles")  # the default shape
    check_root("s3://bucket/lake", tmp_path)
    with pytest.raises(ValueError, match="inside the root's own Bronze"):
        check_root(tmp_path / "lake", tmp_path / "lake" / "bronze" / "fhir")


def _lake(tmp_path: Path, n: int = 4) -> tuple[Path, Path, dict[str, object]]:
    source = write_bundles(
        tmp_path / "src", {f"b{i}.json": make_bundle(f"p-{i}", n_enc=2) for i in range(n)}
    )
    root = tmp_path / "lake"
    config = {"root": root, "source": source, "cohorts": 2}
    snakemake(tmp_path, "--cores", "2", config=config)
    return source, root, config


def _silver(root: Path, table: str) -> pl.DataFrame:
    return pl.read_delta(str(Layout.of(root).silver_table(table)))


def _gold(root: Path) -> pl.DataFrame:
    return pl.read_delta(str(Layout.of(root).gold_table))


def test_a_bronze_file_edited_in_place_or_deleted_is_landed_again_from_the_source(tmp_path):
    source, root, config = _lake(tmp_path)
    [copy] = Layout.of(root).bronze_fhir.glob("cohort=*/b1.json")
    st = copy.stat()
    edited = copy.read_bytes().replace(b'"female"', b'"male"  ', 1)  # same size
    assert edited != copy.read_bytes()
    copy.write_bytes(edited)
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same modification time
    status = fhirhouse("status", "--root", str(root), cwd=tmp_path).stdout
    assert "damaged (1 changed, 0 gone since landing)" in status

    snakemake(tmp_path, "--cores", "2", config=config)
    assert copy.read_bytes() == (source / "b1.json").read_bytes()
    landed = json.loads(Layout.of(root).landing_marker().read_text())
    assert landed["restored_files"] == {copy.parent.name.split("=")[1]: 1}
    assert "landed again from the source" in (Layout.of(root).logs / "land.log").read_text()
    patient = _silver(root, "patient").filter(pl.col("patient_id") == "p-1")
    assert patient["gender"].to_list() == ["female"]
    dry = snakemake(tmp_path, "-n", "--cores", "2", config=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr

    # a Bronze file deleted: landed again into its own cohort, its rows back
    [copy] = Layout.of(root).bronze_fhir.glob("cohort=*/b2.json")
    copy.unlink()
    status = fhirhouse("status", "--root", str(root), cwd=tmp_path).stdout
    assert "damaged (0 changed, 1 gone since landing)" in status
    snakemake(tmp_path, "--cores", "2", config=config)
    assert copy.read_bytes() == (source / "b2.json").read_bytes()  # the same cohort folder
    assert set(_silver(root, "patient")["patient_id"]) == {f"p-{i}" for i in range(4)}
    assert _gold(root).height == 8
    dry = snakemake(tmp_path, "-n", "--cores", "2", config=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_a_changed_bronze_file_without_its_source_stops_the_landing(tmp_path):
    source, root, config = _lake(tmp_path)
    (source / "b3.json").unlink()
    [copy] = Layout.of(root).bronze_fhir.glob("cohort=*/b3.json")
    copy.write_bytes(copy.read_bytes().replace(b'"female"', b'"male"'))
    proc = snakemake(tmp_path, "--cores", "2", config=config, check=False)
    assert proc.returncode != 0
    log = (Layout.of(root).logs / "land.log").read_text()
    cohort = copy.parent.name.split("=")[1]
    assert f"cohort {cohort}: Bronze file {redact('b3.json')} changed since it was landed" in log
    assert "b3.json" not in log
    with pytest.raises(landing.BronzeTampered):
        landing.land(Layout.of(root), source, cohorts=2)
    copy.unlink()  # the documented way out: delete it (or put the source back)
    snakemake(tmp_path, "--cores", "2", config=config)
    # a copy changed after its source is gone (and after a landing that knew it): caught too
    [other] = Layout.of(root).bronze_fhir.glob("cohort=*/b2.json")
    (source / "b2.json").unlink()
    snakemake(tmp_path, "--cores", "2", config=config)
    other.write_bytes(other.read_bytes() + b" ")
    assert snakemake(tmp_path, "--cores", "2", config=config, check=False).returncode != 0
    assert "changed since it was landed" in (Layout.of(root).logs / "land.log").read_text()
    other.unlink()
    snakemake(tmp_path, "--cores", "2", config=config)
    assert set(_silver(root, "patient")["patient_id"]) == {"p-0", "p-1"}
    assert "damaged" not in fhirhouse("status", "--root", str(root), cwd=tmp_path).stdout


def test_the_landing_index_names_no_file(tmp_path, sample_source):
    root = build_lake(tmp_path / "lake", sample_source, gold=False)
    text = landing.landed_index_path(Layout.of(root)).read_text()
    for p in sample_source.rglob("*"):
        assert p.name not in text and p.stem not in text
    assert all(len(v) == 4 for k, v in json.loads(text).items() if len(v) > 3 or "dicom" not in k)


def _drop_newest_commit(table: Path) -> int:
    newest = max(table.glob("_delta_log/*.json"))
    newest.unlink()
    return int(newest.stem)


def test_lost_commits_and_outside_writes_are_damage_and_the_next_build_repairs_them(tmp_path):
    """One lake through four kinds of damage, each repaired by the next plain build: a lost
    Silver commit (rows missing), a lost Gold commit, rows deleted by an outside writer, and
    a lost commit that changed values only (the row count still matches)."""
    from deltalake import DeltaTable

    source, root, config = _lake(tmp_path)
    layout = Layout.of(root)
    before = _silver(root, "observation").sort("observation_id")
    version = _drop_newest_commit(layout.silver_table("observation"))
    [cohort] = [
        c
        for c in ("A", "B")
        if json.loads(layout.silver_cohort_marker(c).read_text())["tables"]["observation"][
            "delta_version"
        ]
        == version
    ]
    assert _silver(root, "observation").height < before.height

    status = fhirhouse("status", "--root", str(root), cwd=tmp_path).stdout
    [line] = [ln for ln in status.splitlines() if ln.startswith(cohort + " ")]
    assert f"damaged (silver.observation lost the commit of version {version}" in line
    checks = jobs.check_tables_job(Layout.of(root))
    assert not checks["passed"]
    result = json.loads(layout.check_table("observation").read_text())
    assert "rows!=markers" in result["failed_checks"]

    proc = snakemake(tmp_path, "--cores", "2", config=config)
    assert "Nothing to be done" not in proc.stdout + proc.stderr
    assert (
        _silver(root, "observation")
        .sort("observation_id")
        .drop("ingest_timestamp")
        .equals(before.drop("ingest_timestamp"))
    )
    status = fhirhouse("status", "--root", str(root), cwd=tmp_path).stdout
    assert "damaged" not in status
    result = json.loads(layout.check_table("observation").read_text())
    assert "rows==markers" in [c["rule"] for c in result["checks"] if c["passed"]]
    dry = snakemake(tmp_path, "-n", "--cores", "2", config=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr

    # a lost Gold commit: the cohort's Gold is recomputed whole
    before = _gold(root).height
    _drop_newest_commit(layout.gold_table)
    assert _gold(root).height < before
    assert "damaged" in fhirhouse("status", "--root", str(root), cwd=tmp_path).stdout
    snakemake(tmp_path, "--cores", "2", config=config)
    assert _gold(root).height == before
    assert json.loads(layout.corpus_manifest.read_text())["row_count"] == before
    assert "damaged" not in fhirhouse("status", "--root", str(root), cwd=tmp_path).stdout

    # rows deleted by a writer outside fhirhouse: found by the row check
    DeltaTable(str(layout.silver_table("patient"))).delete("patient_id = 'p-1'")
    status = fhirhouse("status", "--root", str(root), cwd=tmp_path).stdout
    assert "silver.patient holds 1 rows where 2 were written" in status
    snakemake(tmp_path, "--cores", "2", config=config)
    assert "p-1" in set(_silver(root, "patient")["patient_id"])
    dry = snakemake(tmp_path, "-n", "--cores", "2", config=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr

    # a lost commit that changed values only: the job still compares the whole partition
    bundle = json.loads((source / "b0.json").read_text())
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Observation":
            e["resource"]["valueQuantity"]["value"] = 123
    (source / "b0.json").write_text(json.dumps(bundle))
    snakemake(tmp_path, "--cores", "2", config=config)
    _drop_newest_commit(layout.silver_table("observation"))  # the update; same row count
    assert 123 not in _silver(root, "observation")["value"].to_list()
    snakemake(tmp_path, "--cores", "2", config=config)
    values = _silver(root, "observation").filter(pl.col("patient_id") == "p-0")["value"]
    assert set(values.to_list()) == {123}
    dry = snakemake(tmp_path, "-n", "--cores", "2", config=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr


def test_duplicate_ids_inside_a_bundle_are_listed_in_the_quarantine_file(tmp_path):
    bundle = make_bundle("p-dup", n_enc=1)
    [obs] = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    second = json.loads(json.dumps(obs))
    second["resource"]["valueQuantity"]["value"] = 99
    bundle["entry"].append(second)
    source = write_bundles(tmp_path / "src", {"Ann_Lee_dup.json": bundle})
    root = build_lake(tmp_path / "lake", source, cohorts=1, gold=False)

    text = Layout.of(root).quarantine("A").read_text()
    [entry] = [e for e in json.loads(text)["entries"] if e["kind"] == "duplicate"]
    oid = obs["resource"]["id"]
    assert entry["table"] == "observation" and entry["id_ref"] == redact(oid)
    assert entry["file_ref"] == redact("Ann_Lee_dup.json")
    assert len(entry["dropped_refs"]) == 1 and entry["dropped_refs"][0] != entry["kept_ref"]
    assert oid not in text and "Ann_Lee" not in text and "p-dup" not in text
    marker = json.loads(Layout.of(root).silver_cohort_marker("A").read_text())
    assert marker["duplicate_ids"] == 1
    obs_rows = _silver(root, "observation").filter(pl.col("observation_id") == oid)
    assert obs_rows["value"].to_list() == [99.0]  # the last one is kept


def test_cohort_dedup_keeps_each_keys_last_row_by_file_and_entry():
    import pyarrow as pa

    from fhirhouse.jobs.silver import dedup_last

    rows = pa.table(
        {
            "k": ["a", "b", "a", "c", "b", "d"],
            "v": [1, 2, 3, 4, 5, 6],
            "source_file": ["f2", "f1", "f1", "f1", "f2", "f1"],
            "source_entry": [0, 0, 1, 2, 1, 3],
        }
    )
    out = dedup_last(rows, "k")
    assert sorted(zip(out["k"].to_pylist(), out["v"].to_pylist(), strict=True)) == [
        ("a", 1),  # f2 is the later file
        ("b", 5),
        ("c", 4),
        ("d", 6),
    ]


def test_fhirhouse_run_lands_a_tampered_bronze_file_again_and_says_so(tmp_path, sample_source):
    root = tmp_path / "lake"
    args = ("run", "--root", str(root), "--source", str(sample_source), "--no-gold")
    assert fhirhouse(*args, cwd=tmp_path).returncode == 0
    copy = sorted(Layout.of(root).bronze_fhir.glob("cohort=A/*.json"))[0]
    original = copy.read_bytes()
    copy.write_bytes(original + b" ")  # valid JSON, other bytes
    proc = fhirhouse(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "1 landed again (Bronze had changed)" in proc.stdout
    assert copy.read_bytes() == original


def test_the_same_damage_coming_back_reruns_the_job_again(tmp_path):
    from fhirhouse.jobs.verify import Damage, listed_damage, sync_damage_file

    path = tmp_path / "cohort=A.json"
    damage = [Damage("silver", "A", "observation", "is gone")]
    assert os.stat(sync_damage_file(path, [])).st_mtime_ns == 0  # new and clean: never reruns
    first = os.stat(sync_damage_file(path, damage)).st_mtime_ns
    assert first > 0 and listed_damage(path) == {"observation"}
    os.utime(path, ns=(first - 10**9, first - 10**9))
    assert os.stat(sync_damage_file(path, [])).st_mtime_ns == first - 10**9  # repaired
    assert listed_damage(path) == set()
    assert os.stat(sync_damage_file(path, damage)).st_mtime_ns > first - 10**9  # back again


def test_landing_index_entries_of_an_older_release_learn_their_cohort(tmp_path, sample_source):
    root = tmp_path / "lake"
    lake = Layout.of(root)
    landing.land(lake, sample_source)
    index_path = landing.landed_index_path(lake)
    old = {k: v[:3] for k, v in json.loads(index_path.read_text()).items()}
    index_path.write_text(json.dumps(old))
    landing.land(lake, sample_source)
    bundles = {name_key(p.name) for p in sample_source.glob("*.json")}
    upgraded = json.loads(index_path.read_text())
    assert all(len(upgraded[k]) == 4 for k in bundles)


def test_a_landing_cut_short_before_its_index_is_not_taken_for_tampering(tmp_path, sample_source):
    root = tmp_path / "lake"
    lake = Layout.of(root)
    landing.land(lake, sample_source)
    src = sorted(sample_source.glob("*.json"))[0]
    [copy] = lake.bronze_fhir.glob(f"cohort=*/{src.name}")
    src.write_bytes(src.read_bytes() + b" ")
    copy.write_bytes(src.read_bytes())  # copied, then killed before landed.json was written
    result = landing.land(lake, sample_source)
    assert result.restored == {} and copy.read_bytes() == src.read_bytes()
    assert landing.bronze_drift(lake, sample_source) == []


def test_a_stuck_process_is_ended_after_ctrl_c(tmp_path):
    code = (
        "import time; from fhirhouse import preflight; preflight.exit_if_stuck(0.2, 3); "
        "time.sleep(30)"
    )
    proc = subprocess.run([str(BIN / "python"), "-c", code], capture_output=True, text=True)
    assert proc.returncode == 3 and "ending it" in proc.stderr


def _new_process() -> None:
    """What a new invocation starts from: the digest cache on disk, nothing in memory."""
    landing._CACHES.clear()


def _hashes(monkeypatch) -> list[str]:
    """Record the name of every file hashed from now on."""
    seen: list[str] = []
    real = landing.digest_mod.of_file
    monkeypatch.setattr(landing.digest_mod, "of_file", lambda p: seen.append(p.name) or real(p))
    return seen


def test_bronze_is_hashed_again_only_where_a_file_changed(tmp_path, sample_source, monkeypatch):
    lake = Layout.of(tmp_path / "lake")
    landing.land(lake, sample_source)
    assert landing.bronze_drift(lake, sample_source) == []
    _new_process()
    hashed = _hashes(monkeypatch)
    # just landed: file times are too close to the hashes to be trusted, so hashed again
    assert landing.bronze_drift(lake, sample_source) == [] and len(hashed) == 6
    monkeypatch.setattr(landing, "RACY_NS", 0)  # as if a second had passed since
    _new_process()
    hashed.clear()
    assert landing.bronze_drift(lake, sample_source) == [] and hashed == []
    cache = (lake.landing_metadata / "digests.json").read_text()
    assert not any(p.name in cache or p.stem in cache for p in sample_source.glob("*.json"))

    # an edit that keeps the size and puts the mtime back still changes the ctime
    [copy] = lake.bronze_fhir.glob(f"cohort=*/{sorted(sample_source.glob('*.json'))[0].name}")
    st = copy.stat()
    time.sleep(0.05)  # past the clock tick of the landing (RACY_NS is 0 here)
    data = bytearray(copy.read_bytes())
    data[-2:-1] = b" " if data[-2:-1] != b" " else b"\n"
    copy.write_bytes(bytes(data))
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert copy.stat().st_size == st.st_size and copy.stat().st_mtime_ns == st.st_mtime_ns
    _new_process()
    hashed.clear()
    drift = landing.bronze_drift(lake, sample_source)
    assert hashed == [copy.name] and [key for key, _ in drift] == [name_key(copy.name)]
