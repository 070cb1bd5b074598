"""Parse one very large, claims-heavy bundle: full decode (orjson) against selective decode
(fhirhouse.fhir.load.load_bundle, the dict path) and parse_bytes (what the parse job uses:
typed views, claims skipped, plus the nesting check).

    .venv/bin/python bench/big_bundle.py [--mb 200] [--runs 3]

The bundle is one patient with 10 encounters (each with a vital sign and a note) plus
ExplanationOfBenefit resources up to --mb megabytes: most bytes of a long Synthea history are
claims, which no Silver table reads. Each run parses it in a fresh process (so peak RSS is
that run's own) and reports wall seconds and peak RSS; the figures are medians over --runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

CHILD = """
import json, resource, sys, time
from pathlib import Path
import orjson
from fhirhouse.fhir import parse_bytes
from fhirhouse.fhir.load import load_bundle
from fhirhouse.fhir.parser import parse_bundle
loader = {"full": orjson.loads, "selective": load_bundle, "parse_bytes": None}[sys.argv[2]]
data = Path(sys.argv[1]).read_bytes()
t = time.perf_counter()
out = parse_bytes(data) if loader is None else parse_bundle(loader(data))
seconds = time.perf_counter() - t
rows = sum(len(v) for v in out.records.values())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rss_mb": rss, "rows": rows}))
"""


def make(path: Path, mb: int) -> int:
    from conftest import make_claims_bundle

    path.write_text(json.dumps(make_claims_bundle("p-big", mb)))
    return path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.json"
        size = make(path, args.mb)
        print(f"bundle: {size / 1e6:.0f} MB")
        print("| Decoder | Parse s (median) | Peak RSS MB (median) | Rows |")
        print("|---|---:|---:|---:|")
        for mode in ("full", "selective", "parse_bytes"):
            runs = [
                json.loads(
                    subprocess.run(
                        [sys.executable, "-c", CHILD, str(path), mode],
                        check=True,
                        capture_output=True,
                        text=True,
                    ).stdout
                )
                for _ in range(args.runs)
            ]
            secs = statistics.median(r["seconds"] for r in runs)
            rss = statistics.median(r["rss_mb"] for r in runs)
            print(f"| {mode} | {secs:.2f} | {rss:.0f} | {runs[0]['rows']} |")


if __name__ == "__main__":
    main()
