"""Shared test helpers: paths, small hand-made bundles, and a Snakemake runner."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fhirhouse.layout import Layout
from fhirhouse.synth import builders
from fhirhouse.synth.builders import (
    address,
    attachment,
    b64,
    coding,
    concept,
    document_reference,
    encounter,
    observation,
    patient,
    quantity,
)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures" / "synthea"
ORACLE = SHARED / "fixtures" / "oracle" / "dev"
SAMPLE = REPO / "resources" / "sample_bundles"
BIN = Path(sys.executable).parent


def entry(resource: dict[str, Any]) -> dict[str, Any]:
    """A bundle entry as the tests write them: by fullUrl, without a transaction request."""
    return builders.entry(resource, request=False)


def bundle_of(resources: list[dict[str, Any]], kind: str | None = None) -> dict[str, Any]:
    """A Bundle of ``resources``, its entries as the tests write them (see ``entry``)."""
    return builders.bundle(resources, kind, request=False)


def make_bundle(pid: str = "p-001", n_enc: int = 1, extra: list[dict] | None = None) -> dict:
    """A small valid bundle: one patient, ``n_enc`` encounters with a note and a vital each."""
    home = address("Boston", "02118", country=None)
    resources = [patient(pid, gender="female", birth_date="1980-07-15", home=home)]
    for k in range(n_enc):
        eid = f"{pid}-enc-{k}"
        day = f"2021-03-1{k}"
        resources += [
            encounter(
                eid, pid, status="finished", klass=coding("AMB"), start=f"{day}T09:00:00-04:00"
            ),
            observation(
                f"{eid}-hr",
                pid,
                eid,
                category=concept("vital-signs"),
                code=concept("8867-4", "Heart rate"),
                value=quantity(70 + k, "/min"),
                when=f"{day}T09:10:00-04:00",
            ),
            document_reference(
                f"{eid}-note",
                pid,
                eid,
                date=f"{day}T09:30:00-04:00",
                content=attachment(b64("# Chief Complaint\nnone\n# Plan\nrest\n")),
            ),
        ]
    return bundle_of(resources + (extra or []), "transaction")


def make_claims_bundle(pid: str, megabytes: int, n_enc: int = 10) -> dict:
    """``make_bundle`` plus ExplanationOfBenefit resources up to about ``megabytes`` MB: most
    bytes of a long Synthea history are claims, which no Silver table reads."""
    big = make_bundle(pid, n_enc=n_enc)
    claim = {
        "resourceType": "ExplanationOfBenefit",
        "item": [
            {"sequence": i, "net": {"value": 136.8, "currency": "USD"}, "code": "185349003"}
            for i in range(500)
        ],
    }
    one = len(json.dumps(claim))
    big["entry"] += [entry({**claim, "id": f"eob-{k}"}) for k in range(megabytes * 10**6 // one)]
    return big


def table_frame(path: Any, drop: set[str]) -> Any:
    """A Delta table (local or ``s3://``) as a sorted Polars frame without the ``drop``
    columns; lists and structs become JSON text, so frames compare and sort."""
    import polars as pl

    from fhirhouse.store.objects import delta_storage_options

    df = pl.read_delta(str(path), storage_options=delta_storage_options(path))
    df = df.drop([c for c in df.columns if c in drop])
    nested = [c for c, t in df.schema.items() if isinstance(t, pl.List | pl.Struct)]
    df = df.with_columns([pl.struct(c).struct.json_encode().alias(c) for c in nested])
    return df.sort(df.columns)


def empty_silver() -> dict[str, Any]:
    """The ten Silver tables, empty, with their schemas."""
    from fhirhouse.silver.registry import REGISTRY

    return {name: s.schema.empty_table() for name, s in REGISTRY.items()}


def write_bundles(folder: Path, bundles: dict[str, dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, bundle in bundles.items():
        (folder / name).write_text(json.dumps(bundle))
    return folder


def build_lake(root: Path, source: Path | None, cohorts: int = 3, gold: bool = True) -> Path:
    """Land ``source`` and build every cohort through the job functions (no Snakemake)."""
    from fhirhouse import jobs
    from fhirhouse.bronze.landing import list_cohorts

    jobs.land_job(Layout.of(root), source, cohorts=cohorts)
    for cohort in list_cohorts(Layout.of(root)):
        jobs.bronze_cohort_job(Layout.of(root), cohort)
        jobs.silver_job(Layout.of(root), cohort)
        if gold:
            jobs.gold_job(Layout.of(root), cohort)
    if gold:
        jobs.gold_manifest_job(Layout.of(root))
    return root


@pytest.fixture
def sample_source(tmp_path: Path) -> Path:
    """A private copy of the built-in sample bundles (tests may edit it)."""
    dst = tmp_path / "source"
    shutil.copytree(SAMPLE, dst)
    return dst


SHARED_MISSING = "../shared/fixtures is not present next to this checkout"


def require_shared() -> None:
    """Skip a parity test when the shared fixtures are missing; fail it in CI (``CI`` set,
    as .ci/run does), where a skipped parity test would let a clean clone pass unchecked."""
    if not FIXTURES.is_dir() or not ORACLE.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{SHARED_MISSING}; CI runs the parity tests against it", pytrace=False)
        pytest.skip(SHARED_MISSING)


DOT_MISSING = "Graphviz 'dot' not found; the DAG render test is skipped (apt-get install graphviz)"
# Tests that render Snakemake's graphs with Graphviz (`make test` says when it is missing).
requires_dot = pytest.mark.skipif(shutil.which("dot") is None, reason=DOT_MISSING)


def _snakemake_command(
    workdir: Path, args: tuple[str, ...], config: dict[str, Any] | None
) -> tuple[list[str], dict[str, str]]:
    cmd = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    cmd += list(args)
    if config:
        cmd += ["--config", *(f"{k}={v}" for k, v in config.items())]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("FHIRHOUSE_RUN_ID", None)
    return cmd, env


def snakemake(
    workdir: Path, *args: str, config: dict[str, Any] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the real `snakemake` CLI on this repo's Snakefile, isolated in ``workdir``.

    The workflow profile (profiles/default) is loaded exactly as for a user.
    """
    cmd, env = _snakemake_command(workdir, args, config)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=workdir)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-4000:]}"
        )
    return proc


