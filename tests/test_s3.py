"""`root: s3://bucket/prefix`: Bronze, Silver, Gold and the corpus manifest on an S3-compatible
store, markers and other state on local disk.

Every test talks to a real S3 API: moto's server mode, started on 127.0.0.1 by the fixture
below and stopped after the module. Workflow tests run the real `snakemake` CLI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import polars as pl
import pytest
from conftest import (
    make_bundle,
    moto_server,
    no_surfaced_conflicts,
    snakemake,
    snakemake_side_by_side,
    table_frame,
    write_bundles,
)
from deltalake import DeltaTable, write_deltalake

from fhirhouse import SILVER_TABLES, cli, jobs
from fhirhouse.bronze import landing
from fhirhouse.layout import Layout
from fhirhouse.silver.registry import spec
from fhirhouse.store import delta, maintenance, objects
from fhirhouse.store.objects import StorePath
from fhirhouse.synth import write_corpus

pytestmark = pytest.mark.workflow

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",
}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server for this module, with the AWS_* variables pointing at it (for this
    process and the `snakemake` processes the tests start)."""
    saved = {k: os.environ.get(k) for k in [*AWS_ENV, "AWS_ENDPOINT_URL"]}
    with moto_server() as endpoint:
        os.environ.update(AWS_ENV, AWS_ENDPOINT_URL=endpoint)
        objects._FILESYSTEMS.clear()  # a cached filesystem may point at another endpoint
        try:
            yield endpoint
        finally:
            objects._FILESYSTEMS.clear()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture
