"""Hostile configuration and paths: cohort labels, symbolic links, a read-only or full root."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from conftest import BIN, build_lake, make_bundle, snakemake, write_bundles

from fhirhouse import SILVER_TABLES, jobs
from fhirhouse.bronze import landing
from fhirhouse.layout import Layout
from fhirhouse.silver.registry import spec
from fhirhouse.store import atomic

HOSTILE_LABELS = ["../x", "a/b", "a;rm -rf ~", "$(id)", "`id`", "a b", "..", "-x", "a|b", ""]


def fhirhouse(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "fhirhouse"), *args], capture_output=True, text=True, cwd=cwd, check=False
    )


@pytest.mark.parametrize("label", HOSTILE_LABELS)
def test_hostile_cohort_labels_are_refused_by_the_cli(tmp_path, sample_source, label):
    proc = fhirhouse(
        "run", "--root", str(tmp_path / "root"), "--source", str(sample_source),
        f"--land-into={label}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: ") and "cohort" in line
    assert not (tmp_path / "root" / "bronze" / "fhir").exists()  # nothing landed


def test_hostile_cohort_labels_are_refused_by_the_workflow(tmp_path, sample_source):
    for config in ({"land_into": "../x"}, {"cohorts": "[A,'b;c']"}):
        proc = snakemake(
            tmp_path, "--cores", "1", "-n", check=False,
            config={"root": tmp_path / "root", "source": sample_source, **config},
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "error: invalid configuration at " in out and "Traceback" not in out
    assert not (tmp_path / "root").exists()


def test_a_bronze_folder_with_a_hostile_label_is_ignored(tmp_path, caplog):
    root = tmp_path / "root"
    lake = Layout.of(root)
    write_bundles(lake.bronze_fhir / "cohort=A", {"a.json": make_bundle("p-1")})
    write_bundles(lake.bronze_fhir / "cohort=B;rm -rf x", {"b.json": make_bundle("p-2")})
    assert landing.list_cohorts(lake) == ["A"]
    assert "ignoring a cohort folder with an invalid label" in caplog.text


def test_symbolic_links_out_of_the_source_are_refused(tmp_path, caplog):
    src = write_bundles(tmp_path / "src", {"a.json": make_bundle("p-1")})
    outside = write_bundles(tmp_path / "elsewhere", {"secret.json": make_bundle("p-outside")})
    (src / "link-out.json").symlink_to(outside / "secret.json")
    (src / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    (src / "alias.json").symlink_to(src / "a.json")  # inside the source: landed as a copy
    (src / "dicom").mkdir()
    (src / "dicom" / "x1.2.3.dcm").symlink_to(outside / "secret.json")
    root = build_lake(tmp_path / "root", src, cohorts=1)
    lake = Layout.of(root)
    marker = json.loads(lake.landing_marker().read_text())
    assert marker["refused_links"] == 2 and marker["file_count"] == 2
    assert sorted(p.name for p in landing.cohort_files(lake, "A")) == [
        "a.json",
        "alias.json",
    ]
    assert not (root / "bronze" / "dicom").exists()
    assert "refused 2 symbolic link(s)" in caplog.text
    patients = pl.read_delta(str(lake.silver_table("patient")))
    assert patients["patient_id"].to_list() == ["p-1"]


def test_symbolic_links_out_of_an_existing_bronze_tree_are_left_out(tmp_path):
    root = tmp_path / "root"
    lake = Layout.of(root)
    cohort = write_bundles(lake.bronze_fhir / "cohort=A", {"a.json": make_bundle("p-1")})
    outside = write_bundles(tmp_path / "elsewhere", {"x.json": make_bundle("p-outside")})
    (cohort / "x.json").symlink_to(outside / "x.json")
    build_lake(root, None)
    assert json.loads(lake.bronze_marker("A").read_text())["refused_links"] == 1
    patients = pl.read_delta(str(lake.silver_table("patient")))
    assert patients["patient_id"].to_list() == ["p-1"]


# ----------------------------------------------------------------- read-only and full roots


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (the build of the sample needs about 2.5 MB). Needs root and mount."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _table_keys(root: Path) -> dict[str, list[str]]:
    out = {}
    for t in SILVER_TABLES:
        key = spec(t).key
        out[t] = sorted(pl.read_delta(str(jobs.Layout.of(root).silver_table(t)))[key].to_list())
    return out


def _no_partial_markers(root: Path) -> None:
    markers = jobs.Layout.of(root).markers
    assert not [p for p in markers.rglob("*") if p.name.endswith(".tmp")]
    for p in markers.rglob("*.json"):
        json.loads(p.read_text())  # every marker there is whole


def test_a_full_root_is_a_clear_error_and_a_rerun_with_space_completes(
    tmp_path, sample_source, small_fs
):
    root = small_fs / "lake"
    proc = fhirhouse("run", "--root", str(root), "--source", str(sample_source), cwd=tmp_path)
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "no space left on device" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    _no_partial_markers(root)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    proc = fhirhouse("run", "--root", str(root), "--source", str(sample_source), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    clean = build_lake(tmp_path / "clean", sample_source)
    assert _table_keys(root) == _table_keys(clean)


def test_a_read_only_root_is_a_clear_error_and_changes_nothing(tmp_path, sample_source, small_fs):
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    root = small_fs / "lake"
    first = fhirhouse("run", "--root", str(root), "--source", str(sample_source), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    changed = sorted(sample_source.glob("*.json"))[0]
    changed.write_text(json.dumps(make_bundle("p-new")))
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    proc = fhirhouse("run", "--root", str(root), "--source", str(sample_source), cwd=tmp_path)
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 1 and "read-only file system" in errors[0], proc.stderr
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_a_marker_is_whole_or_absent_when_the_disk_fills_while_writing_it(tmp_path, monkeypatch):
    src = write_bundles(tmp_path / "src", {"a.json": make_bundle("p-1")})
    root = tmp_path / "root"
    jobs.land_job(Layout.of(root), src, cohorts=1)
    real_replace = os.replace

    def full(a: object, b: object) -> None:
        if str(b).endswith("cohort=A.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(a, b)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic.os, "replace", full)
    with (
        pytest.raises(jobs.StorageError, match="no space left on device"),
        jobs.recorded(Layout.of(root), "bronze", "A") as record,
    ):
        record.marker = jobs.bronze_cohort_job(Layout.of(root), "A")
    monkeypatch.undo()
    assert not jobs.Layout.of(root).bronze_marker("A").exists()
    _no_partial_markers(root)
    history = pl.read_delta(str(root / "_ops" / "run_history"))
    assert history["message"].to_list()[-1].startswith("cannot write under the storage root")
