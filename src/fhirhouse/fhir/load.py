"""Bundle bytes -> the bundle object ``parse_bundle`` reads, decoding only what Silver needs.

Most of a Synthea bundle's bytes are resources no table reads (Claim, ExplanationOfBenefit,
Provenance, ...). msgspec splits the bundle into entries and keeps each resource as raw bytes
(a view of the input, no copy); only the resource types the parser reads are decoded into
Python objects, the others become ``{"resourceType": T}`` placeholders. For a 200 MB bundle of
claims this is the difference between about 2 GB of Python objects and about the file size.

Anything unusual (not an object, ``entry`` not a list, an entry that is not an object, an
oversized integer, a ``fullUrl`` or ``resourceType`` that is not UTF-8) falls back to decoding
the whole document with orjson, so the parser sees exactly what it would have seen, and bad
files get the same quarantine reasons.

Nesting is bounded: a document nested deeper than :data:`MAX_DEPTH` (128) levels of arrays and
objects, anywhere, also inside a resource no table reads, raises :class:`NestingTooDeepError`
("JSON nested deeper than 128 levels"), a ``RejectedBundleError``. A Synthea bundle is 11
levels deep and FHIR nests a few levels per datatype, so 128 leaves ample room for real data
while staying far below the interpreter's recursion limit (about 1000 levels, at which msgspec
raises ``RecursionError`` and orjson gives up at 1024). The check runs on every document that
is valid JSON, in one pass of C byte operations over a skeleton of the bytes (quotes and
brackets only); a document that is not valid JSON is reported as such, unless its nesting
already broke the decoder (``RecursionError`` or orjson's depth error), which is reported as
too deep. (The check needs valid JSON, so it runs after msgspec's decode, which recurses up to
the interpreter's limit first: on Python < 3.14 parse on a thread with a normal-size stack.)
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

from fhirhouse.fhir.parser import RejectedBundleError

#: The deepest nesting of arrays and objects a bundle may have (the top-level object is 1).
MAX_DEPTH = 128

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


class NestingTooDeepError(RejectedBundleError):
    """The document nests arrays and objects deeper than :data:`MAX_DEPTH` levels."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_DEPTH} levels")


_SKELETON = bytes(b for b in range(256) if b not in b'"[]{}\\')  # translate: delete the rest
_PAIRS = bytes.maketrans(b"[]{}", b"()()")
_ESCAPED = (b'"', b"\\")


def _drop_escapes(data: bytes, skeleton: bytes) -> bytes:
    """The skeleton without its escapes: each backslash, and the quote or backslash it escapes.

    The skeleton keeps every backslash of ``data`` in order; an escape's second character is
    in the skeleton (right after its backslash) only when it is a quote or a backslash.
    """
    parts = []
    start = 0
    pos = data.find(b"\\")
    while pos >= 0:
        at = skeleton.find(b"\\", start)
        parts.append(skeleton[start:at])
        start = at + (2 if data[pos + 1 : pos + 2] in _ESCAPED else 1)
        pos = data.find(b"\\", pos + 2)  # the escaped character starts nothing (\\uXXXX neither)
    parts.append(skeleton[start:])
    return b"".join(parts)


def nesting_exceeds(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether valid JSON ``data`` nests arrays and objects deeper than ``limit`` levels.

    Only meaningful for valid JSON. The skeleton keeps quotes and brackets (escapes dropped);
    removing adjacent quote pairs keeps every bracket's in-string parity, so what is left
    outside strings is the bracket structure, peeled one level per pass.
    """
    skeleton = data.translate(None, _SKELETON)
    if b"\\" in skeleton:
        skeleton = _drop_escapes(data, skeleton)
    skeleton = skeleton.replace(b'""', b"")
    if b'"' in skeleton:
        skeleton = b"".join(skeleton.split(b'"')[0::2])
    skeleton = skeleton.translate(_PAIRS)
    for _ in range(limit):
        if not skeleton:
            return False
        skeleton = skeleton.replace(b"()", b"")
    return bool(skeleton)


def check_depth(data: bytes) -> None:
    """Raise :class:`NestingTooDeepError` if valid JSON ``data`` is nested too deep."""
    if nesting_exceeds(data):
        raise NestingTooDeepError()


class _Peek(msgspec.Struct):
    resourceType: Any = None


class _Entry(msgspec.Struct):
    fullUrl: Any = None
    resource: msgspec.Raw = msgspec.Raw(b"")  # empty: no "resource" key


class _Shell(msgspec.Struct):
    resourceType: Any = None
    entry: list[_Entry] | None = None


SHELL = msgspec.json.Decoder(_Shell)
_PEEK = msgspec.json.Decoder(_Peek)


# msgspec raises UnicodeDecodeError (not DecodeError) for a string it decodes that is not UTF-8
UNDECODABLE = (msgspec.DecodeError, UnicodeDecodeError)


def resource_type(raw: msgspec.Raw) -> Any:
    """The ``resourceType`` of a raw resource (the last one wins), ``None`` if not an object."""
    try:
        return _PEEK.decode(raw).resourceType
    except UNDECODABLE:  # not an object, or not UTF-8: decode it as it is, orjson decides
        return None


def _resource(raw: msgspec.Raw) -> Any:
    rtype = resource_type(raw)
    if isinstance(rtype, str) and rtype not in DECODED_TYPES:
        return {"resourceType": rtype}
    return orjson.loads(memoryview(raw))


def is_depth_error(exc: orjson.JSONDecodeError) -> bool:
    """orjson gave up on nesting (beyond 1024 levels), not on the syntax."""
    return str(exc).startswith("depth limit exceeded")


def _full(data: bytes) -> Any:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if is_depth_error(exc):
            raise NestingTooDeepError() from None
        raise
    check_depth(data)
    return doc


def load_bundle(data: bytes) -> Any:
    """Decode bundle bytes; raises ``orjson.JSONDecodeError`` for bytes that are not JSON and
    :class:`NestingTooDeepError` for JSON nested deeper than :data:`MAX_DEPTH` levels."""
    try:
        try:
            shell = SHELL.decode(data)
        except UNDECODABLE:
            return _full(data)
        check_depth(data)
        try:
            if shell.resourceType != "Bundle" or shell.entry is None:
                return orjson.loads(data)
            entries = []
            for e in shell.entry:
                entry: dict[str, Any] = {} if e.fullUrl is None else {"fullUrl": e.fullUrl}
                raw = e.resource
                if len(raw) and not (len(raw) == 4 and bytes(raw) == b"null"):
                    entry["resource"] = _resource(raw)
                entries.append(entry)
            return {"resourceType": "Bundle", "entry": entries}
        except (*UNDECODABLE, orjson.JSONDecodeError):
            return _full(data)
    except RecursionError:
        raise NestingTooDeepError() from None
