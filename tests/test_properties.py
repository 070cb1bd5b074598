"""Property tests of the bundle parser over mutated real Synthea bundles (hypothesis).

Whatever is done to a bundle (a key deleted, a value replaced by any JSON of any type, an
entry duplicated, a list cut, the bytes cut or flipped), parsing a file ends in records that
build into typed Silver tables, or in quarantine entries; it never raises.

parse_bytes has two paths, the typed views (fhirhouse.fhir.fast) and the dict parser; on every
mutation both must give the same records, issues and reasons. The nesting check must agree
with a walk of the decoded document, and build_table's vectorized columns with value-by-value
coercion (tables and problem counts).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import FIXTURES, require_shared
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fhirhouse import SILVER_TABLES
from fhirhouse.fhir import fast, json_error_reason, parse_bytes
from fhirhouse.fhir.load import load_bundle, nesting_exceeds
from fhirhouse.fhir.parser import RejectedBundleError, parse_bundle
from fhirhouse.jobs.parse import parse_batch
from fhirhouse.silver.build import (
    build_table,
    dedup_last,
    parse_date,
    parse_timestamp,
    to_bool,
    to_float,
    to_int32,
    to_str,
)
from fhirhouse.silver.registry import spec

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every CI run; widen locally with --hypothesis-seed
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "urn:uuid:", "Patient/", "2021-13-45", "1e309", "\x00", "é"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def _small_bundles() -> list[bytes]:
    require_shared()
    files = sorted(FIXTURES.glob("*.json"), key=lambda p: p.stat().st_size)[:3]
    return [p.read_bytes() for p in files]


@pytest.fixture(scope="module")
def bundles() -> list[bytes]:
    return _small_bundles()


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def _walk(data: st.DataObject, node: Any) -> tuple[Any, Any]:
    """A random (container, key) inside ``node``; resources and their fields are favoured."""
    parent, key = None, None
    while isinstance(node, dict | list) and node:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = data.draw(st.sampled_from(keys))
        parent, key, node = node, k, node[k]
        if not data.draw(st.booleans()):
            break
    return parent, key


def mutate(data: st.DataObject, bundle: dict[str, Any]) -> dict[str, Any]:
    for _ in range(data.draw(st.integers(1, 6))):
        entries = bundle.get("entry")
        start: Any = bundle
        if isinstance(entries, list) and entries and data.draw(st.booleans()):
            start = data.draw(st.sampled_from(entries))  # most mutations inside one entry
        parent, key = _walk(data, start)
        if parent is None:
            continue
        op = data.draw(st.sampled_from(["delete", "replace", "retype", "duplicate", "cut"]))
        value = parent[key]
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = data.draw(JSON)
        elif op == "retype":  # numbers as strings and strings as numbers
            if isinstance(value, str):
                parent[key] = len(value)
            elif isinstance(value, int | float):
                parent[key] = str(value)
            else:
                parent[key] = [value]
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(orjson.loads(orjson.dumps(value)))
        elif op == "cut" and isinstance(value, list):
            parent[key] = value[: data.draw(st.integers(0, max(len(value) - 1, 0)))]
    return bundle


def _check_builds(records: dict[str, list[dict[str, Any]]]) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    for table in SILVER_TABLES:
        recs = [{**r, "source_file": "x.json"} for r in records[table]]
        built = build_table(table, recs, ingest_timestamp=now, cohort="A")
        assert built.num_rows <= len(recs)


@SETTINGS
@given(data=st.data())
def test_mutated_bundles_parse_or_are_rejected(bundles, data):
    raw = bundles[data.draw(st.integers(0, len(bundles) - 1), label="bundle")]
    bundle = mutate(data, orjson.loads(raw))
    try:
        parsed = parse_bundle(bundle)
    except RejectedBundleError as exc:
        assert str(exc)  # a reason for the quarantine list
        return
    assert all(i.reason for i in parsed.issues)
    assert len(parsed.records["patient"]) == 1
    _check_builds(parsed.records)


@SETTINGS
@given(data=st.data())
def test_mutated_files_end_in_records_or_quarantine(bundles, scratch, data):
    raw = bundles[data.draw(st.integers(0, len(bundles) - 1), label="bundle")]
    op = data.draw(st.sampled_from(["mutate", "truncate", "flip", "splice"]))
    if op == "mutate":
        content = json.dumps(mutate(data, orjson.loads(raw))).encode()  # big ints too
    elif op == "truncate":
        content = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif op == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        content = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1 :]
    else:
        at = data.draw(st.integers(0, len(raw)))
        content = raw[:at] + data.draw(st.binary(max_size=20)) + raw[at:]
    path = scratch / "bundle.json"
    path.write_bytes(content)
    out = parse_batch("A", [str(path)], str(scratch / "dicom"), dt.datetime.now(dt.UTC))
    rejected = [q for q in out.quarantine if q["kind"] == "file"]
    assert len(rejected) <= 1
    if rejected:
        assert rejected[0]["reason"] and all(t.num_rows == 0 for t in out.tables.values())
    else:
        assert out.tables["patient"].num_rows == 1
    for table in SILVER_TABLES:
        assert out.tables[table].schema == spec(table).schema


def _outcome(loader: Any, content: bytes) -> Any:
    try:
        parsed = parse_bundle(loader(content))
    except (orjson.JSONDecodeError, RejectedBundleError) as exc:
        return type(exc).__name__
    return parsed.records, [(i.resource_type, i.reason) for i in parsed.issues]


@SETTINGS
@given(data=st.data())
def test_selective_decoding_parses_exactly_like_a_full_decode(bundles, data):
    """load_bundle skips resources no table reads; the parse must not be able to tell."""
    raw = bundles[data.draw(st.integers(0, len(bundles) - 1), label="bundle")]
    content = json.dumps(mutate(data, orjson.loads(raw))).encode()
    full, selective = _outcome(orjson.loads, content), _outcome(load_bundle, content)
    if full == "JSONDecodeError":  # e.g. an integer beyond 64 bits in a skipped resource
        return
    assert selective == full


# ----------------------------------------------------------- parse_bytes: fast path = dict path


def _dict_path(content: bytes) -> Any:
    """The dict path's outcome, file-level reasons worded as parse_bytes words them."""
    try:
        parsed = parse_bundle(load_bundle(content))
    except orjson.JSONDecodeError as exc:
        return ("InvalidJSONError", json_error_reason(content, exc))
    except RejectedBundleError as exc:
        return (type(exc).__name__, str(exc))
    return parsed.records, [(i.resource_type, i.reason) for i in parsed.issues]


