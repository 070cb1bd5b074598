"""Operations: table maintenance, Delta history with the run that wrote each version, rollback
(with its markers), and reading exactly the corpus a manifest describes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from conftest import build_lake, make_bundle, snakemake, write_bundles
from deltalake import DeltaTable

from fhirhouse import SILVER_TABLES, jobs
from fhirhouse.cli import main
from fhirhouse.layout import OPS_TABLES, Layout
from fhirhouse.store import maintenance
from fhirhouse.store.delta import table_version


def _source(tmp_path: Path, n: int = 6) -> Path:
    return write_bundles(
        tmp_path / "src", {f"b{i}.json": make_bundle(f"p-{i}", n_enc=2) for i in range(n)}
    )


def _change(source: Path, i: int, gender: str) -> None:
    bundle = make_bundle(f"p-{i}", n_enc=2)
    bundle["entry"][0]["resource"]["gender"] = gender
    (source / f"b{i}.json").write_text(json.dumps(bundle))


def _rows(root: Path) -> dict[str, int]:
    layout = jobs.Layout.of(root)
    out = {t: pl.read_delta(str(layout.silver_table(t))).height for t in SILVER_TABLES}
    out["gold"] = pl.read_delta(str(layout.gold_table)).height
    return out


def _files(path: Path) -> int:
    """Data files on disk (not change-data files, not log checkpoints)."""
    return len(
        [p for p in path.rglob("*.parquet") if not {"_change_data", "_delta_log"} & set(p.parts)]
    )


def _active(path: Path) -> int:
    return len(DeltaTable(str(path)).file_uris())


@pytest.fixture
def churned(tmp_path: Path) -> tuple[Path, Path]:
    """A lake built, then three drops landed into cohort A (each MERGE adds a file there) and
    every bundle changed once (each MERGE rewrites files): many small and dead files."""
    source = _source(tmp_path)
    root = build_lake(tmp_path / "root", source)
    for k in range(3):
        drop = write_bundles(tmp_path / f"drop{k}", {f"d{k}.json": make_bundle(f"p-d{k}")})
        jobs.land_job(Layout.of(root), drop, cohort="A")
        build_lake(root, None)
    for i in range(6):
        _change(source, i, "male")
    build_lake(root, source)
    return root, source


def test_maintain_compacts_keeps_rows_and_builds_stay_incremental(churned, capsys):
    root, source = churned
    layout = jobs.Layout.of(root)
    rows = _rows(root)
    tables = [layout.silver_table(t) for t in ("patient", "observation")] + [layout.gold_table]
    active, on_disk = [_active(p) for p in tables], [_files(p) for p in tables]
    assert main(["maintain", "--root", str(root), "--retention-hours", "0"]) == 0
    out = capsys.readouterr().out
    assert "patient:" in out and "compacted" in out
    assert _rows(root) == rows
    assert all(_active(p) < n for p, n in zip(tables, active, strict=True))
    assert all(_files(p) < n for p, n in zip(tables, on_disk, strict=True))
    assert _active(layout.silver_table("patient")) == 3  # one file per cohort partition
    # a later build is still incremental: one changed bundle commits only its cohort's slice
    version = table_version(layout.silver_table("patient"))
    _change(source, 1, "female")
    build_lake(root, source)
    markers = {
        c: json.loads(layout.silver_cohort_marker(c).read_text())["tables"]["patient"]
        for c in ("A", "B", "C")
    }
    assert markers["B"]["updated"] == 1 and markers["B"]["committed"]
    assert not markers["A"]["committed"] and not markers["C"]["committed"]
    assert table_version(layout.silver_table("patient")) == version + 1


def test_history_names_the_run_behind_each_version(tmp_path, capsys):
    root = build_lake(tmp_path / "root", _source(tmp_path))
    lake = Layout.of(root)
    marker = json.loads(lake.silver_cohort_marker("B").read_text())
    versions = maintenance.history(lake.silver_table("patient"))
    mine = [v for v in versions if v["cohort"] == "B"]
    assert len(mine) == 1 and mine[0]["run_id"] == marker["run_id"]
    assert mine[0]["rule"] == "silver" and mine[0]["inserted"] == 2
    assert main(["history", "--root", str(root), "--table", "patient"]) == 0
    out = capsys.readouterr().out
    assert marker["run_id"] in out and "WRITE" in out and "silver" in out


def test_rollback_restores_the_table_and_drops_the_markers_it_invalidates(tmp_path, capsys):
    source = _source(tmp_path)
    root = build_lake(tmp_path / "root", source)
    lake = Layout.of(root)
    layout = lake
    good = table_version(layout.silver_table("patient"))
    good_rows = pl.read_delta(str(layout.silver_table("patient"))).sort("patient_id")
    _change(source, 1, "male")  # a "bad" change to cohort B
    build_lake(root, source)
    assert (
        main(["rollback", "--root", str(root), "--table", "patient", "--to-version", str(good)])
        == 0
    )
    out = capsys.readouterr().out
    assert "cohort B" in out
    now = pl.read_delta(str(layout.silver_table("patient"))).sort("patient_id")
    assert now.drop("ingest_timestamp").equals(good_rows.drop("ingest_timestamp"))
    # only B's Silver marker and parse cache are gone, so the next build redoes exactly B
    assert not layout.silver_cohort_marker("B").exists()
    assert not layout.parse_index("B").exists()
    assert layout.silver_cohort_marker("A").exists() and layout.parse_index("A").exists()
    rebuilt = jobs.silver_job(lake, "B").marker
    assert rebuilt["full"] and rebuilt["tables"]["patient"]["updated"] == 1
    assert rebuilt["tables"]["observation"]["committed"] is False


def test_rollback_of_gold_rewrites_the_manifest_a_consumer_reads(tmp_path):
    source = _source(tmp_path)
    root = build_lake(tmp_path / "root", source)
    layout = jobs.Layout.of(root)
    manifest = json.loads(layout.corpus_manifest.read_text())
    good = manifest["gold_delta_version"]
    (source / "b0.json").unlink()
    next(layout.bronze_fhir.glob("cohort=*/b0.json")).unlink()
    build_lake(root, source)
    assert json.loads(layout.corpus_manifest.read_text())["gold_delta_version"] > good
    assert (
        main(["rollback", "--root", str(root), "--table", "gold", "--to-version", str(good)]) == 0
    )
    manifest = json.loads(layout.corpus_manifest.read_text())
    pinned = pl.read_delta(str(layout.gold_table), version=manifest["gold_delta_version"])
    assert pinned.height == manifest["row_count"] == manifest["corpus_stats"]["encounters"] == 12
    assert not list((layout.markers / "gold").glob("cohort=*.json"))


def test_rollback_refuses_a_version_that_is_not_earlier(tmp_path, capsys):
    root = build_lake(tmp_path / "root", _source(tmp_path))
    v = table_version(jobs.Layout.of(root).silver_table("patient"))
    assert (
        main(["rollback", "--root", str(root), "--table", "patient", "--to-version", str(v)]) == 2
    )
    assert "is not an earlier version" in capsys.readouterr().err


# slow: test_maintain_compacts_keeps_rows_and_builds_stay_incremental covers maintenance and
# tests/test_readme.py runs `snakemake maintain` in `make test`; `make test-all` runs this.
@pytest.mark.slow
@pytest.mark.workflow
def test_maintain_target_keeps_the_build_current(tmp_path):
    source = _source(tmp_path)
    root = tmp_path / "lake"
    config = {"root": root, "source": source}
    snakemake(tmp_path, "--cores", "2", config=config)
    rows = _rows(root)
    cfg = tmp_path / "maintain.yaml"
    cfg.write_text(json.dumps({"maintenance": {"retention_hours": 0}}))
    proc = snakemake(tmp_path, "--cores", "2", "maintain", "--configfile", str(cfg), config=config)
    out = proc.stderr + proc.stdout
    assert all(f"rule maintain_{t}:" in out for t in [*SILVER_TABLES, "gold", *OPS_TABLES])
    assert _rows(root) == rows
    summary = json.loads((root / "_ops" / "maintenance.json").read_text())
    assert {t["table"] for t in summary["tables"]} == {*SILVER_TABLES, "gold", *OPS_TABLES}
    dry = snakemake(tmp_path, "--cores", "2", "-n", config=config)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    again = snakemake(tmp_path, "--cores", "2", "maintain", "-n", config=config)
    assert "maintain_patient" in again.stdout + again.stderr  # it runs whenever asked
