"""Crash safety: SIGKILL the whole Snakemake build at a point, recover as the README says,
and compare with a clean build row for row.

Each scenario runs ``snakemake --cores 2`` on the sample bundles (3 cohorts, 11 jobs)
with ``FHIRHOUSE_KILL_AT`` set (see ``fhirhouse.faults``), or kills it after a delay. The
recovery is the documented one: ``snakemake --unlock`` (the kill leaves Snakemake's lock),
then ``snakemake --cores 2`` (the profile's ``rerun-incomplete`` redoes jobs whose outputs
were being written). The lake must then equal a clean build: every Silver and Gold row, no
duplicate keys, the same Bronze files and corpus statistics; and one more run must be a no-op.

CI runs the sample below; the full campaign (every kill point at several hits, and a sweep of
timed kills) is ``make crash-campaign`` (``pytest -m slow tests/test_crash.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import BIN, REPO, SAMPLE, table_frame

from fhirhouse import SILVER_TABLES
from fhirhouse.jobs import Layout
from fhirhouse.silver.registry import spec

RUN_COLUMNS = {"ingest_timestamp", "created_timestamp", "silver_versions"}

# Always run in CI: a kill before a Silver commit, after a Gold commit, and a timed kill (each
# scenario costs about one build; the landing kill that found a bug has a unit test of its own,
# tests/test_landing.py).
CI_SAMPLE = [
    "delta.before_commit@4",
    "delta.after_commit:encounter_summary@2",
    "after:0.6",
]
# The full campaign (slow): every point at several hits, plus timed kills across a build.
FULL_CAMPAIGN = [
    *(f"land.after_copy@{n}" for n in (1, 3, 6)),
    *(f"delta.after_create@{n}" for n in (1, 5, 11)),
    *(f"delta.before_commit@{n}" for n in (1, 7, 15, 21, 27)),  # 27 commits in all
    *(f"delta.after_commit@{n}" for n in (1, 9, 18, 26)),
    *(f"delta.before_commit:encounter_summary@{n}" for n in (1, 3)),
    *(f"delta.after_commit:encounter_summary@{n}" for n in (1, 3)),
    *(f"atomic.before_rename@{n}" for n in (1, 10, 20, 30, 60, 90, 104)),  # 104 in all
    *(f"atomic.before_rename:_metadata@{n}" for n in (1, 2)),
    *(f"history.before_append@{n}" for n in (1, 5, 9, 13)),  # 13 in all
    *(f"after:{f}" for f in (0.15, 0.3, 0.45, 0.75, 0.9)),
]


def _snakemake(workdir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir), *args]
    cmd += ["--config", f"root={workdir / 'root'}", f"source={workdir / 'src'}"]
    full_env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    full_env.pop("FHIRHOUSE_RUN_ID", None)
    full_env.update(env or {})
    return subprocess.Popen(
        cmd,
        cwd=workdir,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a kill takes Snakemake and its jobs
    )


def _finish(proc: subprocess.Popen, what: str) -> str:
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{out[-3000:]}"
    return out


def _workdir(base: Path) -> Path:
    base.mkdir(parents=True)
    shutil.copytree(SAMPLE, base / "src")
    return base


def snapshot(root: Path) -> dict[str, Any]:
    """Everything a consumer reads, minus run timestamps: rows, keys, files, corpus stats."""
    layout = Layout.of(root)
    out: dict[str, Any] = {}
    for t in SILVER_TABLES:
        df = table_frame(layout.silver_table(t), RUN_COLUMNS)
        key = spec(t).key
        assert df.select(pl.struct("cohort", key).is_unique().all()).item(), f"{t} duplicates"
        out[t] = df
    gold = table_frame(layout.gold_table, RUN_COLUMNS)
    assert gold["encounter_id"].is_unique().all()
    out["gold"] = gold
    bronze = root / "bronze" / "fhir"
    out["bronze"] = sorted(
        (str(p.relative_to(bronze)), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in bronze.rglob("*")
        if p.is_file()
    )
    manifest = json.loads((root / "gold" / "_metadata" / "corpus_manifest.json").read_text())
    out["corpus_stats"] = manifest["corpus_stats"]
    return out


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got.keys() == want.keys()
    for name in want:
        if isinstance(want[name], pl.DataFrame):
            assert got[name].height == want[name].height, name
            assert got[name].equals(want[name]), name
        else:
            assert got[name] == want[name], name


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], float]:
    work = _workdir(tmp_path_factory.mktemp("crash") / "clean")
    started = time.monotonic()
    _finish(_snakemake(work, "--cores", "2"), "clean build")
    return snapshot(work / "root"), time.monotonic() - started


def crash_and_recover(base: Path, scenario: str, clean_seconds: float) -> str:
    work = _workdir(base)
    kill_dir = work / "kill"
    if scenario.startswith("after:"):
        delay = float(scenario.split(":")[1]) * clean_seconds
        for _ in range(3):  # a build faster than the clean one may end first: kill sooner
            proc = _snakemake(work, "--cores", "2")
            time.sleep(delay)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            if proc.returncode == -signal.SIGKILL:
                break
            shutil.rmtree(work)
            work, delay = _workdir(base), delay / 2
        assert proc.returncode == -signal.SIGKILL, "the build ended before the timed kill"
    else:
        env = {"FHIRHOUSE_KILL_AT": scenario, "FHIRHOUSE_KILL_DIR": str(kill_dir)}
        proc = _snakemake(work, "--cores", "2", env=env)
        proc.communicate(timeout=600)
        assert (kill_dir / "fired").exists(), f"{scenario} was never reached"
        assert proc.returncode == -signal.SIGKILL
    # the documented recovery (README, "After a crash")
    _finish(_snakemake(work, "--unlock"), "snakemake --unlock")
    _finish(_snakemake(work, "--cores", "2"), "the rerun after the kill")
    again = _finish(_snakemake(work, "--cores", "2", "-n"), "dry run")
    assert "Nothing to be done" in again, again[-2000:]
    return str(work / "root")


@pytest.mark.parametrize("scenario", CI_SAMPLE)
def test_a_killed_build_recovers_to_the_clean_result(tmp_path, clean, scenario):
    want, seconds = clean
    root = crash_and_recover(tmp_path / "w", scenario, seconds)
    assert_same(snapshot(Path(root)), want)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [s for s in FULL_CAMPAIGN if s not in CI_SAMPLE])
def test_crash_campaign(tmp_path, clean, scenario):
    want, seconds = clean
    root = crash_and_recover(tmp_path / "w", scenario, seconds)
    assert_same(snapshot(Path(root)), want)
