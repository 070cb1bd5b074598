"""Cluster execution: the whole workflow through the cluster-generic executor, each job
submitted through cluster/local-submit.sh as a detached process of its own (a scheduler
stand-in), so every rule must work as an independent job with no shared in-memory state."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest
from conftest import REPO, make_bundle, snakemake, write_bundles

from fhirhouse import jobs

pytestmark = pytest.mark.workflow


def test_every_rule_runs_as_a_submitted_job(tmp_path):
    source = write_bundles(
        tmp_path / "src", {f"b{i}.json": make_bundle(f"p-{i}", n_enc=2) for i in range(2)}
    )
    root = tmp_path / "lake"
    proc = snakemake(
        tmp_path, "--profile", str(REPO / "profiles" / "cluster-generic"),
        "--cluster-generic-submit-cmd", str(REPO / "cluster" / "local-submit.sh"),
        config={"root": root, "source": source, "cohorts": 1},
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    submitted = set(re.findall(r"Submitted job \d+ with external jobid '\d+'", out))
    rules = set(re.findall(r"^(?:rule|checkpoint) (\w+):", out, flags=re.M))
    local = set(re.findall(r"^local(?:rule|checkpoint) (\w+):", out, flags=re.M))
    expected = {"silver", "gold", "gold_manifest"}
    assert expected <= rules, expected - rules
    # only bookkeeping runs inside the scheduler process: landing and Bronze fingerprints
    assert local <= {"all", "land", "bronze"}, local
    assert len(submitted) == len(expected)  # one cohort: silver, gold, the manifest
    jobs_logs = list((tmp_path / ".snakemake" / "cluster-logs").glob("*.log"))
    assert len(jobs_logs) == len(submitted)
    # the result is the same lake a local run builds
    layout = jobs.Layout.of(root)
    patients = pl.read_delta(str(layout.silver_table("patient")))
    assert sorted(patients["patient_id"]) == [f"p-{i}" for i in range(2)]
    manifest = json.loads(layout.corpus_manifest.read_text())
    assert manifest["row_count"] == 4
    dry = snakemake(
        tmp_path, "--cores", "1", "-n", config={"root": root, "source": source, "cohorts": 1}
    )
    assert "Nothing to be done" in dry.stdout + dry.stderr
