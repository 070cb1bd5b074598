"""The FHIR layer: bundle bytes -> records of the Silver tables (:func:`parse_bytes`). Pure."""

from fhirhouse.fhir.decode import InvalidJSONError, json_error_reason, parse_bytes
from fhirhouse.fhir.load import MAX_DEPTH, NestingTooDeepError
from fhirhouse.fhir.parser import NotABundleError, ParseIssue, ParseResult, RejectedBundleError

__all__ = [
    "MAX_DEPTH",
    "InvalidJSONError",
    "NestingTooDeepError",
    "NotABundleError",
    "ParseIssue",
    "ParseResult",
    "RejectedBundleError",
    "json_error_reason",
    "parse_bytes",
]
