"""Bundle bytes -> the bundle object ``parse_bundle`` reads, decoding only what Silver needs.

Most of a Synthea bundle's bytes are resources no table reads (Claim, ExplanationOfBenefit,
Provenance, ...). msgspec splits the bundle into entries and keeps each resource as raw bytes
(a view of the input, no copy); only the resource types the parser reads are decoded into
Python objects, the others become ``{"resourceType": T}`` placeholders. For a 200 MB bundle of
claims this is the difference between about 2 GB of Python objects and about the file size.

Anything unusual (not an object, ``entry`` not a list, an entry that is not an object, an
oversized integer) falls back to decoding the whole document with orjson, so the parser sees
exactly what it would have seen, and bad files get the same quarantine reasons.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

# The types parse_bundle reads, including Binary (note attachments by url).
DECODED_TYPES = frozenset(
    {
        "Patient",
        "Encounter",
        "Condition",
        "Observation",
        "MedicationRequest",
        "Procedure",
        "DocumentReference",
        "DiagnosticReport",
        "ImagingStudy",
        "Binary",
    }
)


class _Peek(msgspec.Struct):
    resourceType: Any = None


class _Entry(msgspec.Struct):
    fullUrl: Any = None
    resource: msgspec.Raw = msgspec.Raw(b"")  # empty: no "resource" key


class _Shell(msgspec.Struct):
    resourceType: Any = None
    entry: list[_Entry] | None = None


_SHELL = msgspec.json.Decoder(_Shell)
_PEEK = msgspec.json.Decoder(_Peek)


def _resource(raw: msgspec.Raw) -> Any:
    try:
        rtype = _PEEK.decode(raw).resourceType
    except msgspec.DecodeError:  # not an object: decode it as it is, the parser reports it
        rtype = None
    if isinstance(rtype, str) and rtype not in DECODED_TYPES:
        return {"resourceType": rtype}
    return orjson.loads(memoryview(raw))


def load_bundle(data: bytes) -> Any:
    """Decode bundle bytes; raises ``orjson.JSONDecodeError`` for bytes that are not JSON."""
    try:
        shell = _SHELL.decode(data)
        if shell.resourceType != "Bundle" or shell.entry is None:
            return orjson.loads(data)
        entries = []
        for e in shell.entry:
            entry: dict[str, Any] = {} if e.fullUrl is None else {"fullUrl": e.fullUrl}
            if len(e.resource) and not (len(e.resource) == 4 and bytes(e.resource) == b"null"):
                entry["resource"] = _resource(e.resource)
            entries.append(entry)
        return {"resourceType": "Bundle", "entry": entries}
    except (msgspec.DecodeError, orjson.JSONDecodeError, UnicodeDecodeError):
        return orjson.loads(data)
