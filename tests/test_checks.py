"""The check engine: the reference's rule grammar, names and strings, plus the added checks."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from conftest import empty_silver

from fhirhouse.checks.rules import SILVER_RULES
from fhirhouse.checks.validate import (
    ingest_log_table,
    merged_rules,
    validate_cohort,
    validate_gold,
    validate_table,
)
from fhirhouse.config import ConfigError, load_config
from fhirhouse.gold.encounter_summary import build_encounter_summary
from fhirhouse.store.history import INGEST_LOG_SCHEMA

TODAY = dt.date(2026, 1, 1)


def patients(n: int = 3, **cols) -> pl.DataFrame:
    base = {
        "patient_id": [f"p{i}" for i in range(n)],
        "gender": ["f"] * n,
        "birth_date": [dt.date(1980, 1, 1)] * n,
        "cohort": ["A"] * n,
    }
    base.update(cols)
    return pl.DataFrame(base)


def outcome(result, rule):
    return next(c for c in result.checks if c.rule == rule)


def test_passing_table_reports_every_rule_with_numbers():
    r = validate_table("patient", patients(), {"patient": {"min_rows": 3}}, today=TODAY)
    assert r.passed and r.failed_checks == ""
    assert [c.rule for c in r.checks] == [
        "min_rows>=3",
        "non_null:patient_id",
        "non_null:gender",
        "no_future_birth_date",
        "unique:patient_id",
        "no_cross_cohort_duplicates:patient_id",
    ]
    assert outcome(r, "non_null:gender").detail == "0 nulls / 3 rows"
    assert outcome(r, "unique:patient_id").detail == "3/3 distinct"


def test_reference_failure_strings():
    df = patients(4, patient_id=["a", "a", "b", None], gender=["f", None, "m", "m"])
    r = validate_table("patient", df, today=TODAY)
    assert not r.passed
    assert r.failed_checks == (
        "min_rows<100(=4),nulls_in:patient_id(1),nulls_in:gender(1),non_unique:patient_id(3/4)"
    )


def notes(chars: list[int], complete: list[bool]) -> pl.DataFrame:
    n = len(chars)
    return pl.DataFrame(
        {
            "note_id": [f"n{i}" for i in range(n)],
            "patient_id": ["p"] * n,
            "note_text": ["x"] * n,
            "char_count": chars,
            "has_subjective": complete,
            "has_assessment": [True] * n,
            "has_plan": [True] * n,
        }
    )


def test_note_rates():
    r = validate_cohort("soap_note", notes([50, 50, 500, 500], [True, False, False, False]), "A")
    short = outcome(r, "short_notes_pct<=20%")
    assert not short.passed and short.legacy == "short_notes_pct>0.2(=0.50)"
    assert short.detail == "50.0% short (< 100 chars), 2/4"
    sections = outcome(r, "sections_pct>=80%")
    assert not sections.passed and sections.legacy == "sections_pct<0.8(=0.25)"
    assert sections.detail == "25.0% of rows have all 3 sections"


def test_ranges_ignore_nulls_and_skip_all_null():
    ecg = pl.DataFrame(
        {"ecg_id": ["e1", "e2", "e3"], "patient_id": ["p"] * 3, "heart_rate_bpm": [400, None, 70]}
    )
    r = validate_cohort("ecg_metadata", ecg, "A")
    rng = outcome(r, "range:heart_rate_bpm∈[30,250]")
    assert not rng.passed and rng.legacy == "out_of_range:heart_rate_bpm(1 not in [30,250])"
    fine = validate_cohort("ecg_metadata", ecg.with_columns(heart_rate_bpm=pl.lit(None)), "A")
    assert not any(c.rule.startswith("range:") for c in fine.checks)


def test_future_birth_date_and_cross_cohort_duplicates():
    df = patients(
        3, birth_date=[dt.date(2030, 1, 1), None, dt.date(1990, 1, 1)], cohort=["A", "B", "B"]
    ).with_columns(patient_id=pl.Series(["p0", "p0", "p2"]))
    r = validate_table("patient", df, {"patient": {"min_rows": 0}}, today=TODAY)
    assert outcome(r, "no_future_birth_date").legacy == "future_birth_date(1)"
    dup = outcome(r, "no_cross_cohort_duplicates:patient_id")
    assert not dup.passed and dup.detail == "1 keys present in more than one cohort"


def test_referential_integrity_skips_empty_encounter_ids():
    obs = pl.DataFrame(
        {
            "observation_id": ["o1", "o2", "o3"],
            "patient_id": ["p0", "p9", "p0"],
            "encounter_id": ["e1", "", "e404"],
            "code": ["x"] * 3,
            "cohort": ["A"] * 3,
        }
    )
    r = validate_table(
        "observation",
        obs,
        patient_ids=pl.Series(["p0"]),
        encounter_ids=pl.Series(["e1"]),
    )
    pat = outcome(r, "references:patient_id->patient")
    enc = outcome(r, "references:encounter_id->encounter")
    assert pat.legacy == "dangling:patient_id(1)" and enc.legacy == "dangling:encounter_id(1)"
    assert enc.detail == "1 of 2 encounter_id values do not resolve in encounter"


def test_empty_table_skips_rate_and_unique_rules():
    r = validate_cohort("soap_note", notes([], []), "A")
    assert [c.rule for c in r.checks] == [
        "non_null:note_id",
        "non_null:patient_id",
        "non_null:note_text",
    ]


def test_overrides_replace_rules_key_by_key():
    rules = merged_rules("soap_note", {"soap_note": {"max_short_pct": 0.5}})
    assert rules["max_short_pct"] == 0.5 and rules["min_char_count"] == 100
    assert SILVER_RULES["soap_note"]["max_short_pct"] == 0.2  # the defaults are not mutated


def test_gold_checks():
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    gold = pl.from_arrow(build_encounter_summary(empty_silver(), now))
    ok = validate_gold(gold, "A", 0, lambda row: True, max_age=130)
    assert (
        ok.passed
        and outcome(ok, "rows_equal_encounters").detail == "0 Gold rows for 0 Silver encounters"
    )
    bad_rows = pl.DataFrame(
        {
            "patient_age": [200, 3],
            **{c: [[], None] for c in ("active_conditions", "active_medications", "procedures")},
            "recent_labs": [[], []],
        },
        schema_overrides={"patient_age": pl.Int32},
    )
    r = validate_gold(bad_rows, "A", 3, lambda row: row["patient_age"] < 150, max_age=130)
    failed = {c.rule for c in r.checks if not c.passed}
    assert failed == {
        "rows_equal_encounters",
        "range:patient_age∈[0,130]",
        "never_null:active_conditions",
        "never_null:active_medications",
        "never_null:procedures",
        "contract_schema",
    }


def test_gold_contract_check_fast_path_reports_as_the_row_validator():
    """``invalid_rows`` (the job's fast path) and ``row_validator`` give the same outcome."""
    from fhirhouse.gold.contract import invalid_row_count, row_validator

    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    gold = pl.from_arrow(build_encounter_summary(empty_silver(), now))
    gold = pl.concat([gold, gold.clear(3)]).with_columns(
        pl.Series("encounter_id", ["e1", "e2", None]),
        pl.lit("x").alias("summary_id"),
        pl.lit("p").alias("patient_id"),
        pl.lit("f").alias("patient_gender"),
        pl.lit("").alias("encounter_type"),
        pl.lit([], pl.List(pl.String)).alias("active_conditions"),
        pl.lit([], pl.List(pl.String)).alias("active_medications"),
    )  # members of the struct columns are null, the structs themselves too: invalid rows
    slow = validate_gold(gold, "A", 3, row_validator(), max_age=130)
    fast = validate_gold(gold, "A", 3, max_age=130, invalid_rows=invalid_row_count)
    assert [c.__dict__ for c in fast.checks] == [c.__dict__ for c in slow.checks]
    schema = outcome(fast, "contract_schema")
    assert not schema.passed and schema.legacy == "schema_invalid(3)"
    assert schema.detail == "0/3 rows valid against the contract JSON Schema"
    ok = validate_gold(gold.head(0), "A", 0, max_age=130, invalid_rows=invalid_row_count)
    assert outcome(ok, "contract_schema").detail == (
        "0/0 rows valid against the contract JSON Schema"
    )
    # without either validator the contract check is skipped, as before
    assert "contract_schema" not in {
        c.rule for c in validate_gold(gold, "A", 3, max_age=130).checks
    }


def test_ingest_log_rows():
    r = validate_table("patient", patients(), today=TODAY)
    ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    t = ingest_log_table([r], ts)
    assert t.schema == INGEST_LOG_SCHEMA
    assert t.to_pylist() == [
        {
            "table": "patient",
            "row_count": 3,
            "passed": False,
            "failed_checks": "min_rows<100(=3)",
            "ingest_timestamp": ts,
        }
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"on_failure": "maybe"},
        {"silver": {"nope": {"min_rows": 1}}},
        {"silver": {"patient": {"min_rowz": 1}}},
        {"silver": {"soap_note": {"max_short_pct": 2}}},
        {"gold": {"max_age": -1}},
    ],
)
def test_invalid_check_config_is_refused(bad):
    with pytest.raises(ConfigError, match="checks"):
        load_config(overrides={"checks": bad})
