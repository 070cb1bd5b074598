"""Landing against `cp -r` of the same corpus: a fresh landing copies every bundle and DICOM
file into its cohort folder and hashes each byte once.

    .venv/bin/python bench/land_speed.py SOURCE [--runs 3] [--work DIR]

Each run reads the corpus once first (so both sides start from the page cache), then times
`cp -r SOURCE DIR/cp` and a fresh landing of SOURCE into DIR/root (three round-robin
cohorts, `fhirhouse.bronze.landing.land`, in a process of its own), alternating; both
targets are deleted after each run. It prints the medians, GB/s and the ratio.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LAND = (
    "import sys; from fhirhouse.bronze.landing import land; from fhirhouse.layout import Layout; "
    "land(Layout.of(sys.argv[1]), sys.argv[2])"
)


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    files = [p for p in args.source.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    work = args.work or Path(tempfile.mkdtemp(prefix="land-speed-"))
    cp_s, land_s = [], []
    for run in range(1, args.runs + 1):
        for p in files:  # warm the page cache for both sides alike
            p.read_bytes()
        cp_s.append(timed(["cp", "-r", str(args.source), str(work / "cp")]))
        shutil.rmtree(work / "cp")
        land_s.append(timed([sys.executable, "-c", LAND, str(work / "root"), str(args.source)]))
        shutil.rmtree(work / "root")
        print(f"run {run}: cp -r {cp_s[-1]:.2f} s, landing {land_s[-1]:.2f} s", file=sys.stderr)
    cp, land = statistics.median(cp_s), statistics.median(land_s)
    print(f"{len(files)} files, {size / 2**30:.2f} GiB, medians of {args.runs} runs")
    print("| Copy | s | GB/s |")
    print("|---|---:|---:|")
    print(f"| `cp -r` | {cp:.2f} | {size / cp / 1e9:.2f} |")
    print(f"| landing (copy + BLAKE3 of every byte) | {land:.2f} | {size / land / 1e9:.2f} |")
    print(f"landing / cp: {land / cp:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
