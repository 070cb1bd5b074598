"""The live run monitor (docs/monitor.md): `make monitor` starts panoptes on 127.0.0.1, and a
build with `--profile profiles/monitor` reports its workflow and every job to it."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import (
    REPO,
    bundle_identifiers,
    finished_jobs,
    get_json,
    monitor_server,
    snakemake,
)

pytestmark = pytest.mark.workflow

PROFILE = REPO / "profiles" / "monitor"


def test_monitor_profile_carries_the_default_profile():
    """`--workflow-profile profiles/monitor` replaces profiles/default, so every default
    setting is repeated in the monitor profile (with the same value)."""
    default = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    monitor = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert default.items() <= monitor.items()
    assert monitor["logger"] == ["panoptes"]
    assert monitor["logger-panoptes-address"] == "http://127.0.0.1:5000"


def test_a_build_reports_every_job_to_the_monitor(tmp_path, sample_source):
    root = tmp_path / "lake"
    with monitor_server(tmp_path / "_monitor") as url:
        assert get_json(f"{url}/api/workflows")["count"] == 0
        proc = snakemake(
            tmp_path,
            "--cores", "4", "--profile", str(PROFILE), "--logger-panoptes-address", url,
            config={"root": root, "source": sample_source},
        )  # fmt: skip
        ran = finished_jobs(proc.stdout + proc.stderr)
        workflows = get_json(f"{url}/api/workflows")["workflows"]
        assert len(workflows) == 1
        wf = workflows[0]
        jobs = get_json(f"{url}/api/workflow/{wf['id']}/jobs")["jobs"]
    assert (tmp_path / "_monitor/panoptes.db").is_file()
    # Land, Bronze, Silver and Gold for cohorts A to C, the manifest and `all`.
    assert {rule for _, rule in ran} >= {"land", "bronze", "silver", "gold", "gold_manifest"}
    assert len(ran) == 12
    assert {(j["jobid"], j["name"]) for j in jobs} == ran
    assert {j["status"] for j in jobs} == {"Done"}
    assert all(j["completed_at"] for j in jobs)
    assert wf["status"] == "Done" and wf["completed_at"]
    assert wf["jobs_done"] == wf["jobs_total"] == len(ran)
    # What panoptes keeps (job inputs, outputs, logs, wildcards) names no patient or file.
    recorded = json.dumps([wf, jobs])
    assert not [s for s in bundle_identifiers(sample_source) if s in recorded]
