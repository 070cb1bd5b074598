"""Time the Snakemake pipeline on a folder of bundles: fresh build, one changed bundle, no-op.

    .venv/bin/python bench/fixture_build.py [--source ../shared/fixtures/synthea] [--runs 3]
                                            [--cores 2] [--out FILE.md]

Each fresh build runs in a new temporary root. The change rewrites the heart-rate values of
the second bundle in sorted order (it lands in cohort B). Wall time and peak RSS come from
GNU time (/usr/bin/time) around the `snakemake` command. The figures are medians over
--runs. The script prints a Markdown table (and writes it to --out when given).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
GNU_TIME = Path("/usr/bin/time")


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in KB of the largest process, combined output)."""
    proc = subprocess.run(
        [str(GNU_TIME), "-f", "__TIME__ %e %M", *cmd],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stderr.splitlines() if x.startswith("__TIME__"))
    _, wall, rss = line.split()
    return float(wall), int(rss), proc.stdout + proc.stderr


def change_bundle(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    bundle = json.loads(path.read_text())
    for entry in bundle.get("entry", []):
        res = entry.get("resource", {})
        coding = (res.get("code") or {}).get("coding") or [{}]
        if res.get("resourceType") == "Observation" and coding[0].get("code") == "8867-4":
            res.setdefault("valueQuantity", {})["value"] = rng.randint(50, 120)
    path.write_text(json.dumps(bundle))


def steps(output: str) -> int:
    for line in reversed(output.splitlines()):
        if "steps (100%) done" in line:
            return int(line.split(" of ")[1].split()[0])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=REPO.parent / "shared/fixtures/synthea")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not GNU_TIME.exists():
        raise SystemExit("needs GNU time at /usr/bin/time (Debian package `time`)")
    files = sorted(args.source.glob("*.json"))
    if not files:
        raise SystemExit(f"no *.json bundles in {args.source}")
    size = sum(p.stat().st_size for p in files)
    rows: dict[str, list[tuple[float, int, int]]] = {"fresh": [], "change": [], "noop": []}
    gold_job: list[float] = []
    with tempfile.TemporaryDirectory(prefix="fhirhouse-bench-") as tmp:
        work = Path(tmp)
        src = work / "source"
        shutil.copytree(args.source, src, ignore=shutil.ignore_patterns("companions", "*.md"))
        for run in range(args.runs):
            root = work / f"lake{run}"
            cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--cores", str(args.cores)]
            cmd += ["--config", f"root={root}", f"source={src}"]
            wall, rss, out = timed(cmd, work)
            rows["fresh"].append((wall, rss, steps(out)))
            print(f"run {run + 1}: fresh build {wall:.2f} s", file=sys.stderr)
        root = work / "lake0"
        cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--cores", str(args.cores)]
        cmd += ["--config", f"root={root}", f"source={src}"]
        for run in range(args.runs):
            change_bundle(sorted(src.glob("*.json"))[1], seed=run)
            wall, rss, out = timed(cmd, work)
            rows["change"].append((wall, rss, steps(out)))
            marker = json.loads((root / "_markers/gold/cohort=B.json").read_text())
            gold_job.append(marker["seconds"])
            wall_n, rss_n, out_n = timed(cmd, work)
            rows["noop"].append((wall_n, rss_n, steps(out_n)))
            print(f"run {run + 1}: change {wall:.2f} s, no-op {wall_n:.2f} s", file=sys.stderr)

    def med(kind: str, i: int) -> float:
        return statistics.median(r[i] for r in rows[kind])

    fresh = med("fresh", 0)
    lines = [
        f"Bundles: {len(files)} files, {size / 2**20:.1f} MiB from `{args.source}`; "
        f"`snakemake --cores {args.cores}`; median of {args.runs} runs; "
        f"{platform.machine()}, {platform.python_version()}.",
        "",
        "| Run | Wall (s) | vs fresh | Peak RSS (MB) | Steps |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = {
        "fresh": "Fresh build (land, Bronze, Silver, checks, Gold, manifest, report)",
        "change": "One bundle of cohort B changed",
        "noop": "No-op rerun",
    }
    for kind, label in labels.items():
        lines.append(
            f"| {label} | {med(kind, 0):.2f} | {med(kind, 0) / fresh:.2f}x | "
            f"{med(kind, 1) / 1024:.0f} | {int(med(kind, 2))} |"
        )
    lines += [
        "",
        f"Cohort B's Gold job, in-job time: {statistics.median(gold_job):.2f} s (median).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
