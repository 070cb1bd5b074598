"""Replicate a folder of Synthea bundles with fresh identifiers (the bench corpus R396).

    # R396: the 33 shared bundles as 12 copies (copy indexes 0..11), 396 bundles
    python bench/replicate.py --source /work/shared/fixtures/synthea --copies 12 --out DIR

    # "the next copies", e.g. a drop of ~10% more for R396: copy 12, then copy 13, 40 bundles
    python bench/replicate.py --source /work/shared/fixtures/synthea --start 12 --copies 2 \\
        --bundles 40 --out DIR2 --verify --with DIR

    # check existing replicas only (no writing)
    python bench/replicate.py --source /work/shared/fixtures/synthea --out DIR --check-only

In copy ``k`` every UUID (any ``8-4-4-4-12`` hex string standing alone in the JSON text:
resource ids, ``urn:uuid:`` references and fullUrls, identifiers, conditional references) and
the UUID in the file name are replaced by ``uuid5(ns_k, uuid)``, with ``ns_k`` a fixed
namespace derived from ``k``. The replacement is a byte-level substitution that matches only a
complete UUID (not one embedded in a longer hex or base64url token), so references stay valid
inside a copy and ids are unique across copies; the rest of every bundle is kept byte for byte.
Copies are taken in order: copy ``start`` (every source bundle, sorted by name), then copy
``start + 1``, ..., stopping after ``--bundles`` files when given.

``--verify`` (after writing) and ``--check-only`` parse every replica and fail if a resource
id (or fullUrl) of one copy appears in another copy or in the source, or if a ``urn:uuid:``
reference has no entry with that fullUrl in its bundle. ``--with DIR`` adds the replicas of an
earlier run (the main corpus) to the check. File names and identifiers are never printed.

Write the output outside the repository: the bundles are real Synthea data.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# A whole UUID: not preceded or followed by a letter, digit or '-' (base64url and longer hex
# tokens would otherwise contribute false matches).
_EDGE_L, _EDGE_R = r"(?<![0-9A-Za-z-])", r"(?![0-9A-Za-z-])"
UUID_BYTES = re.compile((_EDGE_L + UUID_PATTERN + _EDGE_R).encode())
UUID_TEXT = re.compile(_EDGE_L + UUID_PATTERN + _EDGE_R)
# The root of every copy namespace; never change it, or replicas stop being reproducible.
BASE_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/fhirhouse/bench/replicate")
SOURCE_COPY = -1  # the label of the source bundles themselves in checks


def copy_namespace(k: int) -> uuid.UUID:
    """The fixed namespace of copy ``k``."""
    return uuid.uuid5(BASE_NAMESPACE, f"copy-{k}")


class Remapper:
    """Maps the UUIDs of one copy; the same input UUID always gives the same output."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.namespace = copy_namespace(k)
        self._cache: dict[str, str] = {}

    def new(self, old: str) -> str:
        key = old.lower()
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = str(uuid.uuid5(self.namespace, key))
        return out

    def data(self, raw: bytes) -> bytes:
        return UUID_BYTES.sub(lambda m: self.new(m.group(0).decode("ascii")).encode(), raw)

    def name(self, name: str) -> str:
        """The replica's file name: the UUID in it replaced; a name without one gets a suffix."""
        new, count = UUID_TEXT.subn(lambda m: self.new(m.group(0)), name)
        if count == 0:
            stem, dot, ext = name.rpartition(".")
            new = f"{stem}-copy{self.k}.{ext}" if dot else f"{name}-copy{self.k}"
        return new


def source_bundles(source: Path) -> list[Path]:
    """The source's ``*.json`` bundles, sorted by name (subfolders such as companions/ and
    non-JSON files are not bundles)."""
    files = sorted(p for p in source.glob("*.json") if p.is_file())
    if not files:
        raise SystemExit(f"no *.json bundles in {source}")
    return files


def plan(
    source: Path, copies: int, start: int = 0, bundles: int | None = None
) -> Iterator[tuple[int, Path]]:
    """(copy index, source file) for each replica to write, in order."""
    files = source_bundles(source)
    n = 0
    for k in range(start, start + copies):
        for path in files:
            if bundles is not None and n >= bundles:
                return
            yield k, path
            n += 1


