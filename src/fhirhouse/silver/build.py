"""Records -> typed Arrow tables. Pure.

Coercion follows the declared Arrow type: timestamps parsed (naive = UTC, offsets converted),
dates truncated, ``float()``/``int()`` with null on failure, booleans by truthiness, strings by
``str()``. Records are deduplicated by primary key keeping the last occurrence.

A column converts in one vectorized step when its values allow it: all ``str`` (or null) for
text, all ``int``/``float`` for numbers, all ``bool`` for flags, and timestamps all written
``YYYY-MM-DDThh:mm:ss[.f{1,6}](Z|+hh:mm)`` (Arrow's ISO cast; it gives the same instants as
``fromisoformat`` on that form and raises on an impossible date). Any other column goes value by
value through the coercers below, which decide every odd case, so tables and ``problems``
counts are the same either way.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from dateutil import parser as date_parser

from fhirhouse import PARTITION_COLUMN
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
    last = {_key(rec.get(key)): rec for rec in records}
    return list(last.values())


def duplicate_keys(
    records: Mapping[str, Sequence[Record]],
) -> list[tuple[str, str, Record, list[Record]]]:
    """Records of one bundle that share their table's key: ``(table, key, the record kept
    (the last, as :func:`dedup_last` keeps), the records dropped)`` for each such key."""
    out = []
    for table, recs in records.items():
        key = spec(table).key
        seen: dict[str, list[Record]] = {}
        for rec in recs:
            seen.setdefault(_key(rec.get(key)), []).append(rec)
        for k, same in seen.items():
            if len(same) > 1:
                out.append((table, k, same[-1], same[:-1]))
    return out


def _key(k: Any) -> str:
    return k if type(k) is str else (str(k) if k is not None else "")


_NONE = type(None)
_TEXT = frozenset({str, _NONE})
_NUMBERS = frozenset({int, float, _NONE})
_INTS = frozenset({int, _NONE})
_FLAGS = frozenset({bool, _NONE})
# the ISO form Arrow's cast reads exactly as fromisoformat does (years 1000-2999: no overflow)
_ISO_TS = (
    r"^[12]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)


def _vectorized(dtype: pa.DataType, values: list[Any]) -> pa.Array | None:
    """The column in one Arrow step, or ``None`` when some value needs the coercers."""
    kinds = set(map(type, values))
    try:
        if pa.types.is_string(dtype):
            return pa.array(values, type=dtype) if kinds <= _TEXT else None
        if pa.types.is_floating(dtype):
            return pa.array(values, type=dtype) if kinds <= _NUMBERS else None
        if pa.types.is_integer(dtype):
            return pa.array(values, type=dtype) if kinds <= _INTS else None
        if pa.types.is_boolean(dtype):
            return pa.array(values, type=dtype) if kinds <= _FLAGS else None
        if pa.types.is_timestamp(dtype) and dtype.tz == "UTC" and kinds <= _TEXT:
            text = pa.array(values, type=pa.string())
            matched = pc.all(pc.match_substring_regex(text, _ISO_TS)).as_py()  # None: all null
            return None if matched is False else pc.cast(text, dtype)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None  # out of range, an impossible date: value by value
    return None


def _constant(value: Any, n: int, dtype: pa.DataType) -> pa.Array:
    return pa.nulls(n, dtype).fill_null(pa.scalar(value, type=dtype)) if n else pa.array([], dtype)


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
        name, dtype = f.name, f.type  # Field attributes are calls: read them once, not per row
        if name == "ingest_timestamp":
            arrays.append(_constant(ts, len(rows), dtype))
        elif name == PARTITION_COLUMN:
            arrays.append(_constant(cohort, len(rows), dtype))
        else:
            raw = [r.get(name) for r in rows]
            fast = _vectorized(dtype, raw)
            if fast is not None:  # every value converted: nothing stored as null that was there
                arrays.append(fast)
                continue
            coerce = _coercer(dtype)
            values = [coerce(v) for v in raw]
            if problems is not None:
                for r, v, was in zip(rows, values, raw, strict=True):
                    if v is None and was is not None and was != "":
                        problems[(str(r.get("source_file", "")), name)] += 1
            arrays.append(pa.array(values, type=dtype))
    return pa.Table.from_arrays(arrays, schema=table_spec.schema)