def bucket(s3_endpoint: str, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test."""
    name = request.node.name.lower().replace("_", "-")[:50]
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=name)
    return name


def _source(folder: Path, n: int) -> tuple[Path, set[str]]:
    bundles = {f"bundle_{i:02d}.json": make_bundle(f"p-{i:02d}", n_enc=2) for i in range(n)}
    write_bundles(folder, bundles)
    return folder, {f"p-{i:02d}" for i in range(n)}


def _read(uri: str) -> pl.DataFrame:
    return pl.read_delta(uri, storage_options=objects.delta_storage_options(uri))


def _versions(root: str) -> dict[str, int | None]:
    layout = jobs.Layout.of(root)
    paths = {t: layout.silver_table(t) for t in SILVER_TABLES} | {"gold": layout.gold_table}
    return {t: delta.table_version(p) for t, p in paths.items()}


def _assert_complete(root: str, patients: set[str], encounters_per_patient: int) -> None:
    layout = jobs.Layout.of(root)
    for table in SILVER_TABLES:
        keys = _read(str(layout.silver_table(table)))[spec(table).key]
        assert keys.is_unique().all(), table
    assert set(_read(str(layout.silver_table("patient")))["patient_id"]) == patients
    gold = _read(str(layout.gold_table))
    assert gold.height == len(patients) * encounters_per_patient
    assert gold["encounter_id"].is_unique().all()
    manifest = json.loads(StorePath(str(layout.corpus_manifest)).read_text())
    assert manifest["row_count"] == gold.height
    assert manifest["gold_delta_version"] == delta.table_version(layout.gold_table)


def test_store_path_lists_reads_writes_and_stats_objects(bucket):
    base = StorePath(f"s3://{bucket}/lake")
    assert not base.is_dir() and not base.exists() and list(base.iterdir()) == []
    (base / "a" / "x.json").write_text("{}")
    (base / "a" / "y.dcm").write_bytes(b"\0" * 10)
    (base / "b" / "z.json").write_text("[]")
    assert sorted(p.name for p in base.iterdir()) == ["a", "b"]
    assert (base / "a").is_dir() and not (base / "a").is_file()
    assert [p.name for p in (base / "a").glob("*.json")] == ["x.json"]
    y = base / "a" / "y.dcm"
    assert y.is_file() and y.stat().st_size == 10 and y.stat().st_mtime_ns > 0
    assert (y.stem, y.suffix, y.parent) == ("y", ".dcm", base / "a")
    assert (base / "b" / "z.json").read_text() == "[]"
    y.unlink()
    assert not y.exists()
    y.unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        y.unlink()
    with pytest.raises(ValueError, match="no bucket"):
        StorePath("s3:///lake")


def test_two_writers_racing_for_one_version_lose_no_commit(bucket):
    """Both writers saw version 0 and both try to create version 1: the store's conditional
    put refuses the second commit file, so delta-rs retries it as version 2 instead of
    overwriting version 1 (which would lose the first writer's rows)."""
    import pyarrow as pa

    uri = f"s3://{bucket}/t"
    options = objects.delta_storage_options(uri)
    assert options == {"conditional_put": "etag"}
    write_deltalake(uri, pa.table({"a": [0]}), storage_options=options)
    first, second = (DeltaTable(uri, storage_options=options) for _ in range(2))
    write_deltalake(first, pa.table({"a": [1]}), mode="append")
    write_deltalake(second, pa.table({"a": [2]}), mode="append")
    final = DeltaTable(uri, storage_options=options)
    assert final.version() == 2
    assert sorted(final.to_pyarrow_table()["a"].to_pylist()) == [0, 1, 2]


# make test keeps a Snakemake build on S3 in test_a_generated_corpus_with_dicom_builds_the_same_
# on_s3_as_locally and the CLI's in test_cli_run_status_history_maintain_rollback_on_s3.
@pytest.mark.slow
def test_two_cohort_build_then_rerun_then_a_changed_bundle(bucket, tmp_path):
    source, patients = _source(tmp_path / "src", 4)
    root = f"s3://{bucket}/lake"
    config = {"root": root, "source": source, "cohorts": 2}
    snakemake(tmp_path, "--cores", "2", config=config)
    _assert_complete(root, patients, 2)

    # the data is on the store, the state is local, nothing of the data is local
    data = StorePath(root)
    assert sorted(p.name for p in (data / "bronze" / "fhir").iterdir()) == [
        "cohort=A",
        "cohort=B",
    ]
    assert (
        len(landing.cohort_files(Layout.of(root), "A"))
        + len(landing.cohort_files(Layout.of(root), "B"))
        == 4
    )
    state = tmp_path / ".fhirhouse-state" / bucket / "lake"
    assert (state / "_markers" / "gold" / "manifest.json").is_file()
    assert (state / "_ops" / "run_history" / "_delta_log").is_dir()
    assert not (state / "bronze" / "fhir").exists() and not (state / "gold").exists()
    assert not (state / "silver" / "patient").exists()
    assert not (tmp_path / "s3:").exists()

    # a rerun with nothing new: no job, no commit
    first = _versions(root)
    dry = snakemake(tmp_path, "--cores", "2", "-n", config=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    snakemake(tmp_path, "--cores", "2", config=config)
    assert _versions(root) == first

    # a changed bundle is re-landed on the store and rebuilds its cohort (A) only
    def parse_runs() -> dict[str, str]:
        markers = state / "_markers" / "silver"
        return {c: json.loads((markers / f"cohort={c}.json").read_text())["run_id"] for c in "AB"}

    before = parse_runs()
    (source / "bundle_00.json").write_text(json.dumps(make_bundle("p-00", n_enc=3)))
    snakemake(tmp_path, "--cores", "2", config=config)
    after, runs = _versions(root), parse_runs()
    assert runs["A"] != before["A"] and runs["B"] == before["B"]
    assert after["encounter"] == first["encounter"] + 1
    assert after["patient"] == first["patient"]  # the patient row itself did not change
    assert after["gold"] == first["gold"] + 1
    assert _read(str(jobs.Layout.of(root).gold_table)).height == 9


# slow: the local twin (tests/test_reliability.py) and the racing-writers test above run in
# `make test`; `make test-all` runs this one too.
@pytest.mark.slow
def test_two_parallel_invocations_on_disjoint_cohorts(bucket, tmp_path):
    source, patients = _source(tmp_path / "src", 8)
    root = f"s3://{bucket}/lake"
    config = {"root": root, "source": source, "cohorts": 4}
    layout = jobs.Layout.of(root)
    marker = tmp_path / ".fhirhouse-state" / bucket / "lake" / "_markers" / "bronze"
    snakemake(tmp_path, "--cores", "1", str(marker / "landing.json"), config=config)
    runs = [
        ["--cores", "2", *[str(marker.parent / "gold" / f"cohort={c}.json") for c in cohorts]]
        for cohorts in ("AB", "CD")
    ]
    for proc in snakemake_side_by_side(tmp_path, runs, config):
        no_surfaced_conflicts(proc)
    snakemake(tmp_path, "--cores", "2", config=config)  # the manifest and whole-table checks
    _assert_complete(root, patients, 2)
    # one data commit per cohort on each Silver table: none lost, none twice. (Two creators
    # racing for a new table can leave two CREATE TABLE versions: delta-rs commits both.)
    for table in ("patient", "encounter", "observation"):
        commits = maintenance.history(layout.silver_table(table))
        data = sorted(h["cohort"] for h in commits if h["operation"] != "CREATE TABLE")
        assert data == ["A", "B", "C", "D"], (table, commits)


def test_cli_run_status_history_maintain_rollback_on_s3(bucket, tmp_path, monkeypatch, capsys):
    source, patients = _source(tmp_path / "src", 4)
    root, state = f"s3://{bucket}/lake", tmp_path / "state"
    monkeypatch.chdir(tmp_path)
    where = ["--root", root, "--state-dir", str(state)]
    assert cli.main(["run", *where, "--source", str(source), "--cohorts", "2"]) == 0
    _assert_complete(root, patients, 2)
    assert (state / "_markers" / "gold" / "manifest.json").is_file()
    assert not (tmp_path / ".fhirhouse-state").exists()

    capsys.readouterr()
    assert cli.main(["status", *where]) == 0
    out = capsys.readouterr().out
    assert "A       built (2 files)" in out and "B       built (2 files)" in out

    assert cli.main(["history", *where, "--table", "patient"]) == 0
    out = capsys.readouterr().out
    assert "CREATE TABLE" in out and out.count(" silver ") == 2
    assert f"pl.read_delta('{root}/silver/patient', version=N)" in out

    # compaction on the store (Gold got one file per cohort); the default retention keeps
    # the older files, so version 1 can still be restored below
    assert cli.main(["maintain", *where, "--table", "gold"]) == 0
    assert "gold: 2 -> 1 files (2 compacted, 0 vacuumed), 8 rows" in capsys.readouterr().out

    layout = jobs.Layout.of(root, state)
    assert cli.main(["rollback", *where, "--table", "gold", "--to-version", "1"]) == 0
    version = delta.table_version(layout.gold_table)
    manifest = json.loads(StorePath(str(layout.corpus_manifest)).read_text())
    assert manifest["gold_delta_version"] == version and manifest["row_count"] == 4  # cohort A
    assert _read(str(layout.gold_table)).height == 4
    assert not (state / "_markers" / "gold" / "cohort=A.json").exists()


def test_a_generated_corpus_with_dicom_builds_the_same_on_s3_as_locally(
    bucket, tmp_path, monkeypatch
):
    """Every Silver table and Gold, DICOM-derived columns included, equal row for row."""
    monkeypatch.chdir(tmp_path)  # the s3:// root's state: .fhirhouse-state/ here
    corpus = tmp_path / "corpus"
    assert write_corpus(corpus, 6, 7)["dicom_files"] > 0
    local, remote = tmp_path / "local", f"s3://{bucket}/lake"
    for root in (str(local), remote):
        assert cli.main(["run", "--root", root, "--source", str(corpus), "--cohorts", "2"]) == 0
    assert len(list((StorePath(remote) / "bronze" / "dicom").glob("*.dcm"))) > 0
    run_columns = {"ingest_timestamp", "created_timestamp", "silver_versions"}
    here, there = jobs.Layout.of(local), jobs.Layout.of(remote)
    for table in SILVER_TABLES:
        want = table_frame(here.silver_table(table), run_columns)
        got = table_frame(there.silver_table(table), run_columns)
        assert got.equals(want), table
    imaging = table_frame(there.silver_table("imaging_study"), run_columns)
    assert imaging["dicom_extracted"].any()  # headers read from DICOM objects on the store
    want, got = (table_frame(x.gold_table, run_columns) for x in (here, there))
    assert got.equals(want)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_an_upload_that_fails_half_way_leaves_no_object(where, bucket, tmp_path, monkeypatch):
    """Landing copies through a temporary name: a source read that fails after the first
    MiB leaves neither the target nor the temporary object behind."""
    src = tmp_path / "big.json"
    src.write_bytes(b"x" * (3 << 20))
    folder = StorePath(f"s3://{bucket}/c") if where == "s3" else tmp_path / "c"
    folder.mkdir()
    (folder / "keep.json").write_text("{}")

    class Breaks:
        def __init__(self) -> None:
            self.fh = src.open("rb")

        def __enter__(self) -> Breaks:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def read(self, n: int) -> bytes:
            if self.fh.tell() >= 1 << 20:
                raise OSError("the source went away")
            return self.fh.read(n)

    def copy_breaks(a: object, b: object) -> None:  # the local copy is the kernel's
        with Breaks() as fin, open(b, "wb") as fout:
            while True:
                fout.write(fin.read(1 << 19))

    monkeypatch.setattr(landing, "open", lambda *a, **k: Breaks(), raising=False)
    monkeypatch.setattr(landing.shutil, "copyfile", copy_breaks)
    with pytest.raises(OSError, match="went away"):
        landing._copy_atomic(src, folder / "big.json")
    assert sorted(p.name for p in folder.iterdir()) == ["keep.json"]
    monkeypatch.undo()
    landing._copy_atomic(src, folder / "big.json")
    assert (folder / "big.json").stat().st_size == 3 << 20
    assert sorted(p.name for p in folder.iterdir()) == ["big.json", "keep.json"]
