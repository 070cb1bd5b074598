"""DICOM header extraction for ``imaging_study``. Pure: bytes in, dict out.

Pixels are never read (``stop_before_pixels=True``). The modality stays FHIR's.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

PLACEHOLDERS = frozenset({"", "unknown", "none", "anonymous", "anonymized"})

DICOM_FIELDS: tuple[str, ...] = (
    "study_description",
    "series_description",
    "study_date",
    "manufacturer",
    "magnetic_field_strength",
    "slice_thickness_mm",
    "rows",
    "columns",
)


class DicomHeaderError(ValueError):
    """The bytes are not a readable DICOM file."""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return None if s.lower() in PLACEHOLDERS else s


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _iso_date(value: Any) -> str | None:
    s = _text(value)
    if s is None or len(s) != 8 or not s.isdigit():
        return None
    return f"{s[0:4]}-{s[4:6]}-{s[6:8]}"


def read_headers(data: bytes) -> dict[str, Any]:
    """Read the header fields the imaging table uses from DICOM bytes.

    Raises :class:`DicomHeaderError` for anything pydicom cannot read.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, AttributeError) as exc:
        raise DicomHeaderError(type(exc).__name__) from None
    try:
        return {
            "study_description": _text(ds.get("StudyDescription")),
            "series_description": _text(ds.get("SeriesDescription")),
            "study_date": _iso_date(ds.get("StudyDate")),
            "manufacturer": _text(ds.get("Manufacturer")),
            "magnetic_field_strength": _number(ds.get("MagneticFieldStrength")),
            "slice_thickness_mm": _number(ds.get("SliceThickness")),
            "rows": ds.get("Rows"),
            "columns": ds.get("Columns"),
        }
    except Exception as exc:  # a header that parses lazily and then fails
        raise DicomHeaderError(type(exc).__name__) from None


def uid_from_filename(name: str) -> str | None:
    """StudyInstanceUID from a Coherent DICOM file name.

    Names look like ``{Given}{n}_{Family}{n}_{patientUUID}{StudyInstanceUID}.dcm``: the UID is
    the text after the 36-character UUID in the last ``_``-separated part, and starts ``1.``.
    """
    stem = name[:-4] if name.lower().endswith(".dcm") else name
    last = stem.rsplit("_", 1)[-1]
    uid = last[36:]
    return uid if uid.startswith("1.") else None
