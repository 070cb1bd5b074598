"""Records -> typed Arrow tables (spec section 4.1). Pure.

Coercion follows the declared Arrow type: timestamps parsed (naive = UTC, offsets converted),
dates truncated, ``float()``/``int()`` with null on failure, booleans by truthiness, strings by
``str()``. Records are deduplicated by primary key keeping the last occurrence.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from dateutil import parser as date_parser

from fhirhouse.fhir.parser import DATA_LIMITATION, Record
from fhirhouse.silver.registry import TableSpec, spec

UTC = dt.UTC
# dateutil fills missing fields from `default`; a fixed default keeps partial FHIR dates
# ("2019", "2019-05") deterministic instead of borrowing today's month and day.
_DEFAULT_DT = dt.datetime(1900, 1, 1)


def parse_timestamp(value: Any) -> dt.datetime | None:
    """A UTC datetime, or ``None`` for empty or unparseable input."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value)
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = date_parser.parse(text, default=_DEFAULT_DT)
            except (ValueError, OverflowError, TypeError):
                return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def parse_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if value is None or value == "":
        return None
    text = str(value)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    try:
        return date_parser.parse(text, default=_DEFAULT_DT).date()
    except (ValueError, OverflowError, TypeError):
        return None


def to_float(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


_INT32 = (-(2**31), 2**31 - 1)


def to_int32(value: Any) -> int | None:
    if value is None:
        return None
    try:
        out = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if _INT32[0] <= out <= _INT32[1] else None


def to_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def to_str(value: Any) -> str | None:
    """``str()`` of a scalar; an object or a list where text belongs becomes null."""
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _coercer(dtype: pa.DataType) -> Callable[[Any], Any]:
    if pa.types.is_timestamp(dtype):
        return parse_timestamp
    if pa.types.is_date(dtype):
        return parse_date
    if pa.types.is_floating(dtype):
        return to_float
    if pa.types.is_integer(dtype):
        return to_int32
    if pa.types.is_boolean(dtype):
        return to_bool
    return to_str


def dedup_last(records: Sequence[Record], key: str) -> list[Record]:
    """Keep the last record per primary key; a missing key counts as ``""``."""
    last: dict[str, Record] = {}
    for rec in records:
        k = rec.get(key)
        last[str(k) if k is not None else ""] = rec
    return list(last.values())


def build_table(
    name: str | TableSpec,
    records: Sequence[Record],
    *,
    ingest_timestamp: dt.datetime,
    cohort: str,
    problems: Counter[tuple[str, str]] | None = None,
    dedup: bool = True,
) -> pa.Table:
    """Build one Silver table for one cohort with the exact registry schema.

    ``records`` carry the parser's fields plus ``source_file``. Zero records give an empty
    table with the schema. When ``problems`` is given, every value that was present but could
    not be coerced (and so is stored as null) is counted there by ``(source_file, column)``.
    ``dedup=False`` keeps every record (the caller deduplicates a whole cohort later).
    """
    table_spec = name if isinstance(name, TableSpec) else spec(name)
    rows = dedup_last(records, table_spec.key) if dedup else list(records)
    if table_spec.name == "genomic_report":
        for row in rows:
            if not row.get("data_limitation"):
                row["data_limitation"] = DATA_LIMITATION
    ts = parse_timestamp(ingest_timestamp)
    arrays = []
    for f in table_spec.schema:
        if f.name == "ingest_timestamp":
            arrays.append(pa.array([ts] * len(rows), type=f.type))
        elif f.name == "cohort":
            arrays.append(pa.array([cohort] * len(rows), type=f.type))
        else:
            coerce = _coercer(f.type)
            values = [coerce(r.get(f.name)) for r in rows]
            if problems is not None:
                for r, v in zip(rows, values, strict=True):
                    if v is None and r.get(f.name) not in (None, ""):
                        problems[(str(r.get("source_file", "")), f.name)] += 1
            arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=table_spec.schema)
