"""What verifying Bronze and the markers costs on every invocation.

    .venv/bin/python bench/verify_cost.py [--fixtures ../shared/fixtures/synthea] [--runs 7]

Builds the given folder of bundles (default: the 33 shared Synthea bundles) into a fresh
root with `fhirhouse run`, then measures, as medians of --runs:

- Bronze verification, `landing.sync_source_state`, as the workflow runs it once per
  invocation: cold (no digest cache: every landed bundle and DICOM file hashed with BLAKE3
  and compared with the digest recorded at landing) and warm (nothing changed since the last
  check: one stat per file);
- marker verification: `verify.find_damage` over every cohort (each table's `_delta_log`
  listed, each recorded commit looked up), the workflow's per-invocation check;
- the deep check `fhirhouse status` runs (row counts from Delta statistics);
- the floor: reading every Bronze byte once (`Path.read_bytes`), same run;
- a no-op `snakemake -n` on the built root, the invocation these costs are part of.

Prints one Markdown table. Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fixtures", type=Path, default=REPO.parent / "shared/fixtures/synthea")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    if not args.fixtures.is_dir():
        print(f"error: no folder {args.fixtures}", file=sys.stderr)
        return 2

    from fhirhouse.bronze import landing
    from fhirhouse.jobs.verify import find_damage
    from fhirhouse.layout import Layout

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lake"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        subprocess.run(
            [str(BIN / "fhirhouse"), "run", "--root", str(root), "--source", str(args.fixtures)],
            check=True, capture_output=True, cwd=REPO, env=env,
        )  # fmt: skip
        layout = Layout.of(root)
        cohorts = landing.list_cohorts(layout)
        files = [p for c in cohorts for p in landing.cohort_inputs(layout, c)]
        total = sum(p.stat().st_size for p in files)
        state = Path(tmp) / "source.json"

        def bronze(cold: bool) -> None:
            landing._CACHES.clear()  # a new invocation: the digest cache as on disk
            if cold:
                (layout.landing_metadata / "digests.json").unlink(missing_ok=True)
            landing.sync_source_state(state, layout, args.fixtures)

        time.sleep(1.1)  # past landing.RACY_NS since the landing: cached digests are trusted

        rows = [
            ("floor: read every Bronze byte", median_seconds(
                lambda: [p.read_bytes() for p in files], args.runs)),
            ("Bronze verified, every file hashed (first check, or all changed)",
             median_seconds(lambda: bronze(cold=True), args.runs)),
            ("Bronze verified, nothing changed since the last check (stat only)",
             median_seconds(lambda: bronze(cold=False), args.runs)),
            ("markers checked against the Delta logs", median_seconds(
                lambda: find_damage(layout, cohorts, remember=False), args.runs)),
            ("deep check (`fhirhouse status`): row counts", median_seconds(
                lambda: find_damage(layout, cohorts, deep=True, remember=False), args.runs)),
        ]  # fmt: skip
        dry = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", tmp, "-n"]
        dry += ["--config", f"root={root}", f"source={args.fixtures}"]
        rows.append(
            (
                "no-op `snakemake -n` (whole invocation)",
                median_seconds(
                    lambda: subprocess.run(dry, check=True, capture_output=True, env=env),
                    max(3, args.runs // 2),
                ),
            )
        )
    floor = rows[0][1]
    print(f"{len(files)} Bronze files, {total / 2**20:.1f} MiB, {len(cohorts)} cohorts")
    print(f"medians of {args.runs} runs\n")
    print("| step | ms | x floor |")
    print("|---|---:|---:|")
    for name, sec in rows:
        print(f"| {name} | {sec * 1000:,.1f} | {sec / floor:,.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
