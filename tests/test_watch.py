"""`fhirhouse watch` end to end: a bounded number of polls, real Snakemake runs through its
API, exactly the affected cohorts, no replay, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import BIN, make_bundle, snakemake, write_bundles

from fhirhouse.bronze import landing
from fhirhouse.layout import Layout
from fhirhouse.watch import Watcher, affected_cohorts, pending_files

pytestmark = pytest.mark.workflow


def _silver_run_ids(root: Path) -> dict[str, str]:
    lake = Layout.of(root)
    layout = lake
    return {
        c: json.loads(layout.silver_cohort_marker(c).read_text())["run_id"]
        for c in landing.list_cohorts(lake)
        if layout.silver_cohort_marker(c).exists()
    }


def _watch(workdir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("FHIRHOUSE_RUN_ID", None)
    return subprocess.Popen(
        [str(BIN / "fhirhouse"), "watch", *args], cwd=workdir, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.fixture
def built(tmp_path: Path) -> tuple[Path, Path]:
    source = write_bundles(
        tmp_path / "src", {f"b{i}.json": make_bundle(f"p-{i}") for i in range(4)}
    )
    root = tmp_path / "lake"
    snakemake(tmp_path, "--cores", "2", config={"root": root, "source": source, "cohorts": 2})
    return tmp_path, root


def test_a_new_cohort_folder_is_built_alone_and_nothing_is_replayed(built):
    workdir, root = built
    before = _silver_run_ids(root)
    lake = Layout.of(root)
    assert affected_cohorts(lake) == {}  # a restart of the watcher would be silent
    proc = _watch(workdir, "--root", str(root), "--interval", "0.5", "--max-polls", "30")
    time.sleep(3)  # a few empty polls first
    write_bundles(lake.bronze_fhir / "cohort=D", {"d.json": make_bundle("p-d")})
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    after = _silver_run_ids(root)
    assert set(after) == {"A", "B", "D"}
    assert after["A"] == before["A"] and after["B"] == before["B"]  # untouched
    triggers = [ln for ln in out.splitlines() if "trigger:" in ln]
    assert len(triggers) == 1 and "cohort(s) D" in triggers[0], out[-3000:]
    assert "cohorts rebuilt: D" in out and "done: 30 poll(s), 1 run(s)" in out
    assert "d.json" not in out and "p-d" not in out


def test_a_changed_bundle_in_the_landing_folder_rebuilds_its_cohort(built):
    workdir, root = built
    source = workdir / "src"
    before = _silver_run_ids(root)
    lake = Layout.of(root)
    assert pending_files(lake, source) == 0
    changed = make_bundle("p-1")
    changed["entry"][0]["resource"]["gender"] = "male"
    (source / "b1.json").write_text(json.dumps(changed))  # landed in cohort B
    watcher = Watcher(layout=lake, source=source, workdir=workdir)
    run = watcher.poll()
    assert run is not None and run["outcome"] == "success"
    assert run["cohorts_built"] == ["B"]
    after = _silver_run_ids(root)
    assert after["A"] == before["A"] and after["B"] != before["B"]
    assert watcher.poll() is None  # nothing left: no replay


def test_ctrl_c_stops_the_watcher_cleanly(tmp_path):
    root = tmp_path / "lake"
    proc = _watch(tmp_path, "--root", str(root), "--interval", "0.2")
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "stopped after" in out and "Traceback" not in out


def test_a_failed_run_is_not_retried_until_its_files_change(tmp_path):
    root = tmp_path / "lake"
    write_bundles(Layout.of(root).bronze_fhir / "cohort=A", {"a.json": make_bundle("p-a")})
    calls = []

    def failing_runner(targets, config, **kwargs):
        calls.append(targets)
        raise RuntimeError("a job failed")

    watcher = Watcher(layout=Layout.of(root), workdir=tmp_path, runner=failing_runner)
    run = watcher.poll()
    assert run is not None and run["outcome"].startswith("failed (RuntimeError")
    assert watcher.poll() is None and watcher.poll() is None  # not retried on every poll
    write_bundles(Layout.of(root).bronze_fhir / "cohort=A", {"b.json": make_bundle("p-b")})
    assert watcher.poll() is not None and len(calls) == 2  # a change: tried again
