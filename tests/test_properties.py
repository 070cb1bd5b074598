"""Property tests of the bundle parser over mutated real Synthea bundles (hypothesis).

Whatever is done to a bundle (a key deleted, a value replaced by any JSON of any type, an
entry duplicated, a list cut, the bytes cut or flipped), parsing a file ends in records that
build into typed Silver tables, or in quarantine entries; it never raises.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import FIXTURES, require_shared
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhirhouse import SILVER_TABLES
from fhirhouse.fhir.load import load_bundle
from fhirhouse.fhir.parser import RejectedBundleError, parse_bundle
from fhirhouse.jobs.parse import parse_batch
from fhirhouse.silver.build import build_table
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
    out = parse_batch("A", [str(path)], str(scratch), dt.datetime.now(dt.UTC))
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
