"""Shared test helpers: paths, small hand-made bundles, and a Snakemake runner."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures" / "synthea"
ORACLE = SHARED / "fixtures" / "oracle" / "dev"
SAMPLE = REPO / "resources" / "sample_bundles"
BIN = Path(sys.executable).parent


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource}


def make_bundle(pid: str = "p-001", n_enc: int = 1, extra: list[dict] | None = None) -> dict:
    """A small valid bundle: one patient, ``n_enc`` encounters with a note and a vital each."""
    entries = [
        entry(
            {
                "resourceType": "Patient",
                "id": pid,
                "gender": "female",
                "birthDate": "1980-07-15",
                "address": [{"city": "Boston", "state": "MA", "postalCode": "02118"}],
            }
        )
    ]
    for k in range(n_enc):
        eid = f"{pid}-enc-{k}"
        entries.append(
            entry(
                {
                    "resourceType": "Encounter",
                    "id": eid,
                    "status": "finished",
                    "class": {"code": "AMB"},
                    "subject": {"reference": f"urn:uuid:{pid}"},
                    "period": {"start": f"2021-03-1{k}T09:00:00-04:00"},
                }
            )
        )
        entries.append(
            entry(
                {
                    "resourceType": "Observation",
                    "id": f"{eid}-hr",
                    "category": [{"coding": [{"code": "vital-signs"}]}],
                    "code": {"coding": [{"code": "8867-4", "display": "Heart rate"}]},
                    "subject": {"reference": f"urn:uuid:{pid}"},
                    "encounter": {"reference": f"urn:uuid:{eid}"},
                    "valueQuantity": {"value": 70 + k, "unit": "/min"},
                    "effectiveDateTime": f"2021-03-1{k}T09:10:00-04:00",
                }
            )
        )
        entries.append(
            entry(
                {
                    "resourceType": "DocumentReference",
                    "id": f"{eid}-note",
                    "subject": {"reference": f"urn:uuid:{pid}"},
                    "context": {"encounter": [{"reference": f"urn:uuid:{eid}"}]},
                    "date": f"2021-03-1{k}T09:30:00-04:00",
                    "content": [
                        {"attachment": {"data": b64("# Chief Complaint\nnone\n# Plan\nrest\n")}}
                    ],
                }
            )
        )
    entries += [entry(r) for r in extra or []]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def make_claims_bundle(pid: str, megabytes: int, n_enc: int = 10) -> dict:
    """``make_bundle`` plus ExplanationOfBenefit resources up to about ``megabytes`` MB: most
    bytes of a long Synthea history are claims, which no Silver table reads."""
    bundle = make_bundle(pid, n_enc=n_enc)
    claim = {
        "resourceType": "ExplanationOfBenefit",
        "item": [
            {"sequence": i, "net": {"value": 136.8, "currency": "USD"}, "code": "185349003"}
            for i in range(500)
        ],
    }
    one = len(json.dumps(claim))
    bundle["entry"] += [
        {"fullUrl": f"urn:uuid:eob-{k}", "resource": {**claim, "id": f"eob-{k}"}}
        for k in range(megabytes * 1_000_000 // one)
    ]
    return bundle


def write_bundles(folder: Path, bundles: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, bundle in bundles.items():
        (folder / name).write_text(json.dumps(bundle))
    return folder


def build_lake(root: Path, source: Path | None, cohorts: int = 3, gold: bool = True) -> Path:
    """Land ``source`` and build every cohort through the job functions (no Snakemake)."""
    from fhirhouse import SILVER_TABLES, jobs

    jobs.land_job(root, source, cohorts=cohorts)
    for cohort in jobs.landing.list_cohorts(root):
        jobs.bronze_cohort_job(root, cohort)
        jobs.parse_cohort_job(root, cohort)
        for table in SILVER_TABLES:
            jobs.write_silver_job(root, cohort, table)
        if gold:
            jobs.gold_cohort_job(root, cohort)
    if gold:
        jobs.gold_manifest_job(root)
    return root


@pytest.fixture
def sample_source(tmp_path: Path) -> Path:
    """A private copy of the built-in sample bundles (tests may edit it)."""
    dst = tmp_path / "source"
    shutil.copytree(SAMPLE, dst)
    return dst


def require_shared() -> None:
    if not FIXTURES.is_dir() or not ORACLE.is_dir():
        pytest.skip("../shared/fixtures is not present next to this checkout")


def snakemake(
    workdir: Path, *args: str, config: dict[str, Any] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real `snakemake` CLI on this repo's Snakefile, isolated in ``workdir``.

    The workflow profile (profiles/default) is loaded exactly as for a user.
    """
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += list(args)
    if config:
        cmd += ["--config", *(f"{k}={v}" for k, v in config.items())]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("FHIRHOUSE_RUN_ID", None)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-4000:]}"
        )
    return proc
