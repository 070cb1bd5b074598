"""Content digests of the files fhirhouse lands and parses: BLAKE3, written ``b3:<hex>``.

BLAKE3 hashes several GB/s per core (about twice SHA-256 with CPU support), so landing and
parsing hash each byte once at close to copy speed. The tag keeps digests comparable only
with digests of the same kind: one written by an older fhirhouse (plain SHA-256 hex) is
never taken for equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import blake3

PREFIX = "b3:"


def of_bytes(data: bytes | memoryview) -> str:
    return PREFIX + blake3.blake3(data).hexdigest()


def of_file(path: Any) -> str:
    """The digest of a local file (memory-mapped) or of an object-store key (streamed)."""
    if isinstance(path, Path | str):
        return PREFIX + blake3.blake3().update_mmap(str(path)).hexdigest()
    h = blake3.blake3()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return PREFIX + h.hexdigest()


def source_digest(*packages: str) -> str:
    """A digest of the Python source of ``packages`` (subpackages of fhirhouse, e.g.
    ``"fhir"``): what a job's output depends on besides its input. Jobs compare it with the
    one their state was written with, and the Snakefile passes it as a rule parameter, so a
    code change reruns exactly the jobs it affects."""
    base = Path(__file__).resolve().parent
    h = blake3.blake3()
    for package in packages:
        for src in sorted((base / package).glob("*.py")):
            h.update(f"{package}/{src.name}\0".encode())
            h.update(src.read_bytes())
    return h.hexdigest()[:16]


#: What the Silver rows of a bundle depend on: the FHIR parser and the Silver table builder.
PARSER_PACKAGES = ("fhir", "silver")
#: What the Gold rows of a cohort depend on: the Gold transform.
GOLD_PACKAGES = ("gold",)