def _parse_bytes(content: bytes) -> Any:
    try:
        parsed = parse_bytes(content)
    except RejectedBundleError as exc:
        return (type(exc).__name__, str(exc))
    return parsed.records, [(i.resource_type, i.reason) for i in parsed.issues]


def _fast_path(content: bytes) -> Any:
    try:
        parsed = fast.parse(content)
    except fast.NotFast:
        return None
    except RejectedBundleError as exc:
        return (type(exc).__name__, str(exc))
    return parsed.records, [(i.resource_type, i.reason) for i in parsed.issues]


@SETTINGS
@given(data=st.data())
def test_fast_path_parses_exactly_like_the_dict_path(bundles, data):
    """parse_bytes' typed views and the dict parser: the same records, issues and reasons."""
    raw = bundles[data.draw(st.integers(0, len(bundles) - 1), label="bundle")]
    content = json.dumps(mutate(data, orjson.loads(raw))).encode()
    expected = _dict_path(content)
    fast_outcome = _fast_path(content)
    event("fast path" if fast_outcome is not None else "dict path")
    if fast_outcome is not None:
        assert fast_outcome == expected
    assert _parse_bytes(content) == expected


@SETTINGS
@given(data=st.data())
def test_damaged_bytes_parse_exactly_like_the_dict_path(bundles, data):
    raw = bundles[data.draw(st.integers(0, len(bundles) - 1), label="bundle")]
    op = data.draw(st.sampled_from(["truncate", "flip", "splice", "duplicate-key"]))
    if op == "truncate":
        content = raw[: data.draw(st.integers(0, len(raw) - 1))]
    elif op == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        content = raw[:at] + bytes([raw[at] ^ data.draw(st.integers(1, 255))]) + raw[at + 1 :]
    elif op == "splice":
        at = data.draw(st.integers(0, len(raw)))
        content = raw[:at] + data.draw(st.binary(max_size=20)) + raw[at:]
    else:  # a key given twice: JSON keeps the last
        key = data.draw(st.sampled_from([b'"id": ', b'"resourceType": ', b'"value": ']))
        value = data.draw(st.sampled_from([b'"x", ', b"null, ", b"1e400, ", b'"Claim", ', b"[], "]))
        content = raw.replace(key, key + value + key, data.draw(st.integers(1, 50)))
    expected = _dict_path(content)
    fast_outcome = _fast_path(content)
    event("fast path" if fast_outcome is not None else "dict path")
    if fast_outcome is not None:
        assert fast_outcome == expected
    assert _parse_bytes(content) == expected


# ------------------------------------------------------------------ nesting: against a walk


def _depth(node: Any) -> int:
    if isinstance(node, dict):
        return 1 + max(map(_depth, node.values()), default=0)
    if isinstance(node, list):
        return 1 + max(map(_depth, node), default=0)
    return 0