def replicate(
    source: Path, out: Path, copies: int, start: int = 0, bundles: int | None = None
) -> dict[str, int]:
    """Write the replicas into ``out``; return counts (files, bytes, first and last copy)."""
    out.mkdir(parents=True, exist_ok=True)
    remappers: dict[int, Remapper] = {}
    files = size = 0
    last = start
    for k, path in plan(source, copies, start, bundles):
        rm = remappers.setdefault(k, Remapper(k))
        data = rm.data(path.read_bytes())
        target = out / rm.name(path.name)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        files += 1
        size += len(data)
        last = k
    return {"files": files, "bytes": size, "first_copy": start, "last_copy": last}


# A "reference" key and its string value; JSON escapes keep it from matching inside strings.
REFERENCE = re.compile(rb'"reference"\s*:\s*"(urn:uuid:[^"\\]*)"')


def bundle_problems(raw: bytes, bundle: dict[str, Any]) -> list[str]:
    """Problems inside one bundle (its bytes and parsed form): ``urn:uuid:`` references with
    no entry of that fullUrl."""
    full = {e.get("fullUrl") for e in bundle.get("entry") or []}
    dangling = sum(1 for ref in REFERENCE.findall(raw) if ref.decode() not in full)
    return [f"{dangling} urn:uuid: references without a matching fullUrl"] if dangling else []


def bundle_ids(bundle: dict[str, Any]) -> set[str]:
    """Every resource id and fullUrl of a bundle (fullUrls prefixed, so they never clash
    with ids)."""
    ids: set[str] = set()
    for e in bundle.get("entry") or []:
        rid = (e.get("resource") or {}).get("id")
        if rid:
            ids.add(f"id:{rid}")
        if e.get("fullUrl"):
            ids.add(f"url:{e['fullUrl']}")
    return ids


def copy_of(source: Path, folders: list[Path], max_copy: int) -> dict[Path, int]:
    """The copy index of every ``*.json`` file in ``folders``, found from its name."""
    names = [p.name for p in source_bundles(source)]
    index: dict[str, int] = {}
    for k in range(max_copy):
        rm = Remapper(k)
        for name in names:
            index[rm.name(name)] = k
    found: dict[Path, int] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            if path.name not in index:
                raise SystemExit(
                    f"{folder}: a file is not a replica of {source} (copy < {max_copy})"
                )
            found[path] = index[path.name]
    return found


def verify(source: Path, folders: list[Path], max_copy: int = 1000) -> list[str]:
    """Check replicas against each other and the source; return the problems (no names)."""
    problems: list[str] = []
    owner: dict[str, int] = {}
    files = [(p, SOURCE_COPY) for p in source_bundles(source)]
    files += list(copy_of(source, folders, max_copy).items())
    shared = 0
    for path, k in files:
        raw = path.read_bytes()
        bundle = orjson.loads(raw)
        if k != SOURCE_COPY:
            problems += [f"copy {k}: {p}" for p in bundle_problems(raw, bundle)]
        for rid in bundle_ids(bundle):
            if owner.setdefault(rid, k) != k:
                shared += 1
    if shared:
        problems.append(f"{shared} resource ids or fullUrls appear in more than one copy")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True, help="folder of *.json bundles")
    ap.add_argument("--out", type=Path, required=True, help="folder for the replicas")
    ap.add_argument("--copies", type=int, default=12, help="number of copies (default 12)")
    ap.add_argument("--start", type=int, default=0, help="first copy index (default 0)")
    ap.add_argument("--bundles", type=int, help="stop after this many bundles")
    ap.add_argument("--verify", action="store_true", help="check the replicas after writing")
    ap.add_argument("--check-only", action="store_true", help="check --out, write nothing")
    ap.add_argument(
        "--with",
        dest="others",
        type=Path,
        action="append",
        default=[],
        help="replicas of an earlier run to include in the check (repeatable)",
    )
    args = ap.parse_args(argv)
    if args.copies < 1 or args.start < 0 or (args.bundles is not None and args.bundles < 1):
        ap.error("--copies and --bundles must be at least 1, --start at least 0")
    if not args.check_only:
        made = replicate(args.source, args.out, args.copies, args.start, args.bundles)
        print(
            f"wrote {made['files']} bundles ({made['bytes'] / 2**20:,.1f} MiB), copies "
            f"{made['first_copy']}..{made['last_copy']}, to {args.out}"
        )
    if args.verify or args.check_only:
        max_copy = max(1000, args.start + args.copies)
        problems = verify(args.source, [args.out, *args.others], max_copy)
        for p in problems:
            print(f"verify: {p}", file=sys.stderr)
        if problems:
            return 1
        print("verify: ids unique across copies and the source; every reference resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
