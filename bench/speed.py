"""The speed benchmark: full builds, incremental builds and fixed costs against the read floor.

    .venv/bin/python bench/speed.py [--corpora F33 R396 S1278] [--runs 3] [--cores 2]
        [--repo DIR] [--work DIR] [--fixtures DIR] [--out docs/BENCHMARKS.md] [--keep]

    # quick runs while developing (small corpora, one run each)
    .venv/bin/python bench/speed.py --corpora F33 S60 --runs 1 --out /tmp/speed.md
    # benchmark another checkout with the same venv
    /work/main/.venv/bin/python bench/speed.py --repo /work/main --corpora F33 R396

It uses only the public commands, `snakemake -s REPO/Snakefile` and `fhirhouse run|synth`,
all with `PYTHONPATH=REPO/src`, so it measures the checkout given by --repo (default: the
repository this script lives in), whatever the venv's editable install points at. The
venv is the one of the Python running the script (its bin/ holds snakemake and fhirhouse).

Corpora (kept in --work/corpora and reused when present and untouched):
- F33: the shared Synthea bundles (--fixtures) as they are, copied out of the fixture folder;
  its 10% drop is 3 bundles of a replicated copy (bench/replicate.py, copy 0).
- R<n>, e.g. R396: the shared bundles replicated n/33 times with fresh UUIDs
  (bench/replicate.py); its drop is ~10% more bundles from the next copies.
- S<n>, e.g. S60, S1278: `fhirhouse synth --patients n`; its drop is the next ~10% patients
  of the same generator (patient i depends only on the seed and i).

For each corpus:
1. the floor: one core reading every bundle and `orjson.loads`-ing it (this process);
2. a fresh `snakemake --cores N` build on a new root under GNU time (wall, CPU of all its
   processes, peak RSS of the largest process), then Snakemake's benchmark files
   (`<root>/_benchmarks/**.tsv`) summed per stage and job kind; stages and kinds come from
   the directory layout, not from rule names;
3. a no-op rerun, and `snakemake -n` (Snakemake's start-up on a built root);
4. a 10% drop landed as a new cohort (`--config cohort=NEW`) on that root;
5. one bundle changed (its heart-rate values rewritten) in the source, then a rebuild;
6. a fresh `fhirhouse run` on a new root.
Every build must end with exit 0, a Gold table (`gold/encounter_summary/_delta_log`) and a
corpus manifest (`gold/_metadata/corpus_manifest.json`, rewritten by the incremental builds,
counting one patient per bundle); otherwise the script exits 1 with the command's stderr
tail, and the report marks that corpus failed. Working sources are hard-link farms of the
corpus (changed bundles are written as new files); roots live in --work/roots/<corpus>,
deleted after each step unless --keep (and kept after a failure), --work/logs has the output
of every command.

Anything under a minute is repeated --runs times and the median reported; the chain of steps
2-5 is repeated only while the fresh build takes under a minute (each repetition needs a fresh
build), else it runs once and the no-op and dry run are repeated on its root. Fixed costs: the
median wall seconds per job kind over the F33 builds (tiny data: mostly start-up), and the
time of `python -c "import fhirhouse"`, `fhirhouse --help` and `snakemake -n`.

Output: the Markdown report (--out): machine, command, code commit, a summary and a per-stage
table per corpus, the fixed costs, and the targets (TARGETS below) met or missed, next to the
reference implementation's reported figures (quoted, not rerun); every sample as JSON in
--work/speed-results.json.
Bundle file names and patient identifiers are never printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

# bench/replicate.py, next to this file (also when this module is imported from elsewhere)
sys.path.insert(0, str(Path(__file__).resolve().parent))
import replicate

HERE = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GNU_TIME = Path("/usr/bin/time")
LONG_S = 60.0  # measurements shorter than this are repeated --runs times
DROP_SHARE = 0.10
F33_DROP = 3  # bundles of a replicated copy added to F33
NEW_COHORT = "NEW"
HEART_RATE = "8867-4"
GOLD_LOG = Path("gold/encounter_summary/_delta_log")
MANIFEST = Path("gold/_metadata/corpus_manifest.json")

# The reference implementation's figures, as reported (not rerun on this machine).
REFERENCE = {
    "F33": {"full_s": 3.5},
    "R396": {"full_s": 23.3},
    "S1278": {"full_s": 443.0, "rss_mb": 1.98 * 1024},
}


class BenchError(RuntimeError):
    """A command or a check failed; the message says which and why (no bundle names)."""


# --------------------------------------------------------------------------- running


@dataclass
class Timing:
    wall: float
    rss_kb: int
    cpu: float  # user + system seconds of the command and its waited children
    output: str = field(repr=False, default="")


@dataclass
class Runner:
    """Runs the public commands of one checkout under GNU time, logging each to --work/logs."""

    repo: Path
    cores: int
    logs: Path
    count: int = 0

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRHOUSE_")}
        env["PYTHONPATH"] = os.pathsep.join(
            [str(self.repo / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        return env

    def timed(self, cmd: list[str], cwd: Path, label: str) -> Timing:
        """Wall s, peak RSS KB of the largest process among the command and its waited
        children, and their CPU s; raises BenchError with the stderr tail on failure."""
        self.logs.mkdir(parents=True, exist_ok=True)
        cwd.mkdir(parents=True, exist_ok=True)
        self.count += 1
        tfile = self.logs / f"{self.count:03d}-{label}.time"
        proc = subprocess.run(
            [str(GNU_TIME), "-o", str(tfile), "-f", "%e %M %U %S", *cmd],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
        )
        out = proc.stdout + proc.stderr
        (self.logs / f"{self.count:03d}-{label}.log").write_text(
            f"$ {shlex.join(cmd)}\n(cwd {cwd})\n{out}"
        )
        if proc.returncode != 0:
            raise BenchError(
                f"{label}: command failed with exit {proc.returncode}: {shlex.join(cmd)}\n"
                f"--- stderr (tail) ---\n{proc.stderr[-4000:]}"
            )
        wall, rss, user, system = tfile.read_text().split()[-4:]
        return Timing(float(wall), int(rss), float(user) + float(system), out)

    def snakemake(self, root: Path, source: Path, *extra: str, dry: bool = False) -> list[str]:
        cmd = [str(BIN / "snakemake"), "-s", str(self.repo / "Snakefile"), "--cores"]
        cmd += [str(self.cores), *(["-n"] if dry else [])]
        return [*cmd, "--config", f"root={root}", f"source={source}", *extra]

    def fhirhouse(self, *args: str) -> list[str]:
        return [str(BIN / "fhirhouse"), *args]

    def check_package(self) -> str:
        """Fail unless `import fhirhouse` resolves to REPO/src; return its path."""
        proc = subprocess.run(
            [sys.executable, "-c", "import fhirhouse; print(fhirhouse.__file__)"],
            cwd=self.logs.parent,
            env=self.env,
            capture_output=True,
            text=True,
        )
        where = proc.stdout.strip()
        if proc.returncode != 0 or not Path(where).is_relative_to(self.repo / "src"):
            raise BenchError(
                f"`import fhirhouse` does not come from {self.repo / 'src'}: "
                f"{where or proc.stderr[-2000:]}"
            )
        return where


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def repeat(runs: int, fn: Any) -> list[Any]:
    """Call fn() once, and runs-1 more times when the first took under LONG_S seconds.
    fn returns (seconds, value); the list holds the values."""
    first_s, first = fn()
    out = [first]
    if first_s < LONG_S:
        out += [fn()[1] for _ in range(runs - 1)]
    return out


# --------------------------------------------------------------------------- corpora


@dataclass
class Corpus:
    name: str
    main: Path
    drop: Path
    files: int
    bytes: int
    drop_files: int
    drop_bytes: int


def bundles(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.is_file())


def corpus_files(folder: Path) -> list[Path]:
    """Bundles and their DICOM files (dicom/*.dcm), the files a source folder lands."""
    return bundles(folder) + sorted(folder.glob("dicom/*.dcm"))


def fingerprint(folder: Path) -> dict[str, int]:
    files = corpus_files(folder)
    stats = [p.stat() for p in files]
    return {
        "files": len(files),
        "bytes": sum(s.st_size for s in stats),
        "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
    }


def _move_new(folder: Path, before: set[Path], dest: Path) -> None:
    """Move the files of ``folder`` not in ``before`` to ``dest`` (keeping dicom/)."""
    for p in corpus_files(folder):
        if p.relative_to(folder) not in before:
            target = dest / p.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(p, target)


def make_corpus(name: str, work: Path, fixtures: Path, runner: Runner) -> Corpus:
    """Generate (or reuse) the corpus ``name`` and its 10% drop under work/corpora."""
    base = work / "corpora"
    main, drop, done = base / name, base / f"{name}-drop", base / f"{name}.done.json"
    if done.exists() and main.is_dir() and drop.is_dir():
        saved = json.loads(done.read_text())
        if saved == {"main": fingerprint(main), "drop": fingerprint(drop)}:
            return _corpus(name, main, drop)
        log(f"[{name}] corpus changed since it was generated: generating it again")
    for d in (main, drop):
        shutil.rmtree(d, ignore_errors=True)
    drop.mkdir(parents=True)
    n_fix = len(replicate.source_bundles(fixtures))
    started = time.perf_counter()
    if name == "F33":
        main.mkdir(parents=True)
        for p in replicate.source_bundles(fixtures):
            shutil.copyfile(p, main / p.name)
        replicate.replicate(fixtures, drop, copies=1, start=0, bundles=F33_DROP)
        problems = replicate.verify(fixtures, [drop])
    elif name.startswith("R"):
        n = int(name[1:])
        if n % n_fix:
            raise BenchError(f"{name}: R<n> needs a multiple of the {n_fix} fixture bundles")
        copies, extra = n // n_fix, max(1, round(n * DROP_SHARE))
        replicate.replicate(fixtures, main, copies=copies)
        replicate.replicate(fixtures, drop, math.ceil(extra / n_fix), start=copies, bundles=extra)
        problems = replicate.verify(fixtures, [main, drop])
    elif name.startswith("S"):
        n = int(name[1:])
        extra = max(1, round(n * DROP_SHARE))
        synth = runner.fhirhouse("synth", "--patients", str(n), "--out", str(main), "--quiet")
        runner.timed(synth, work, f"synth-{name}")
        before = {p.relative_to(main) for p in corpus_files(main)}
        # The same generator, n + extra patients: the first n are byte-identical and kept.
        synth[3] = str(n + extra)
        runner.timed(synth, work, f"synth-{name}-drop")
        _move_new(main, before, drop)
        problems = []
    else:
        raise BenchError(f"unknown corpus {name!r}: use F33, R<n> or S<n>")
    if problems:
        raise BenchError(f"{name}: replicated corpus failed its check: {'; '.join(problems)}")
    done.write_text(json.dumps({"main": fingerprint(main), "drop": fingerprint(drop)}))
    log(f"[{name}] corpus generated in {time.perf_counter() - started:.0f} s")
    return _corpus(name, main, drop)


def _corpus(name: str, main: Path, drop: Path) -> Corpus:
    m, d = bundles(main), bundles(drop)
    return Corpus(
        name,
        main,
        drop,
        files=len(m),
        bytes=sum(p.stat().st_size for p in m),
        drop_files=len(d),
        drop_bytes=sum(p.stat().st_size for p in d),
    )


def link_farm(src: Path, dest: Path) -> Path:
    """Hard-link the corpus files of ``src`` into ``dest`` (a copy where links fail)."""
    for p in corpus_files(src):
        target = dest / p.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(p, target)
        except OSError:
            shutil.copy2(p, target)
    return dest


def change_one(folder: Path, seed: int) -> None:
    """Rewrite the heart-rate values of one bundle (the second in sorted order that has any)
    as a new file, so a hard-linked original stays intact."""
    files = bundles(folder)
    rng = random.Random(seed)
    for path in files[1:] + files[:1]:
        bundle = orjson.loads(path.read_bytes())
        changed = 0
        for e in bundle.get("entry") or []:
            r = e.get("resource") or {}
            coding = (r.get("code") or {}).get("coding") or [{}]
            if r.get("resourceType") == "Observation" and coding[0].get("code") == HEART_RATE:
                quantity = r.setdefault("valueQuantity", {})
                value = rng.randint(50, 120)
                quantity["value"] = value + 1 if value == quantity.get("value") else value
                changed += 1
        if changed:
            tmp = path.with_name(".changed.tmp")
            tmp.write_bytes(orjson.dumps(bundle))
            os.replace(tmp, path)
            return
    raise BenchError(f"no bundle in {folder} has heart-rate observations to change")


def floor(folder: Path) -> tuple[float, int]:
    """Seconds for one core to read and orjson-parse every bundle; total bytes."""
    files = bundles(folder)
    started = time.perf_counter()
    total = 0
    for p in files:
        data = p.read_bytes()
        total += len(data)
        orjson.loads(data)
    return time.perf_counter() - started, total


# --------------------------------------------------------------------------- build results


def check_build(root: Path, patients: int, since: float | None, label: str) -> None:
    """The build left a Gold table and a corpus manifest (rewritten since ``since``) that
    counts ``patients`` distinct patients."""
    if not (root / GOLD_LOG).is_dir():
        raise BenchError(f"{label}: no Gold table ({root / GOLD_LOG} is missing)")
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise BenchError(f"{label}: no corpus manifest ({manifest} is missing)")
    if since is not None and manifest.stat().st_mtime < since - 1:
        raise BenchError(f"{label}: the corpus manifest was not rewritten by this build")
    stats = json.loads(manifest.read_text()).get("corpus_stats") or {}
    found = stats.get("distinct_patients")
    if found is None:
        log(f"{label}: warning: the manifest has no corpus_stats.distinct_patients")
    elif found != patients:
        raise BenchError(f"{label}: the manifest counts {found} patients, expected {patients}")


def job_kind(rel: Path) -> str:
    """A benchmark file's job kind: its path under _benchmarks/ without wildcard parts
    (``name=value``) and without ``.tsv``: parse/cohort=A.tsv -> parse, land.tsv -> land,
    silver/patient/cohort=A.tsv -> silver/patient."""
    parts = [*rel.parts[:-1], rel.name.removesuffix(".tsv")]
    return "/".join(p for p in parts if "=" not in p) or "(root)"


def benchmark_jobs(root: Path, since: float | None = None) -> list[dict[str, Any]]:
    """One row per benchmark file (the job's last run): kind, stage, wall s, CPU s, RSS MB.
    With ``since``: only files written since then (the jobs a step ran)."""
    bench = root / "_benchmarks"
    rows = []
    for f in sorted(bench.rglob("*.tsv")):
        if since is not None and f.stat().st_mtime < since - 1:
            continue
        with f.open() as fh:
            table = list(csv.DictReader(fh, delimiter="\t"))
        if not table:
            continue
        last = table[-1]
        kind = job_kind(f.relative_to(bench))

        def num(key: str, row: dict[str, str] = last) -> float:
            value = row.get(key) or "-"
            return float(value) if value not in ("-", "NA") else 0.0

        rows.append(
            {
                "kind": kind,
                "stage": kind.split("/")[0],
                "wall": num("s"),
                "cpu": num("cpu_time"),
                "rss": num("max_rss"),
            }
        )
    return rows


def steps(output: str) -> int | None:
    """Jobs Snakemake ran, from its output (0 for "Nothing to be done")."""
    if "Nothing to be done" in output:
        return 0
    found = re.findall(r"(\d+) of (\d+) steps \(100%\) done", output)
    return int(found[-1][1]) if found else None


# --------------------------------------------------------------------------- one corpus


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_corpus(c: Corpus, runner: Runner, work: Path, runs: int, keep: bool) -> dict:
    res: dict[str, Any] = {
        "corpus": c.name,
        "files": c.files,
        "bytes": c.bytes,
        "drop_files": c.drop_files,
        "drop_bytes": c.drop_bytes,
        "floor_s": [],
        "full": [],
        "noop": [],
        "dry": [],
        "add": [],
        "reland": [],
        "cli": [],
        "builds": [],
        "load": [os.getloadavg()[0]],  # 1-minute load average at the start and the end
    }
    if res["load"][0] > runner.cores:
        log(
            f"[{c.name}] warning: load average {res['load'][0]:.1f} on {os.cpu_count()} cores; "
            "other work competes with the benchmark (compare the CPU times)"
        )

    def floor_once() -> tuple[float, float]:
        seconds, _ = floor(c.main)
        return seconds, seconds

    fl = res["floor_s"] = repeat(runs, floor_once)
    log(f"[{c.name}] {c.files} bundles, {c.bytes / 2**20:,.1f} MiB; floor {median(fl):.2f} s")
    area = work / "roots" / c.name
    shutil.rmtree(area, ignore_errors=True)

    def sample(t: Timing, jobs: int | None = None) -> dict[str, Any]:
        return {
            "s": t.wall,
            "cpu_s": t.cpu,
            "rss_kb": t.rss_kb,
            "steps": steps(t.output),
            "jobs": jobs,
        }

    def chain(i: int) -> tuple[float, None]:
        src = link_farm(c.main, area / f"src-{i}")
        cwd = area / f"snakemake-{i}"
        root = cwd / "lake"
        sm = runner.snakemake(root, src)
        t = runner.timed(sm, cwd, f"{c.name}-full")
        check_build(root, c.files, None, f"[{c.name}] full build")
        rows = benchmark_jobs(root)
        res["full"].append(sample(t, len(rows)))
        res["builds"].append(rows)
        log(f"[{c.name}] full build {i + 1}: {t.wall:.1f} s, {t.rss_kb / 1024:,.0f} MB")
        # repeat the cheap no-op and dry run here when the chain itself is not repeated
        reps = 1 if (t.wall < LONG_S and runs > 1) else runs
        for _ in range(reps):
            started = time.time()
            n = runner.timed(sm, cwd, f"{c.name}-noop")
            res["noop"].append(sample(n, len(benchmark_jobs(root, started))))
            d = runner.timed(runner.snakemake(root, src, dry=True), cwd, f"{c.name}-dry")
            res["dry"].append(sample(d))
        link_farm(c.drop, src)
        started = time.time()
        a = runner.timed([*sm, f"cohort={NEW_COHORT}"], cwd, f"{c.name}-add")
        check_build(root, c.files + c.drop_files, started, f"[{c.name}] add cohort")
        res["add"].append(sample(a, len(benchmark_jobs(root, started))))
        change_one(src, seed=i)
        started = time.time()
        r = runner.timed(sm, cwd, f"{c.name}-reland")
        check_build(root, c.files + c.drop_files, started, f"[{c.name}] re-land")
        res["reland"].append(sample(r, len(benchmark_jobs(root, started))))
        log(
            f"[{c.name}] no-op {n.wall:.1f} s, add {c.drop_files} bundles {a.wall:.1f} s, "
            f"re-land one {r.wall:.1f} s"
        )
        if not keep:
            shutil.rmtree(src)
            shutil.rmtree(cwd)
        return t.wall, None

    def cli(i: int) -> tuple[float, None]:
        src = link_farm(c.main, area / f"cli-src-{i}")
        cwd = area / f"cli-{i}"
        root = cwd / "lake"
        cmd = runner.fhirhouse("run", "--config", str(runner.repo / "config" / "config.yaml"))
        t = runner.timed([*cmd, "--root", str(root), "--source", str(src)], cwd, f"{c.name}-cli")
        check_build(root, c.files, None, f"[{c.name}] fhirhouse run")
        res["cli"].append(sample(t))
        log(f"[{c.name}] fhirhouse run {i + 1}: {t.wall:.1f} s, {t.rss_kb / 1024:,.0f} MB")
        if not keep:
            shutil.rmtree(src)
            shutil.rmtree(cwd)
        return t.wall, None

    counter = iter(range(10**6))
    repeat(runs, lambda: chain(next(counter)))
    counter = iter(range(10**6))
    repeat(runs, lambda: cli(next(counter)))
    if not keep:
        shutil.rmtree(area, ignore_errors=True)
    res["load"].append(os.getloadavg()[0])
    return res


# --------------------------------------------------------------------------- summaries


def med(res: dict, key: str, field_: str = "s") -> float:
    return median([x[field_] for x in res[key]])


def median_build(res: dict) -> list[dict[str, Any]]:
    """The benchmark rows of the fresh build with the median wall time."""
    walls = [x["s"] for x in res["full"]]
    order = sorted(range(len(walls)), key=walls.__getitem__)
    return res["builds"][order[(len(order) - 1) // 2]]


def peak_rss_mb(res: dict) -> float:
    """The largest RSS of any process in any step (GNU time and benchmark files)."""
    kb = [x["rss_kb"] for k in ("full", "noop", "dry", "add", "reland", "cli") for x in res[k]]
    bench = [row["rss"] for build in res["builds"] for row in build]
    return max([k / 1024 for k in kb] + bench)


def summarise(res: dict) -> dict[str, float]:
    fl = median(res["floor_s"])
    full = med(res, "full")
    s = {
        "floor_s": fl,
        "full_s": full,
        "full_cpu_s": med(res, "full", "cpu_s"),
        "full_rss_mb": med(res, "full", "rss_kb") / 1024,
        "cli_s": med(res, "cli"),
        "cli_cpu_s": med(res, "cli", "cpu_s"),
        "cli_rss_mb": med(res, "cli", "rss_kb") / 1024,
        "noop_s": med(res, "noop"),
        "dry_s": med(res, "dry"),
        "add_s": med(res, "add"),
        "reland_s": med(res, "reland"),
        "peak_rss_mb": peak_rss_mb(res),
    }
    s["full_x"] = full / fl
    s["cli_x"] = s["cli_s"] / fl
    s["add_share"] = s["add_s"] / full
    s["reland_share"] = s["reland_s"] / full
    return s


def stage_table(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """stage -> kind -> sums (jobs, wall, cpu) and max RSS."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for r in rows:
        k = out[r["stage"]].setdefault(r["kind"], {"jobs": 0, "wall": 0, "cpu": 0, "rss": 0})
        k["jobs"] += 1
        k["wall"] += r["wall"]
        k["cpu"] += r["cpu"]
        k["rss"] = max(k["rss"], r["rss"])
    return out


# --------------------------------------------------------------------------- report


def size_text(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def samples(res: dict, key: str) -> str:
    n = len(res[key])
    return f"median of {n}" if n > 1 else "single run"


def machine_line() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(
            int(x.split()[1])
            for x in Path("/proc/meminfo").read_text().splitlines()
            if x.startswith("MemTotal")
        )
        mem_text = f"{mem / 2**20:.0f} GB RAM"
    except (OSError, StopIteration):
        mem_text = "? RAM"
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_text}, {platform.machine()}, "
        f"Python {platform.python_version()}, {platform.platform()}"
    )


def repo_line(repo: Path) -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
        return proc.stdout.strip()

    pipeline = ["src", "Snakefile", "rules", "scripts", "config", "schemas"]
    commit = git("rev-parse", "--short", "HEAD") or "?"
    last = git("log", "-1", "--format=%h", "--", *pipeline) or "?"
    dirty = git("status", "--porcelain", "--", *pipeline)
    return f"`{repo}` at commit `{commit}` (pipeline code last changed in `{last}`" + (
        ", with uncommitted changes to it)" if dirty else ")"
    )


NOOP_TARGET_S = 1.5
Check = Callable[[dict[str, float]], tuple[str, bool]]
# (target, corpus, measured text and verdict from that corpus's summary, reference figure)
TARGETS: list[tuple[str, str, Check | None, str]] = [
    (
        "F33 full build <= 6 s",
        "F33",
        lambda s: (f"{s['full_s']:.1f} s", s["full_s"] <= 6.0),
        "3.5 s",
    ),
    (
        "R396 full build / floor <= 3.0x",
        "R396",
        lambda s: (
            f"{s['full_s']:.1f} s / {s['floor_s']:.1f} s = {s['full_x']:.2f}x",
            s["full_x"] <= 3.0,
        ),
        "23.3 s (full build)",
    ),
    (
        "S1278 full build / floor <= 1.5x",
        "S1278",
        lambda s: (
            f"{s['full_s']:.1f} s / {s['floor_s']:.1f} s = {s['full_x']:.2f}x",
            s["full_x"] <= 1.5,
        ),
        "443 s (full build)",
    ),
    (
        "S1278 add 10% cohort / full build <= 12%",
        "S1278",
        lambda s: (
            f"{s['add_s']:.1f} s / {s['full_s']:.1f} s = {s['add_share']:.1%}",
            s["add_share"] <= 0.12,
        ),
        "-",
    ),
    (
        "S1278 re-land one bundle / full build <= 5%",
        "S1278",
        lambda s: (
            f"{s['reland_s']:.1f} s / {s['full_s']:.1f} s = {s['reland_share']:.1%}",
            s["reland_share"] <= 0.05,
        ),
        "-",
    ),
    # every corpus of the run: handled in targets()
    (f"no-op rerun <= {NOOP_TARGET_S} s at every size", "*", None, "-"),
    (
        "peak RSS of any process at S1278 <= 1 GB",
        "S1278",
        lambda s: (f"{s['peak_rss_mb']:,.0f} MB", s["peak_rss_mb"] <= 1024),
        "1.98 GB",
    ),
    (
        "`fhirhouse run` R396 / floor <= 2.0x",
        "R396",
        lambda s: (
            f"{s['cli_s']:.1f} s / {s['floor_s']:.1f} s = {s['cli_x']:.2f}x",
            s["cli_x"] <= 2.0,
        ),
        "-",
    ),
]


def targets(sums: dict[str, dict[str, float]], failed: str | None = None) -> list[str]:
    """The Targets table: met, missed, failed (the build failed) or not measured."""
    rows = [
        "| Target | Measured | Reference (reported, not rerun) | Result |",
        "|---|---|---|---|",
    ]
    for text, corpus, check, ref in TARGETS:
        if check is None and not sums:
            rows.append(f"| {text} | no corpus measured | {ref} | not measured |")
            continue
        if check is None:  # the no-op target, over every corpus of the run
            value = ", ".join(f"{k} {v['noop_s']:.2f} s" for k, v in sums.items())
            ok = all(v["noop_s"] <= NOOP_TARGET_S for v in sums.values())
        elif corpus in sums:
            value, ok = check(sums[corpus])
        elif corpus == failed:
            rows.append(f"| {text} | {corpus}: the run failed | {ref} | **failed** |")
            continue
        else:
            rows.append(f"| {text} | {corpus} not in this run | {ref} | not measured |")
            continue
        rows.append(f"| {text} | {value} | {ref} | {'met' if ok else '**missed**'} |")
    return rows


def report(
    results: dict[str, dict],
    fixed: dict[str, Any],
    header: dict[str, str],
    cores: int,
    failure: tuple[str, str] | None = None,
) -> str:
    """The Markdown report of the corpora done; ``failure``: (corpus, what failed)."""
    sums = {name: summarise(r) for name, r in results.items()}
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/speed.py` (see its docstring); rerun with the command below.",
        "",
        f"- Machine: {header['machine']}",
        f"- Load average when the run started: {header['load']}",
        f"- Code: {header['repo']}; Snakemake {header['snakemake']}",
        f"- Command: `{header['command']}`",
        f"- Builds: `snakemake --cores {cores}` and `fhirhouse run`, each on a fresh root. "
        "Wall time, CPU time (user + system, the command and its children) and peak RSS "
        "(largest single process) of the whole command, from GNU time. "
        f"Anything under {LONG_S:.0f} s is a median of the runs shown; the add-cohort and "
        "re-land steps each need a fresh full build first, so they are single runs when the "
        "full build takes longer.",
        "- Corpora: F33 = the 33 shared Synthea bundles; R<n> = those replicated with fresh "
        "UUIDs (`bench/replicate.py`); S<n> = `fhirhouse synth --patients n`.",
        "",
    ]
    for name, r in results.items():
        s = sums[name]
        ref = REFERENCE.get(name, {})
        ref_full = f"{ref['full_s']:g} s" if "full_s" in ref else "-"
        ref_rss = f"{ref['rss_mb'] / 1024:.2f} GB" if "rss_mb" in ref else "-"

        def jobs(key: str, r: dict = r) -> str:
            """Jobs Snakemake ran (from its output), and how many wrote benchmark files."""
            ran = [x["steps"] for x in r[key] if x["steps"] is not None]
            bench = [x["jobs"] for x in r[key] if x["jobs"] is not None]
            text = f"{median(ran):g} jobs" if ran else "jobs: ?"
            return text + (f" ({median(bench):g} with benchmark files)" if bench else "")

        lines += [
            f"## {name}: {r['files']} bundles, {size_text(r['bytes'])}",
            "",
            f"Load average (1 min) at the start and the end: {r['load'][0]:.2f}, "
            f"{r['load'][-1]:.2f} on {os.cpu_count()} cores. Above the core count, other "
            "work competed with these runs: compare CPU times rather than wall times.",
            "",
            "| Measurement | Value | Ratio; jobs run | Runs | Reference (reported, not rerun) |",
            "|---|---:|---:|---|---:|",
            f"| Floor: one core reads and `orjson.loads` every bundle | {s['floor_s']:.2f} s "
            f"({r['bytes'] / 1e6:,.0f} MB, {r['bytes'] / 1e6 / s['floor_s']:,.0f} MB/s) | 1x | "
            f"{samples(r, 'floor_s')} | - |",
            f"| Full build, `snakemake --cores {cores}` | {s['full_s']:.2f} s | "
            f"{s['full_x']:.2f}x floor; {jobs('full')} | {samples(r, 'full')} | {ref_full} |",
            f"| Full build, CPU (user + system, all processes) | {s['full_cpu_s']:.1f} s | | "
            f"{samples(r, 'full')} | - |",
            f"| Full build, peak RSS | {s['full_rss_mb']:,.0f} MB | | {samples(r, 'full')} | "
            f"{ref_rss} |",
            f"| `fhirhouse run` (sequential) | {s['cli_s']:.2f} s | {s['cli_x']:.2f}x floor | "
            f"{samples(r, 'cli')} | - |",
            f"| `fhirhouse run`, CPU (user + system) | {s['cli_cpu_s']:.1f} s | | "
            f"{samples(r, 'cli')} | - |",
            f"| `fhirhouse run`, peak RSS | {s['cli_rss_mb']:,.0f} MB | | {samples(r, 'cli')} "
            "| - |",
            f"| No-op rerun | {s['noop_s']:.2f} s | {jobs('noop')} | {samples(r, 'noop')} | - |",
            f"| `snakemake -n` on the built root | {s['dry_s']:.2f} s | | {samples(r, 'dry')} "
            "| - |",
            f"| Add a 10% cohort ({r['drop_files']} bundles, {size_text(r['drop_bytes'])}, "
            f"`cohort={NEW_COHORT}`) | {s['add_s']:.2f} s | {s['add_share']:.1%} of full; "
            f"{jobs('add')} | {samples(r, 'add')} | - |",
            f"| Re-land one changed bundle | {s['reland_s']:.2f} s | "
            f"{s['reland_share']:.1%} of full; {jobs('reland')} | {samples(r, 'reland')} | - |",
            f"| Peak RSS of any process (all steps) | {s['peak_rss_mb']:,.0f} MB | | | {ref_rss} |",
            "",
            f"### {name}: stages of the full build (Snakemake benchmark files)",
            "",
            "Stages and job kinds are the folders of `<root>/_benchmarks/`; the build with the "
            "median wall time. Rules without a `benchmark:` file are not listed.",
            "",
            "| Stage / job kind | Jobs | Wall s (sum) | CPU s (sum) | Max RSS MB |",
            "|---|---:|---:|---:|---:|",
        ]
        stages = stage_table(median_build(r))
        for stage, kinds in sorted(
            stages.items(), key=lambda kv: -sum(k["wall"] for k in kv[1].values())
        ):
            tot = {
                "jobs": sum(k["jobs"] for k in kinds.values()),
                "wall": sum(k["wall"] for k in kinds.values()),
                "cpu": sum(k["cpu"] for k in kinds.values()),
                "rss": max(k["rss"] for k in kinds.values()),
            }
            label = f"**{stage}**" + (f" ({len(kinds)} kinds)" if len(kinds) > 1 else "")
            entries = [(label, tot)]
            if len(kinds) > 1:
                entries += [
                    (f"· {k}", v) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["wall"])
                ]
            for text, v in entries:
                lines.append(
                    f"| {text} | {int(v['jobs'])} | {v['wall']:.2f} | {v['cpu']:.2f} | "
                    f"{v['rss']:,.0f} |"
                )
        total = sum(x["wall"] for x in median_build(r))
        lines += [
            "",
            f"Sum of job wall times: {total:.1f} s over the {len(median_build(r))} jobs with "
            f"benchmark files; the build ran {jobs('full')} and took {s['full_s']:.1f} s "
            f"with {cores} cores.",
            "",
        ]
    if fixed:
        n = fixed["runs"]
        lines += [
            "## Fixed cost per job kind",
            "",
            f"Median wall seconds per job from the {fixed['corpus']} builds' benchmark files "
            f"({fixed['builds']} builds). "
            + (
                "On F33 the data is small, so this is mostly process start-up and imports."
                if fixed["corpus"] == "F33"
                else "F33 was not in this run: these include the work on the data."
            ),
            "",
            "| Job kind | Jobs per build | Median wall s | Median CPU s | Median max RSS MB |",
            "|---|---:|---:|---:|---:|",
        ]
        for kind, v in fixed["kinds"].items():
            lines.append(
                f"| {kind} | {v['jobs']:g} | {v['wall']:.2f} | {v['cpu']:.2f} | {v['rss']:,.0f} |"
            )
        lines += [
            "",
            "| Start-up | Median s | Runs |",
            "|---|---:|---|",
            f"| `python -c pass` (interpreter alone) | {fixed['python_s']:.2f} | {n} |",
            f'| `python -c "import fhirhouse"` | {fixed["import_s"]:.2f} | {n} |',
            f"| `fhirhouse --help` (CLI start-up) | {fixed['cli_help_s']:.2f} | {n} |",
            f"| `snakemake -n` on a built {fixed['corpus']} root | {fixed['dry_s']:.2f} | "
            f"{fixed['dry_n']} |",
            "",
        ]
    if failure:
        lines += [
            "## FAILED",
            "",
            f"The run stopped at {failure[0]}: {failure[1]}. It and the corpora after it "
            "were not measured; see the logs in --work/logs.",
            "",
        ]
    lines += ["## Targets", "", *targets(sums, failure[0] if failure else None), ""]
    return "\n".join(lines)


def fixed_costs(res: dict, runner: Runner, runs: int, work: Path) -> dict[str, Any]:
    """Median per-job wall/CPU/RSS per job kind over every fresh build of ``res``, plus the
    interpreter, import and Snakemake start-up times."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for build in res["builds"]:
        for row in build:
            for key in ("wall", "cpu", "rss"):
                per[row["kind"]][key].append(row[key])
    kinds = {
        k: {
            "jobs": len(v["wall"]) / len(res["builds"]),
            **{key: median(v[key]) for key in ("wall", "cpu", "rss")},
        }
        for k, v in sorted(per.items(), key=lambda kv: -median(kv[1]["wall"]))
    }
    n = max(runs, 3)
    py = [runner.timed([sys.executable, "-c", "pass"], work, "python").wall for _ in range(n)]
    imp = [
        runner.timed([sys.executable, "-c", "import fhirhouse"], work, "import").wall
        for _ in range(n)
    ]
    cli = [runner.timed(runner.fhirhouse("--help"), work, "cli-help").wall for _ in range(n)]
    return {
        "corpus": res["corpus"],
        "builds": len(res["builds"]),
        "kinds": kinds,
        "python_s": median(py),
        "runs": n,
        "import_s": median(imp),
        "cli_help_s": median(cli),
        "dry_s": med(res, "dry"),
        "dry_n": len(res["dry"]),
    }


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", nargs="+", default=["F33", "R396", "S1278"])
    ap.add_argument("--runs", type=int, default=3, help="runs for anything under a minute")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repo", type=Path, default=HERE, help="the checkout to benchmark")
    ap.add_argument("--work", type=Path, default=Path("/tmp/fhirhouse-speed"))
    ap.add_argument(
        "--fixtures", type=Path, default=HERE.parent / "shared" / "fixtures" / "synthea"
    )
    ap.add_argument("--out", type=Path, default=HERE / "docs" / "BENCHMARKS.md")
    ap.add_argument("--keep", action="store_true", help="keep the roots and working sources")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    for name in args.corpora:
        if not re.fullmatch(r"F33|R\d+|S\d+", name):
            ap.error(f"unknown corpus {name!r}: use F33, R<n> (e.g. R396) or S<n> (e.g. S60)")
    if not GNU_TIME.exists():
        raise SystemExit("needs GNU time at /usr/bin/time (Debian package `time`)")
    repo, work = args.repo.resolve(), args.work.resolve()
    if work.is_relative_to(repo) or work.is_relative_to(HERE):
        raise SystemExit("--work must be outside the repository (corpora hold real bundles)")
    work.mkdir(parents=True, exist_ok=True)
    runner = Runner(repo, args.cores, work / "logs")
    shutil.rmtree(runner.logs, ignore_errors=True)
    argv_text = shlex.join(sys.argv[1:] if argv is None else argv)
    header = {
        "machine": machine_line(),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "repo": repo_line(repo),
        "snakemake": "?",
        "command": f"python bench/speed.py {argv_text}".strip(),
    }
    results: dict[str, dict] = {}
    fixed: dict[str, Any] = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    name = "(setup)"
    try:
        runner.check_package()
        version = runner.timed([str(BIN / "snakemake"), "--version"], work, "version")
        header["snakemake"] = version.output.strip().splitlines()[-1]
        for name in dict.fromkeys(args.corpora):
            corpus = make_corpus(name, work, args.fixtures, runner)
            results[name] = bench_corpus(corpus, runner, work, args.runs, args.keep)
            if not fixed or name == "F33":
                fixed = fixed_costs(results[name], runner, args.runs, work)
            (work / "speed-results.json").write_text(json.dumps(results, indent=1))
            args.out.write_text(report(results, fixed, header, args.cores))
    except BenchError as exc:
        # the report keeps the corpora done so far and says which one failed, and how
        failure = (name, str(exc).splitlines()[0])
        args.out.write_text(report(results, fixed, header, args.cores, failure))
        log(f"bench/speed.py: FAILED\n{exc}\n(logs of every command: {runner.logs})")
        return 1
    print(args.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
