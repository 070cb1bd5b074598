"""Records -> typed Arrow tables: coercions, dedup, schemas."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from fhirhouse import SILVER_TABLES
from fhirhouse.silver.build import (
    build_table,
    dedup_last,
    parse_date,
    parse_timestamp,
    to_float,
    to_int32,
)
from fhirhouse.silver.registry import REGISTRY, spec

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def test_timestamps():
    assert parse_timestamp("2021-03-15T09:00:00-04:00") == dt.datetime(
        2021, 3, 15, 13, 0, tzinfo=dt.UTC
    )
    assert parse_timestamp("2021-03-15T09:00:00") == dt.datetime(2021, 3, 15, 9, tzinfo=dt.UTC)
    assert parse_timestamp("2021-03-15") == dt.datetime(2021, 3, 15, tzinfo=dt.UTC)
    assert parse_timestamp("March 5, 2020 10:00") == dt.datetime(2020, 3, 5, 10, tzinfo=dt.UTC)
    assert parse_timestamp("2019") == dt.datetime(2019, 1, 1, tzinfo=dt.UTC)  # deterministic
    for bad in ("", None, "garbage", "2021-13-45"):
        assert parse_timestamp(bad) is None


def test_dates():
    assert parse_date("1980-07-15") == dt.date(1980, 7, 15)
    assert parse_date("1980-07-15T23:30:00-04:00") == dt.date(1980, 7, 15)
    assert parse_date("") is None and parse_date(None) is None and parse_date("nope") is None


def test_numbers():
    assert to_int32("7") == 7 and to_int32("7.5") is None and to_int32(72.0) == 72
    assert to_int32(2**40) is None and to_int32("x") is None
    assert to_float("3.5") == 3.5 and to_float("x") is None and to_float(None) is None


def test_builder_coerces_by_declared_type():
    recs = [
        {
            "study_id": 123,
            "series_count": "7",
            "instance_count": "7.5",
            "slice_thickness_mm": "3.5",
            "dicom_extracted": 1,
            "study_date": "1994-01-15",
            "source_file": "f.json",
        }
    ]
    t = build_table("imaging_study", recs, ingest_timestamp=NOW, cohort="A")
    row = t.to_pylist()[0]
    assert row["study_id"] == "123" and row["series_count"] == 7
    assert row["instance_count"] is None and row["slice_thickness_mm"] == 3.5
    assert row["dicom_extracted"] is True and row["study_date"] == dt.date(1994, 1, 15)
    assert row["modality"] is None  # missing key -> null
    assert row["ingest_timestamp"] == NOW and row["cohort"] == "A"


def test_dedup_keeps_last_and_keyless_collapse():
    recs = [{"k": "a", "v": 1}, {"k": "b", "v": 2}, {"k": "a", "v": 3}, {"v": 4}, {"k": None}]
    out = dedup_last(recs, "k")
    assert [(r.get("k"), r.get("v")) for r in out] == [("a", 3), ("b", 2), (None, None)]


@pytest.mark.parametrize("name", SILVER_TABLES)
def test_empty_and_exact_schema(name):
    t = build_table(name, [], ingest_timestamp=NOW, cohort="A")
    assert t.num_rows == 0 and t.schema == spec(name).schema
    names = t.schema.names
    assert names[-4:] == ["source_file", "source_entry", "ingest_timestamp", "cohort"]
    assert names[0] == spec(name).key


def test_genomic_data_limitation_backfilled():
    t = build_table(
        "genomic_report",
        [{"report_id": "g", "data_limitation": None}],
        ingest_timestamp=NOW,
        cohort="A",
    )
    assert t.column("data_limitation").null_count == 0


def test_registry_is_complete():
    assert tuple(REGISTRY) == SILVER_TABLES
    ts = pa.timestamp("us", tz="UTC")
    for s in REGISTRY.values():
        assert s.schema.field("ingest_timestamp").type == ts
    with pytest.raises(KeyError, match="unknown Silver table"):
        spec("nope")