def snakemake_side_by_side(
    workdir: Path, runs: list[list[str]], config: dict[str, Any]
) -> list[subprocess.CompletedProcess[str]]:
    """Start one `snakemake` per argument list at once (same workdir and config), wait for
    all, and fail unless every one succeeded."""
    started = []
    for args in runs:
        cmd, env = _snakemake_command(workdir, tuple(args), config)
        started.append(
            subprocess.Popen(cmd, cwd=workdir, env=env, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        )  # fmt: skip
    done = []
    for p in started:
        out, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-3000:]
        done.append(subprocess.CompletedProcess(p.args, 0, out, err))
    return done


def no_surfaced_conflicts(proc: subprocess.CompletedProcess[str]) -> None:
    """No failed job, commit conflict, restarted job or traceback reached the user."""
    out = proc.stdout + proc.stderr
    for needle in ("Error in rule", "CommitFailed", "Trying to restart job", "Traceback"):
        assert needle not in out, needle


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url: str, server: subprocess.Popen, name: str) -> None:
    """Return once ``url`` answers; fail if ``server`` exits or 30 s pass first."""
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start on {url}") from None
            time.sleep(0.1)


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server on a free 127.0.0.1 port, in a process of its own; yields its URL.

    A separate process, not a thread: deltalake holds the GIL in some calls
    (``is_deltatable``), so a server thread in the caller's process could not answer them."""
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{endpoint}/moto-api/", server, "moto_server")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@contextmanager
def monitor_server(folder: Path) -> Iterator[str]:
    """The live run monitor as documented, ``make monitor``, on a free 127.0.0.1 port with its
    database in ``folder``; yields its URL. The running venv stands in for ``.venv`` (``-o``:
    make does not reinstall it), and the server's output goes to ``folder/server.log``."""
    port = free_port()
    venv = BIN.parent
    cmd = ["make", "-C", str(REPO), "--no-print-directory", "-o", f"{venv}/.installed",
           "monitor", f"VENV={venv}", f"MONITOR_DIR={folder}", f"MONITOR_PORT={port}"]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "server.log").open("w") as log:
        # A session of its own: stopping it stops make and the server it runs.
        server = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(f"{url}/api/service-info", server, "panoptes")
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def finished_jobs(output: str) -> set[tuple[int, str]]:
    """(job id, rule) of every job a Snakemake run's console output says finished."""
    return {(int(j), r) for j, r in re.findall(r"Finished jobid: (\d+) \(Rule: (\w+)\)", output)}


def bundle_identifiers(source: Path) -> set[str]:
    """What must never reach a log: each bundle's file name and stem, and its patients' ids
    and names."""
    found: set[str] = set()
    for f in source.glob("*.json"):
        found |= {f.name, f.stem}
        for e in json.loads(f.read_text())["entry"]:
            r = e["resource"]
            if r["resourceType"] == "Patient":
                found.add(r["id"])
                for name in r.get("name", []):
                    found.add(name["family"])
                    found.update(name["given"])
    return found