TRICKY = st.text(alphabet='[]{}"\\:,é\n\t a', max_size=12)
NESTED = st.recursive(
    st.none() | st.integers() | TRICKY,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(doc=NESTED, indent=st.sampled_from([None, 1]), ascii_only=st.booleans())
def test_nesting_check_counts_only_brackets_outside_strings(doc, indent, ascii_only):
    text = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    depth = _depth(doc)
    assert not nesting_exceeds(text, depth)
    assert nesting_exceeds(text, depth - 1) == (depth > 0)


# ------------------------------------------------------------- build_table: vectorized = per value


def _per_value(name: str, records: list[dict[str, Any]], now: Any) -> tuple[Any, Counter]:
    """build_table as it was: every value through the coercer of its column's type."""
    import pyarrow as pa

    table_spec = spec(name)
    rows = dedup_last(records, table_spec.key)
    problems: Counter = Counter()
    arrays = []
    for f in table_spec.schema:
        if f.name in ("ingest_timestamp", "cohort"):
            value = parse_timestamp(now) if f.name == "ingest_timestamp" else "A"
            arrays.append(pa.array([value] * len(rows), type=f.type))
            continue
        t = f.type
        coerce = (
            parse_timestamp
            if pa.types.is_timestamp(t)
            else parse_date
            if pa.types.is_date(t)
            else to_float
            if pa.types.is_floating(t)
            else to_int32
            if pa.types.is_integer(t)
            else to_bool
            if pa.types.is_boolean(t)
            else to_str
        )
        values = [coerce(r.get(f.name)) for r in rows]
        for r, v in zip(rows, values, strict=True):
            if v is None and r.get(f.name) not in (None, ""):
                problems[(str(r.get("source_file", "")), f.name)] += 1
        arrays.append(pa.array(values, type=t))
    return pa.Table.from_arrays(arrays, schema=table_spec.schema), problems


TIMESTAMPS = st.datetimes(
    min_value=dt.datetime(1000, 1, 2), max_value=dt.datetime(2999, 12, 30), timezones=st.timezones()
).map(lambda d: d.isoformat()) | st.sampled_from(
    ["2021-02-30T00:00:00+00:00", "2019-01-22T13:44:35", "2019", "", "2019-01-22T24:00:00Z"]
)
KINDS = {
    "text": st.text(max_size=5),
    "int": st.integers(-(2**40), 2**40) | st.sampled_from([2**31, -(2**31) - 1, 2**70, 10**400]),
    "float": st.floats() | st.integers(-(2**60), 2**60),
    "bool": st.booleans(),
    "timestamp": TIMESTAMPS,
    "anything": JSON | TIMESTAMPS | st.binary(max_size=3),
}


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data())
def test_build_table_gives_what_value_by_value_coercion_gives(data):
    table = data.draw(st.sampled_from(SILVER_TABLES), label="table")
    columns = spec(table).data_columns
    kind = {c: data.draw(st.sampled_from(sorted(KINDS)), label=c) for c in columns}
    n = data.draw(st.integers(0, 6))
    records = []
    for _ in range(n):
        rec = {c: data.draw(st.none() | KINDS[kind[c]]) for c in columns}
        if data.draw(st.booleans()):
            rec.pop(data.draw(st.sampled_from(columns)))
        rec["source_file"] = data.draw(st.sampled_from(["a.json", "b.json"]))
        records.append(rec)
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    problems: Counter = Counter()
    built = build_table(table, records, ingest_timestamp=now, cohort="A", problems=problems)
    expected, expected_problems = _per_value(table, [dict(r) for r in records], now)
    assert built.schema == expected.schema
    assert repr(built.to_pylist()) == repr(expected.to_pylist())  # NaN-aware
    assert problems == expected_problems


def mutate_in_shape(data: st.DataObject, bundle: dict[str, Any]) -> dict[str, Any]:
    """Mutations that mostly keep each resource the shape of its view: keys deleted (not the
    type), lists cut or items duplicated, strings swapped for strings (ids and references of the
    bundle among them), numbers for numbers, values set to null."""
    strings = st.sampled_from(["", " ", "urn:uuid:", "x", "2021-13-45", "Patient/x"]) | st.text(
        max_size=8
    )
    ids = [e["resource"].get("id", "") for e in bundle["entry"] if isinstance(e, dict)]
    for _ in range(data.draw(st.integers(1, 8))):
        parent, key = _walk(data, data.draw(st.sampled_from(bundle["entry"])))
        if parent is None or key == "resourceType":
            continue
        value = parent[key]
        op = data.draw(st.sampled_from(["delete", "null", "swap", "cut", "duplicate"]))
        if op == "delete" and isinstance(parent, dict):
            del parent[key]
        elif op == "null":
            parent[key] = None
        elif op == "swap" and isinstance(value, str):
            parent[key] = data.draw(strings | st.sampled_from(ids).map(lambda i: f"urn:uuid:{i}"))
        elif op == "swap" and isinstance(value, int | float) and not isinstance(value, bool):
            parent[key] = data.draw(st.integers(-(2**70), 2**70) | st.floats(allow_nan=False))
        elif op == "cut" and isinstance(value, list):
            parent[key] = value[: data.draw(st.integers(0, max(len(value) - 1, 0)))]
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(orjson.loads(orjson.dumps(value)))
    return bundle


@settings(max_examples=300, deadline=None, derandomize=True)
@given(data=st.data())
def test_fast_path_on_in_shape_mutations(bundles, data):
    raw = bundles[data.draw(st.integers(0, len(bundles) - 1), label="bundle")]
    content = json.dumps(mutate_in_shape(data, orjson.loads(raw))).encode()
    expected = _dict_path(content)
    fast_outcome = _fast_path(content)
    event("fast path" if fast_outcome is not None else "dict path")
    if fast_outcome is not None:
        assert fast_outcome == expected
    assert _parse_bytes(content) == expected
