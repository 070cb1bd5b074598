"""Bundle bytes -> the ten Silver Arrow tables, per core, against ``orjson.loads`` of the files.

    PYTHONPATH=src .venv/bin/python bench/parse_speed.py [FOLDER ...] [--runs N] [--wall]

Without a folder it runs on the shared Synthea fixtures. For each folder, all ``*.json`` files
are read into memory once; then, alternating, each run times

* ``orjson.loads`` of every file (the result dropped right away), and
* parse+build: ``fhirhouse.fhir.parse_bytes`` of every file (``source_file`` added to each
  record), then ``build_table`` of the ten tables over all the folder's records with a
  ``problems`` counter (as the Silver job's ``fhirhouse.jobs.parse.parse_batch`` does).

Times are CPU seconds of the process (``time.process_time``) with Arrow held to one thread, so
they are per core and hold up on a busy machine; --wall times wall-clock seconds instead. It
prints files, MB, orjson.loads MB/s, parse+build MB/s (with the parse and build seconds), and
the ratio orjson time / parse+build time (>= 1 means parse+build is faster), each the median
over --runs (default 7).

Against a checkout from before parse_bytes (``git archive 57ab6a0 src | tar -x -C /tmp/old``,
then ``PYTHONPATH=/tmp/old/src``) the bench times load_bundle + parse_bundle instead.

Numbers, 2-core VM, medians of 9 runs (3 on the synthetic corpus), two invocations each;
ratio >= 0.7 is the goal. Quiet machine (load < 1):

    corpus                               MB  orjson MB/s  parse+build MB/s  parse s  build s  ratio
    33 shared Synthea bundles, CPU s
      before (load_bundle+parse_bundle)  24.7   312-318   139-147   0.13   0.044  0.45-0.46
      after  (parse_bytes)               24.7   312-321   234-235   0.089  0.017  0.73-0.75
    same, wall-clock (--wall)
      before                             24.7   298-310   139-141   0.13   0.044  0.45-0.47
      after                              24.7   300-301   225-229   0.091  0.018  0.75-0.76
    synth --patients 100 (claims-heavy), CPU s
      before                            346.8       101       109   2.35   0.88   1.08
      after                             346.8       100       181   1.60   0.32   1.81
    same, wall-clock
      before                            346.8       100       112   2.27   0.83   1.12
      after                             346.8        99       181   1.49   0.33   1.83

With another engineer's jobs running (load 3-5) orjson loses more than the parse does: the
shared bundles measured 0.76-0.83 after (0.45-0.53 before).

Where the time goes now (shared bundles, as a share of orjson.loads CPU time): the one msgspec
decode of the bundle into typed views ~0.35, the nesting check ~0.27, the Python that builds
the records ~0.45 (a fifth of it the notes: base64, SOAP headers, word counts), build_table
~0.2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from fhirhouse import SILVER_TABLES
from fhirhouse.silver.build import build_table

try:
    from fhirhouse.fhir import parse_bytes
except ImportError:  # a checkout from before parse_bytes: the loader and the dict parser
    from fhirhouse.fhir.load import load_bundle
    from fhirhouse.fhir.parser import parse_bundle

    def parse_bytes(data: bytes) -> Any:  # type: ignore[misc]
        return parse_bundle(load_bundle(data))


REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO.parent / "shared" / "fixtures" / "synthea"


clock = time.process_time


def _orjson(files: list[tuple[str, bytes]]) -> float:
    started = clock()
    for _, data in files:
        orjson.loads(data)
    return clock() - started


def _parse_build(files: list[tuple[str, bytes]]) -> tuple[float, float]:
    started = clock()
    records: dict[str, list[dict]] = {t: [] for t in SILVER_TABLES}
    for name, data in files:
        parsed = parse_bytes(data)
        for table, recs in parsed.records.items():
            for rec in recs:
                rec["source_file"] = name
            records[table].extend(recs)
    parsed_at = clock()
    now = dt.datetime.now(dt.UTC)
    for table in SILVER_TABLES:
        build_table(table, records[table], ingest_timestamp=now, cohort="A", problems=Counter())
    return parsed_at - started, clock() - parsed_at


def bench(folder: Path, runs: int) -> dict[str, float]:
    files = [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.json"))]
    if not files:
        raise SystemExit(f"no *.json in {folder}")
    mb = sum(len(d) for _, d in files) / 2**20
    loads, parse, build = [], [], []
    for _ in range(runs):
        gc.collect()
        loads.append(_orjson(files))
        gc.collect()
        p, b = _parse_build(files)
        parse.append(p)
        build.append(b)
    o = statistics.median(loads)
    pb = statistics.median(p + b for p, b in zip(parse, build, strict=True))
    return {
        "files": len(files),
        "mb": mb,
        "orjson_mbs": mb / o,
        "pb_mbs": mb / pb,
        "parse_s": statistics.median(parse),
        "build_s": statistics.median(build),
        "ratio": o / pb,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="*", type=Path, default=[DEFAULT])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--wall", action="store_true", help="wall-clock instead of CPU seconds")
    args = ap.parse_args()
    global clock
    clock = time.perf_counter if args.wall else time.process_time
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)
    print(
        f"{'folder':40s} {'files':>5s} {'MB':>7s} {'orjson MB/s':>11s} "
        f"{'parse+build MB/s':>16s} {'parse s':>8s} {'build s':>8s} {'ratio':>6s}"
    )
    for folder in args.folders:
        r = bench(folder, args.runs)
        print(
            f"{str(folder)[-40:]:40s} {r['files']:5d} {r['mb']:7.1f} {r['orjson_mbs']:11.0f} "
            f"{r['pb_mbs']:16.0f} {r['parse_s']:8.3f} {r['build_s']:8.3f} {r['ratio']:6.2f}"
        )


if __name__ == "__main__":
    main()
