"""A full `fhirhouse run` on a local root against the same run on an s3:// root.

    .venv/bin/python bench/object_store.py [--patients 60] [--cohorts 3] [--runs 3]

The S3 side is moto's server mode on 127.0.0.1 (started and stopped here), so the figure is
the cost of going through the S3 API (one request per listing, object read, Delta log read
and commit) against an in-memory server on the same machine, not the latency or bandwidth
of a real bucket. Each run generates the corpus once (outside the timing), then builds a
fresh root in a fresh `fhirhouse run` process; the figures are medians over --runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tests"))

from conftest import moto_server  # noqa: E402


def build(root: str, source: Path, cohorts: int, env: dict[str, str], cwd: Path) -> float:
    cmd = [str(BIN / "fhirhouse"), "run", "--root", root, "--source", str(source)]
    cmd += ["--cohorts", str(cohorts)]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=cwd, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=60)
    ap.add_argument("--cohorts", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with moto_server() as endpoint:
        measure(args, endpoint)


def measure(args: argparse.Namespace, endpoint: str) -> None:
    import boto3

    from fhirhouse.synth import write_corpus

    aws = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ENDPOINT_URL": endpoint,
    }
    env = {**os.environ, **aws}
    os.environ.update(aws)
    s3 = boto3.client("s3")
    times: dict[str, list[float]] = {"local": [], "s3": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "corpus"
        summary = write_corpus(source, args.patients, 42)
        print(
            f"corpus: {args.patients} patients, {summary['bundle_bytes'] / 1e6:.1f} MB, "
            f"{args.cohorts} cohorts; S3 = moto server on {endpoint}"
        )
        for i in range(args.runs):
            times["local"].append(build(str(work / f"local{i}"), source, args.cohorts, env, work))
            s3.create_bucket(Bucket=f"bench{i}")
            times["s3"].append(build(f"s3://bench{i}/lake", source, args.cohorts, env, work))
            print(f"run {i + 1}: local {times['local'][-1]:.1f} s, s3 {times['s3'][-1]:.1f} s")
    local, remote = statistics.median(times["local"]), statistics.median(times["s3"])
    print("| Root | Build s (median) |")
    print("|---|---:|")
    print(f"| local folder | {local:.1f} |")
    print(f"| s3:// (moto, 127.0.0.1) | {remote:.1f} |")
    print(f"s3 / local: {remote / local:.2f}x over {args.runs} runs")


if __name__ == "__main__":
    main()
