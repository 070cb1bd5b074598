"""Bundle bytes -> :class:`ParseResult`: the one entry point of the FHIR layer. Pure.

:func:`parse_bytes` takes the bytes of one file and returns the records of the ten Silver tables
and the issues of the resources it dropped, or raises :class:`RejectedBundleError` with the
reason the whole file is quarantined for (identifier-free)::

    InvalidJSONError      "empty file", "not valid JSON (<what> at line L column C)"
    NestingTooDeepError   "JSON nested deeper than 128 levels"
    NotABundleError       "top-level JSON is list, not an object", "resourceType is missing", ...
    RejectedBundleError   "Bundle has no Patient resource", ...

Most bundles go the fast path (:mod:`fhirhouse.fhir.fast`: typed msgspec views, no dicts);
any bundle the views do not fit goes the dict path (``load_bundle`` then ``parse_bundle``),
which decides every odd case; both give the same records and issues.
"""

from __future__ import annotations

import orjson

from fhirhouse.fhir import fast
from fhirhouse.fhir.load import NestingTooDeepError, is_depth_error, load_bundle
from fhirhouse.fhir.parser import DicomResolver, ParseResult, RejectedBundleError, parse_bundle


class InvalidJSONError(RejectedBundleError):
    """The bytes are not a JSON document; the message says where, without quoting them."""


def json_error_reason(data: bytes, exc: orjson.JSONDecodeError) -> str:
    """The quarantine reason for bytes orjson cannot decode: where the JSON breaks."""
    if not data.strip():
        return "empty file"
    what = str(exc).split(":", 1)[0]
    where = f"line {exc.lineno} column {exc.colno}" if exc.lineno else f"byte {exc.pos}"
    return f"not valid JSON ({what} at {where})"


def parse_bytes(data: bytes, dicom_resolver: DicomResolver | None = None) -> ParseResult:
    """Parse the bytes of one bundle file into records for all ten tables.

    Raises :class:`InvalidJSONError` for bytes that are not JSON, :class:`NestingTooDeepError`
    for JSON nested deeper than ``MAX_DEPTH`` levels, ``NotABundleError`` for JSON that is not
    a Bundle object, and :class:`RejectedBundleError` for a bundle that cannot be used as a
    whole (see ``parse_bundle``); all are ``RejectedBundleError``. Each record carries
    ``source_entry``, the index in ``Bundle.entry`` of the resource it came from.
    """
    try:
        try:
            return fast.parse(data, dicom_resolver)
        except fast.NotFast:
            return parse_bundle(load_bundle(data), dicom_resolver)
    except orjson.JSONDecodeError as exc:
        if is_depth_error(exc):
            raise NestingTooDeepError() from None
        raise InvalidJSONError(json_error_reason(data, exc)) from None
    except RecursionError:
        raise NestingTooDeepError() from None
