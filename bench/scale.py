"""Benchmarks at several corpus sizes, up to Synthea Coherent's 1,278 patients.

    .venv/bin/python bench/scale.py [--scales 100 400 1278] [--cores 2] [--work DIR]
                                    [--out docs/BENCHMARKS.md]

For each scale it:
1. generates the corpus with `fhirhouse synth` (kept in --work, reused if present);
2. times the read+parse floor: one core reading every bundle and `orjson.loads`-ing it;
3. runs a full `snakemake --cores N` build on a fresh root under GNU time (wall, peak RSS),
   then sums Snakemake's `benchmark:` files per stage (wall s, CPU s, max RSS);
4. times a no-op rerun;
5. adds a new cohort of 10% more patients (`--config cohort=NEW`) and times it;
6. re-lands one changed bundle (heart rates rewritten) and times the rebuild.

It writes a Markdown report with the machine, the command, the per-stage table and each
performance target met or missed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GNU_TIME = Path("/usr/bin/time")


def sh(cmd: list[str], cwd: Path) -> tuple[float, int, str]:
    """Run under GNU time: (wall s, peak RSS KB of the largest process, output)."""
    proc = subprocess.run(
        [str(GNU_TIME), "-f", "__TIME__ %e %M", *cmd], cwd=cwd, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    line = next(x for x in proc.stderr.splitlines() if x.startswith("__TIME__"))
    _, wall, rss = line.split()
    return float(wall), int(rss), proc.stdout + proc.stderr


def floor(folder: Path) -> tuple[float, int]:
    """Seconds for one core to read and orjson-parse every bundle; total bytes."""
    files = sorted(folder.glob("*.json"))
    started = time.perf_counter()
    total = 0
    for p in files:
        data = p.read_bytes()
        total += len(data)
        orjson.loads(data)
    return time.perf_counter() - started, total


def stage_of(bench_file: Path, bench_root: Path) -> str:
    rel = bench_file.relative_to(bench_root)
    top = rel.parts[0]
    if top.endswith(".tsv"):
        return top[:-4]
    if top == "silver":
        return "silver (10 tables)" if len(rel.parts) > 2 else "silver"
    return top


def stages(root: Path) -> dict[str, dict[str, float]]:
    """Per stage: summed wall s and CPU s, max RSS MB, job count, from benchmark files."""
    bench_root = root / "_benchmarks"
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for f in sorted(bench_root.rglob("*.tsv")):
        rows = list(csv.DictReader(f.open(), delimiter="\t"))
        if not rows:
            continue
        r = rows[-1]
        st = out[stage_of(f, bench_root)]
        st["jobs"] += 1
        st["wall"] += float(r["s"])
        st["cpu"] += float(r.get("cpu_time") or 0)
        rss = r.get("max_rss", "-")
        st["rss"] = max(st["rss"], float(rss) if rss not in ("-", "") else 0.0)
    return out


def change_one(folder: Path) -> None:
    path = sorted(folder.glob("*.json"))[1]
    bundle = orjson.loads(path.read_bytes())
    rng = random.Random(os.getpid())
    for e in bundle["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Observation" and r["code"]["coding"][0]["code"] == "8867-4":
            r.setdefault("valueQuantity", {})["value"] = rng.randint(50, 120)
    path.write_bytes(orjson.dumps(bundle))


def run_scale(n: int, work: Path, cores: int) -> dict:
    corpus = work / f"corpus-{n}"
    synth = [str(BIN / "fhirhouse"), "synth", "--patients", str(n), "--out", str(corpus), "--quiet"]
    t_gen, _, _ = sh(synth, work)
    floor_s, size = floor(corpus)
    root = work / f"lake-{n}"
    shutil.rmtree(root, ignore_errors=True)
    sm = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "--cores", str(cores)]
    sm += ["--config", f"root={root}", f"source={corpus}"]
    print(f"[{n}] corpus {size / 2**30:.2f} GiB; floor {floor_s:.1f} s; building", file=sys.stderr)
    full, full_rss, _ = sh(sm, work)
    per_stage = stages(root)
    noop, _, _ = sh(sm, work)
    # Add before changing a bundle: regenerating the corpus would restore the changed one.
    extra = max(1, n // 10)
    sh([*synth[:3], str(n + extra), *synth[4:]], work)  # the next 10% of patients
    add, _, _ = sh([*sm, "cohort=NEW"], work)
    change_one(corpus)
    reland, _, _ = sh(sm, work)
    shutil.rmtree(root, ignore_errors=True)
    result = {
        "patients": n,
        "bytes": size,
        "generate_s": t_gen,
        "floor_s": floor_s,
        "full_s": full,
        "full_rss_kb": full_rss,
        "noop_s": noop,
        "reland_s": reland,
        "add_cohort_s": add,
        "add_patients": extra,
        "stages": {k: dict(v) for k, v in per_stage.items()},
    }
    print(
        f"[{n}] {json.dumps({k: v for k, v in result.items() if k != 'stages'})}", file=sys.stderr
    )
    return result


def target(ok: bool, text: str) -> str:
    return f"| {'met' if ok else '**missed**'} | {text} |"


def report(results: list[dict], cores: int, command: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/scale.py`; rerun with the command below. Synthetic corpora from "
        "`fhirhouse synth` (Coherent-like sizes and proportions).",
        "",
        f"- Machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}, {platform.platform()}",
        f"- Command: `{command}`",
        f"- Builds: `snakemake --cores {cores}` on a fresh root; single runs (no medians).",
        "",
        "## Summary",
        "",
        "| Patients | Corpus | Floor: 1 core read+orjson | Full build | vs floor | Peak RSS | "
        "No-op | Re-land 1 bundle | Add 10% cohort | vs full |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['patients']:,} | {r['bytes'] / 2**30:.2f} GiB | {r['floor_s']:.1f} s | "
            f"{r['full_s']:.1f} s | {r['full_s'] / r['floor_s']:.2f}x | "
            f"{r['full_rss_kb'] / 1024:,.0f} MB | {r['noop_s']:.1f} s | {r['reland_s']:.1f} s | "
            f"{r['add_cohort_s']:.1f} s | {r['add_cohort_s'] / r['full_s']:.0%} |"
        )
    for r in results:
        lines += [
            "",
            f"## Stages at {r['patients']:,} patients (Snakemake benchmark files, per stage)",
            "",
            "| Stage | Jobs | Wall s (sum) | CPU s (sum) | Max RSS MB |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, st in sorted(r["stages"].items(), key=lambda kv: -kv[1]["wall"]):
            lines.append(
                f"| {name} | {int(st['jobs'])} | {st['wall']:.1f} | {st['cpu']:.1f} | "
                f"{st['rss']:,.0f} |"
            )
    big = results[-1]
    lines += ["", "## Targets", "", "| Result | Target and measurement |", "|---|---|"]
    lines.append(
        target(
            big["full_s"] <= 1.5 * big["floor_s"],
            f"full build within 1.5x the one-core read+parse floor: {big['full_s']:.1f} s vs "
            f"{big['floor_s']:.1f} s = {big['full_s'] / big['floor_s']:.2f}x at "
            f"{big['patients']:,} patients",
        )
    )
    lines.append(
        target(
            big["add_cohort_s"] <= 0.15 * big["full_s"],
            f"new cohort of 10% within 15% of the full build: {big['add_cohort_s']:.1f} s = "
            f"{big['add_cohort_s'] / big['full_s']:.0%}",
        )
    )
    lines.append(target(big["noop_s"] <= 2.0, f"no-op rerun within 2 s: {big['noop_s']:.1f} s"))
    max_rss = max(st["rss"] for st in big["stages"].values())
    lines.append(target(max_rss <= 1024, f"peak RSS of any job within 1 GB: {max_rss:,.0f} MB"))
    if len(results) >= 2:
        # The target compares 4x the patients: take the pair whose ratio is closest to 4.
        pairs = [(a, b) for a in results for b in results if b["patients"] > a["patients"]]
        small, large = min(pairs, key=lambda ab: abs(ab[1]["patients"] / ab[0]["patients"] - 4))
        growth = large["patients"] / small["patients"]
        ratio = large["full_s"] / small["full_s"]
        lines.append(
            target(
                ratio <= 1.1 * growth,
                f"linear growth, {growth:.1f}x the patients within {1.1 * growth:.1f}x the time:"
                f" {small['patients']:,} -> {large['patients']:,} patients took {ratio:.2f}x",
            )
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[100, 400, 1278])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/fhirhouse-bench"))
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    args = ap.parse_args()
    if not GNU_TIME.exists():
        raise SystemExit("needs GNU time at /usr/bin/time (Debian package `time`)")
    args.work.mkdir(parents=True, exist_ok=True)
    command = "python bench/scale.py " + " ".join(sys.argv[1:])
    results = []
    for n in sorted(args.scales):
        shutil.rmtree(args.work / f"corpus-{n}", ignore_errors=True)
        results.append(run_scale(n, args.work, args.cores))
        args.out.write_text(report(results, args.cores, command.strip()))
        (args.work / "results.json").write_text(json.dumps(results, indent=2))
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
