"""Superseded by bench/speed.py; kept so that the old command still works.

    .venv/bin/python bench/scale.py [--scales 100 400 1278] [--cores 2] [--work DIR]
                                    [--out docs/BENCHMARKS.md]

runs `bench/speed.py --corpora S100 S400 S1278 --runs 1` (synthetic corpora of those many
patients, single runs, as this script used to), passing --cores, --work and --out through.
See bench/speed.py for what is measured and the targets.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[100, 400, 1278])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/fhirhouse-bench"))
    ap.add_argument("--out", type=Path, default=speed.HERE / "docs" / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    corpora = [f"S{n}" for n in sorted(args.scales)]
    passed = ["--cores", str(args.cores), "--work", str(args.work), "--out", str(args.out)]
    return speed.main(["--corpora", *corpora, "--runs", "1", *passed])


if __name__ == "__main__":
    sys.exit(main())
