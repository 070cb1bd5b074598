"""gold.encounter_summary v1.1.0: the transform, the contract files, the manifest, and
per-cohort incremental updates."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid

import jsonschema
import polars as pl
import pyarrow as pa
import pytest
from conftest import (
    FIXTURES,
    ORACLE,
    REPO,
    b64,
    build_lake,
    bundle_of,
    empty_silver,
    require_shared,
    write_bundles,
)
from deltalake import DeltaTable
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirhouse import SILVER_TABLES, jobs
from fhirhouse.cli import main
from fhirhouse.fhir.parser import parse_bundle
from fhirhouse.gold import contract
from fhirhouse.gold.encounter_summary import (
    GOLD_SCHEMA,
    NULLABLE_FIELDS,
    OPTIONAL_FIELDS,
    REQUIRED_FIELDS,
    SUMMARY_NAMESPACE,
    build_encounter_summary,
    summary_id,
    summary_ids,
)
from fhirhouse.gold.manifest import build_corpus_manifest
from fhirhouse.layout import Layout
from fhirhouse.silver.build import build_table
from fhirhouse.store.delta import read_table
from fhirhouse.synth.builders import (
    attachment,
    binary,
    coding,
    component,
    concept,
    condition,
    document_reference,
    ecg_report,
    encounter,
    genomic_report,
    imaging_series,
    imaging_study,
    medication_request,
    observation,
    patient,
    period,
    procedure,
    quantity,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def silver_from(*bundles: dict) -> dict[str, pa.Table]:
    records = {t: [] for t in SILVER_TABLES}
    for bundle in bundles:
        for table, recs in parse_bundle(bundle).records.items():
            records[table] += recs
    return {t: build_table(t, records[t], ingest_timestamp=NOW, cohort="A") for t in records}


def context_bundle() -> dict:
    """One patient and two encounters: enc-1 with every kind of record Gold reads (a
    condition, vitals, a lab, a medication, a procedure, an inline note, an ECG report with
    its observations, a genomic report, an imaging study), enc-2 with only a note stored in a
    Binary."""
    note1 = "SUBJECTIVE: chest discomfort\nOBJECTIVE: BP 154/85\nASSESSMENT: angina\nPLAN: aspirin"
    note2 = "2021-06-01\n\n# Chief Complaint\ncough\n# Assessment and Plan\nviral URI\n"
    p, e1 = "pat-1", "enc-1"
    resources = [
        patient(p, gender="female", birth_date="1980-07-15"),
        encounter(
            e1,
            p,
            status="finished",
            kind=concept("185349003", "Encounter for check up (procedure)"),
            start="2021-03-15T09:00:00-04:00",
            end="2021-03-15T09:30:00-04:00",
        ),
        encounter("enc-2", p, start="2021-06-01T10:00:00-04:00"),
        condition(
            "cond-1",
            p,
            e1,
            code=concept("59621000", "Essential hypertension (disorder)"),
            onset="2019-01-01",
        ),
        observation(
            "obs-hr",
            p,
            e1,
            category=concept("vital-signs"),
            code=concept("8867-4", "Heart rate"),
            value=quantity(72, "/min"),
            when="2021-03-15T09:10:00-04:00",
        ),
        observation(
            "obs-bp",
            p,
            e1,
            code=concept("85354-9", "Blood pressure panel"),
            when="2021-03-15T09:10:00-04:00",
            components=[
                component(concept("8480-6", "Systolic"), quantity(154)),
                component(concept("8462-4", "Diastolic"), quantity(85)),
            ],
        ),
        observation(
            "obs-glucose",
            p,
            e1,
            category=concept("laboratory"),
            code=concept("2339-0", "Glucose"),
            value=quantity(95, "mg/dL"),
            when="2021-03-15T09:15:00-04:00",
        ),
        medication_request(
            "med-1",
            p,
            e1,
            status="active",
            code=concept("243670", "Aspirin 81 MG Oral Tablet"),
            authored="2021-03-15T09:20:00-04:00",
        ),
        procedure(
            "proc-1",
            p,
            e1,
            code=concept("5880005", "Blood pressure taking (procedure)"),
            performed=period("2021-03-15T09:05:00-04:00"),
        ),
        document_reference(
            "docref-001", p, e1, date="2021-03-15T09:30:00-04:00", content=attachment(b64(note1))
        ),
        document_reference(
            "docref-002",
            p,
            "enc-2",
            date="2021-06-01T10:30:00-04:00",
            content=attachment(url="urn:uuid:binary-002"),
        ),
        binary("binary-002", b64(note2)),
        ecg_report(
            "ecg-001",
            p,
            e1,
            code=concept("11524-6", "EKG study", text="Electrocardiogram"),
            when="2021-03-15T09:35:00-04:00",
            conclusion="Normal sinus rhythm, no acute ischemic changes.",
            results=["obs-ecg-hr", "obs-ecg-r"],
        ),
        # The ECG's heart rate has no date: a dated vital must win over it.
        observation("obs-ecg-hr", p, e1, code=concept("8867-4", "Heart rate"), value=quantity(78)),
        observation(
            "obs-ecg-r",
            p,
            e1,
            code=concept("8893-1", "Rhythm"),
            value_concept=concept("NSR", "Normal sinus rhythm"),
        ),
        genomic_report(
            "genomic-001",
            p,
            e1,
            code=concept("55232-3", "Genetic analysis master panel"),
            conclusion="No pathogenic variants detected.",
        ),
        imaging_study(
            "imaging-001",
            p,
            e1,
            started="2021-03-15T09:40:00-04:00",
            n_series=1,
            series=[imaging_series(coding("MR"), coding(display="Brain structure"))],
        ),
    ]
    return bundle_of(resources, "collection")


@pytest.fixture(scope="module")
def context_gold() -> dict[str, dict]:
    table = build_encounter_summary(silver_from(context_bundle()), NOW, {"patient": 7})
    assert table.schema == GOLD_SCHEMA
    return {r["encounter_id"]: r for r in table.to_pylist()}


def test_full_context_row(context_gold):
    e1 = context_gold["enc-1"]
    assert e1["patient_age"] == 40 and e1["encounter_date"] == dt.date(2021, 3, 15)
    assert e1["patient_gender"] == "female"
    assert e1["encounter_type"] == "Encounter for check up (procedure)"
    assert e1["active_conditions"] == ["Essential hypertension (disorder)"]
    assert e1["active_medications"] == ["Aspirin 81 MG Oral Tablet"]
    assert e1["procedures"] == ["Blood pressure taking (procedure)"]
    assert e1["recent_vitals"] == {
        "heart_rate": 72.0,
        "bp_systolic": 154.0,
        "bp_diastolic": 85.0,
        "temperature": None,
        "o2_saturation": None,
    }
    assert {"name": "Glucose", "value": 95.0, "unit": "mg/dL"} in e1["recent_labs"]
    assert e1["has_ecg"] and e1["ecg_rhythm"] == "Normal sinus rhythm"
    assert e1["ecg_finding"].startswith("Normal sinus rhythm")
    assert e1["imaging"]["has_imaging"] and e1["imaging"]["modality"] == "MR"
    assert e1["has_genomics"] and e1["genomic_summary"] == "No pathogenic variants detected."
    assert e1["soap_note_id"] == "docref-001"
    assert e1["created_timestamp"] == NOW
    assert e1["silver_versions"]["patient"] == 7 and e1["silver_versions"]["encounter"] is None


def test_sparse_row_carries_forward_and_is_null_safe(context_gold):
    e2 = context_gold["enc-2"]
    assert e2["active_conditions"] == ["Essential hypertension (disorder)"]
    assert e2["active_medications"] == ["Aspirin 81 MG Oral Tablet"]
    assert e2["procedures"] == [] and e2["recent_labs"] == []
    assert e2["recent_vitals"] == dict.fromkeys(
        ["heart_rate", "bp_systolic", "bp_diastolic", "temperature", "o2_saturation"]
    )
    assert e2["has_ecg"] is False and e2["ecg_finding"] is None
    assert e2["imaging"]["has_imaging"] is False and e2["imaging"]["modality"] is None
    assert e2["has_genomics"] is False and e2["soap_note_id"] == "docref-002"
    assert e2["encounter_type"] == ""


def test_as_of_date_gate():
    def cond(cid, name, onset=None, abated=None):
        return condition(cid, "pat-1", code=concept(cid, name), onset=onset, abatement=abated)

    def med(mid, name, status, authored):
        return medication_request(
            mid, "pat-1", status=status, code=concept(mid, name), authored=authored
        )

    resources = [
        patient("pat-1", gender="male", birth_date="1970-01-01"),
        encounter("e1", "pat-1", start="2021-01-01T12:00:00Z"),
        encounter("e2", "pat-1", start="2021-12-31T12:00:00Z"),
        encounter("e3", "pat-1"),  # no date
        cond("c1", "Chronic dz", "2019-05-01"),
        cond("c2", "Acute dz", "2020-06-01", "2021-06-01"),
        cond("c3", "Later dz", "2021-09-01"),
        cond("c4", "Undated dz"),
        med("m1", "Drug A", "active", "2021-03-01"),
        med("m2", "Drug B", "stopped", "2020-01-01"),
    ]
    rows = {
        r["encounter_id"]: r
        for r in build_encounter_summary(silver_from(bundle_of(resources)), NOW).to_pylist()
    }
    assert rows["e1"]["active_conditions"] == ["Acute dz", "Chronic dz", "Undated dz"]
    assert rows["e1"]["active_medications"] == []
    assert rows["e2"]["active_conditions"] == ["Chronic dz", "Later dz", "Undated dz"]
    assert rows["e2"]["active_medications"] == ["Drug A"]
    # With no encounter date only conditions with neither onset nor abatement survive.
    assert rows["e3"]["active_conditions"] == ["Undated dz"]
    assert rows["e3"]["patient_age"] is None and rows["e3"]["encounter_date"] is None


def test_age_is_anniversary_based():
    resources = [
        patient("pat-1", birth_date="2000-03-15"),
        encounter("a", "pat-1", start="2021-03-14T12:00:00Z"),
        encounter("b", "pat-1", start="2021-03-15T12:00:00Z"),
    ]
    rows = {
        r["encounter_id"]: r
        for r in build_encounter_summary(silver_from(bundle_of(resources)), NOW).to_pylist()
    }
    assert (rows["a"]["patient_age"], rows["b"]["patient_age"]) == (20, 21)


def test_summary_id_is_stable_and_unique(context_gold):
    again = build_encounter_summary(silver_from(context_bundle()), NOW + dt.timedelta(days=3))
    ids = {r["encounter_id"]: r["summary_id"] for r in again.to_pylist()}
    assert ids == {k: v["summary_id"] for k, v in context_gold.items()}
    assert ids["enc-1"] == str(uuid.uuid5(SUMMARY_NAMESPACE, "enc-1"))
    assert len(set(ids.values())) == len(ids)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text()), max_size=20))
def test_vectorized_summary_ids_are_uuid5(ids):
    out = summary_ids(pl.Series("encounter_id", ids, pl.String))
    assert out.dtype == pl.String and out.name == "encounter_id"
    assert out.to_list() == [None if e is None else summary_id(e) for e in ids]
    assert all(e is None or str(uuid.UUID(e)) == e for e in out)


def test_empty_silver_gives_empty_gold_with_schema():
    table = build_encounter_summary(empty_silver(), NOW)
    assert table.num_rows == 0 and table.schema == GOLD_SCHEMA


def test_missing_silver_input_raises():
    silver = empty_silver()
    del silver["procedure"]
    with pytest.raises(KeyError):
        build_encounter_summary(silver, NOW)


def test_required_and_optional_partition_the_schema():
    assert len(GOLD_SCHEMA) == 22 and len(REQUIRED_FIELDS) == 9
    assert not set(REQUIRED_FIELDS) & set(OPTIONAL_FIELDS)
    assert set(REQUIRED_FIELDS) | set(OPTIONAL_FIELDS) == set(GOLD_SCHEMA.names)


def test_committed_contract_files_are_current(capsys):
    assert main(["contract", "--check", "--dir", str(REPO)]) == 0
    schema = json.loads((REPO / contract.SCHEMA_FILE).read_text())
    assert schema["x-contract-version"] == "1.1.0" and schema["title"] == "gold.encounter_summary"
    assert schema["required"] == list(REQUIRED_FIELDS)
    assert schema["additionalProperties"] is False
    assert list(schema["properties"]) == sorted(GOLD_SCHEMA.names)
    dictionary = (REPO / contract.DICTIONARY_FILE).read_text()
    for table in SILVER_TABLES:
        assert f"## silver.{table}" in dictionary
    for word in ("enableChangeDataFeed", "source_file", "ingest_timestamp"):
        assert word in dictionary
    assert "Known limitations" in (REPO / contract.CONTRACT_FILE).read_text()


def test_contract_check_detects_a_stale_file(tmp_path, capsys):
    contract.write_all(tmp_path)
    assert main(["contract", "--check", "--dir", str(tmp_path)]) == 0
    path = tmp_path / contract.SCHEMA_FILE
    path.write_text(path.read_text().replace('"1.1.0"', '"1.0.0"'))
    assert main(["contract", "--check", "--dir", str(tmp_path)]) == 1
    assert "stale: schemas/gold_encounter_summary.json" in capsys.readouterr().err


def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((REPO / contract.SCHEMA_FILE).read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_schema_rejects_extra_and_missing_fields(context_gold):
    v = validator()
    row = contract.to_json_row(context_gold["enc-1"])
    assert not list(v.iter_errors(row))
    assert list(v.iter_errors({**row, "cohort": "A"}))  # additionalProperties: false
    assert list(v.iter_errors({k: x for k, x in row.items() if k != "patient_id"}))
    assert list(v.iter_errors({**row, "encounter_date": "15/03/2021"}))  # format: date


def test_manifest_fields_and_empty_stats():
    gold = build_encounter_summary(silver_from(context_bundle()), NOW)
    counts = {t: 1 for t in SILVER_TABLES}
    m = build_corpus_manifest(gold, counts, NOW, {"patient": 7}, gold_version=3)
    assert m["manifest_version"] == "1" and m["contract_version"] == "1.1.0"
    assert m["row_count"] == 2 and m["gold_delta_version"] == 3
    stats = m["corpus_stats"]
    assert stats["encounters"] == 2 and stats["distinct_patients"] == 1
    assert (stats["with_soap_note"], stats["with_ecg"], stats["with_imaging"]) == (2, 1, 1)
    assert (stats["with_genomics"], stats["with_vitals"], stats["with_labs"]) == (1, 1, 1)
    assert [s["table"] for s in m["silver_sources"]] == [f"silver.{t}" for t in SILVER_TABLES]
    assert m["silver_sources"][0]["delta_version"] == 7
    empty = build_corpus_manifest(GOLD_SCHEMA.empty_table(), {}, NOW)["corpus_stats"]
    assert set(empty.values()) == {0} and empty["avg_conditions_per_encounter"] == 0.0


# ----------------------------------------------- the fast contract check agrees with jsonschema


def legacy_invalid(df: pl.DataFrame) -> list[bool]:
    """The reference verdicts: jsonschema on every row, as validate_gold did before."""
    valid = contract.row_validator()
    return [not valid(row) for row in df.iter_rows(named=True)]


def assert_same_verdicts(df: pl.DataFrame) -> list[bool]:
    expected = legacy_invalid(df)
    assert contract.invalid_row_mask(df).to_list() == expected
    assert contract.invalid_row_count(df) == sum(expected)
    assert contract.invalid_row_count(df.to_arrow()) == sum(expected)
    # Soundness of the vectorized pass: it never calls a rejected row valid.
    sure = contract.certainly_valid(df).to_list()
    assert not any(s and bad for s, bad in zip(sure, expected, strict=True))
    return expected


@pytest.fixture(scope="module")
def good_frame() -> pl.DataFrame:
    """Two valid rows: a full one (enc-1) and a sparse one (enc-2)."""
    return pl.from_arrow(build_encounter_summary(silver_from(context_bundle()), NOW))


def with_column(df: pl.DataFrame, name: str, values: list, dtype=None) -> pl.DataFrame:
    return df.with_columns(pl.Series(name, values, dtype=dtype, strict=False))


def null_at_0(df: pl.DataFrame, name: str) -> pl.DataFrame:
    return df.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col(name)).alias(name)
    )


def test_fast_check_is_sure_of_valid_rows(good_frame):
    assert assert_same_verdicts(good_frame) == [False, False]
    assert contract.certainly_valid(good_frame).all()  # no row falls back to jsonschema
    empty = pl.from_arrow(GOLD_SCHEMA.empty_table())
    assert contract.invalid_row_mask(empty).to_list() == [] and not contract.invalid_row_count(
        empty
    )


def test_fast_check_nulls_where_not_nullable(good_frame):
    for name in GOLD_SCHEMA.names:
        df = null_at_0(good_frame, name)
        assert assert_same_verdicts(df) == [name not in NULLABLE_FIELDS, False], name


def test_fast_check_missing_and_extra_keys(good_frame):
    for name in GOLD_SCHEMA.names:
        expected = assert_same_verdicts(good_frame.drop(name))
        assert expected == [name in REQUIRED_FIELDS] * 2, name
    assert assert_same_verdicts(good_frame.with_columns(pl.lit("A").alias("cohort"))) == [True] * 2
    assert assert_same_verdicts(good_frame.select([])) == []  # no rows, no verdicts


WRONG_TYPES = {
    # column: a two-row replacement of the wrong type (None: a null of that type)
    "summary_id": ([1, 2], pl.Int64),
    "patient_age": (["40", None], pl.String),
    "patient_gender": ([True, False], pl.Boolean),
    "encounter_type": ([1.5, 2.0], pl.Float64),
    "encounter_date": ([20210315, None], pl.Int64),
    "active_conditions": (["a", "b"], pl.String),
    "active_medications": ([[1], []], pl.List(pl.Int64)),
    "recent_vitals": ([1.0, 2.0], pl.Float64),
    "recent_labs": ([["x"], []], pl.List(pl.String)),
    "procedures": ([{"a": "x"}, {"a": "y"}], pl.Struct({"a": pl.String})),
    "soap_note_text": ([1, None], pl.Int64),
    "has_ecg": ([0, 1], pl.Int64),
    "imaging": ([True, False], pl.Boolean),
    "has_genomics": (["false", "true"], pl.String),
    "created_timestamp": ([1, 2], pl.Int64),
    "silver_versions": ([[1], [2]], pl.List(pl.Int64)),
}


def test_fast_check_wrong_types(good_frame):
    for name, (values, dtype) in WRONG_TYPES.items():
        expected = assert_same_verdicts(with_column(good_frame, name, values, dtype))
        assert expected[0], name


def test_fast_check_numbers_and_integers(good_frame):
    # integer-typed columns given as floats: jsonschema takes 40.0 as an integer, not 40.5
    assert assert_same_verdicts(with_column(good_frame, "patient_age", [40.0, None])) == [
        False,
        False,
    ]
    assert assert_same_verdicts(with_column(good_frame, "patient_age", [40.5, 1.0])) == [
        True,
        False,
    ]
    assert assert_same_verdicts(with_column(good_frame, "patient_age", [40, 2], pl.UInt8)) == [
        False,
        False,
    ]
    versions = good_frame["silver_versions"].struct.unnest()
    as_float = versions.with_columns(pl.lit(7.5).alias("patient"))
    df = good_frame.with_columns(as_float.to_struct("silver_versions"))
    assert assert_same_verdicts(df) == [True, True]
    # numbers given as integers, NaN and infinity: all JSON numbers to jsonschema
    vitals = good_frame["recent_vitals"].struct.unnest()
    for values in ([72, None], [float("nan"), float("inf")]):
        df = good_frame.with_columns(
            vitals.with_columns(pl.Series("heart_rate", values)).to_struct("recent_vitals")
        )
        assert assert_same_verdicts(df) == [False, False]
    # a Decimal column: unsure to the vectorized pass, decided by jsonschema
    df = with_column(good_frame, "patient_age", [40, None], pl.Decimal(10, 0))
    assert assert_same_verdicts(df) == legacy_invalid(df)


BAD_DATES = [
    "15/03/2021",
    "2021-02-30",
    "2021-3-15",
    "2021-03-15\n",
    " 2021-03-15",
    "0000-01-01",
    "2021-03-15T00:00:00",
    "\u0662\u0660\u0662\u0661-03-15",  # non-ASCII digits
    "",
]


def test_fast_check_dates(good_frame):
    for bad in BAD_DATES:
        df = with_column(good_frame, "encounter_date", [bad, "2021-06-01"], pl.String)
        assert assert_same_verdicts(df) == [True, False], bad
    good = ["2021-03-15", "0001-01-01", "9999-12-31", "2020-02-29"]
    df = with_column(good_frame, "encounter_date", good[:2], pl.String)
    assert assert_same_verdicts(df) == [False, False]
    df = with_column(good_frame, "encounter_date", good[2:], pl.String)
    assert assert_same_verdicts(df) == [False, False]
    # a timestamp where a date is expected renders with a time: not a `date`
    stamp = [dt.datetime(2021, 3, 15, tzinfo=dt.UTC), None]
    df = with_column(good_frame, "encounter_date", stamp, pl.Datetime("us", "UTC"))
    assert assert_same_verdicts(df) == [True, False]
    # inside a struct: imaging.study_date
    imaging = good_frame["imaging"].struct.unnest()
    for values, verdict in (
        (["2021-13-01", None], [True, False]),
        (["2021-12-01", None], [False, False]),
    ):
        df = good_frame.with_columns(
            imaging.with_columns(pl.Series("study_date", values, pl.String)).to_struct("imaging")
        )
        assert assert_same_verdicts(df) == verdict, values


def test_fast_check_date_times(good_frame):
    cases = [
        # naive timestamps render without an offset: not RFC 3339
        (pl.Datetime("us", None), [dt.datetime(2026, 1, 1)] * 2, [True, True]),
        (pl.Datetime("ns", "UTC"), [NOW, NOW], [False, False]),
        (pl.Datetime("ms", "America/New_York"), [NOW, NOW], [False, False]),
        # a historical zone offset with seconds (+00:19:32) is not RFC 3339
        (
            pl.Datetime("us", "Europe/Amsterdam"),
            [dt.datetime(1900, 1, 1, tzinfo=dt.UTC), NOW],
            [True, False],
        ),
        (pl.String, ["2026-01-01T00:00:00+00:00", "2026-01-01 00:00"], [False, True]),
        (pl.String, ["2026-01-01T00:00:00Z", "2026-01-01"], [False, True]),
        (pl.Date, [dt.date(2026, 1, 1)] * 2, [True, True]),
    ]
    # jsonschema checks `date-time` only where rfc3339-validator is installed (it is in dev)
    checked = "date-time" in jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers
    for dtype, values, verdict in cases:
        df = good_frame.with_columns(pl.Series("created_timestamp", values).cast(dtype))
        assert assert_same_verdicts(df) == (verdict if checked else [False, False]), dtype


def test_fast_check_nested_values(good_frame):
    conds = [["a", None], ["b"]]
    assert assert_same_verdicts(with_column(good_frame, "active_conditions", conds)) == [
        True,
        False,
    ]
    labs = good_frame["recent_labs"].to_list()
    lab_type = good_frame.schema["recent_labs"]
    for bad, verdict in (
        ([*labs[0], None], [True, False]),  # a null lab in the list
        ([{"name": None, "value": None, "unit": None}], [False, False]),
    ):
        df = with_column(good_frame, "recent_labs", [bad, labs[1]], lab_type)
        assert assert_same_verdicts(df) == verdict
    wrong_lab = pl.List(pl.Struct({"name": pl.String, "value": pl.String, "unit": pl.String}))
    df = with_column(good_frame, "recent_labs", [[{"name": "x", "value": "1", "unit": "u"}], []])
    assert assert_same_verdicts(df.cast({"recent_labs": wrong_lab})) == [True, False]
    extra = [[{"name": "x", "value": 1.0, "unit": "u", "flag": "H"}], []]
    assert assert_same_verdicts(with_column(good_frame, "recent_labs", extra)) == [True, False]
    # extra, missing and mistyped struct members
    vitals = good_frame["recent_vitals"].struct.unnest()
    df = good_frame.with_columns(
        vitals.with_columns(pl.lit(1).alias("pulse")).to_struct("recent_vitals")
    )
    assert assert_same_verdicts(df) == [True, True]
    df = good_frame.with_columns(vitals.drop("heart_rate").to_struct("recent_vitals"))
    assert assert_same_verdicts(df) == [False, False]  # struct members are optional
    imaging = good_frame["imaging"].struct.unnest()
    for member, values in (
        ("has_imaging", [1, 0]),
        ("series_count", [1.5, None]),
        ("series_count", ["1", None]),
        ("modality", [3, None]),
    ):
        df = good_frame.with_columns(
            imaging.with_columns(pl.Series(member, values)).to_struct("imaging")
        )
        assert assert_same_verdicts(df)[0], (member, values)


def test_fast_check_other_dtypes(good_frame):
    """Dtypes the vectorized pass does not model fall back to jsonschema, verdicts intact."""
    for name, series in (
        ("patient_gender", pl.Series(["female", "male"], dtype=pl.Categorical)),
        ("patient_gender", pl.Series([b"f", b"m"], dtype=pl.Binary)),
        ("encounter_date", pl.Series([dt.time(1), None], dtype=pl.Time)),
        ("patient_age", pl.Series([dt.timedelta(1), None], dtype=pl.Duration)),
        ("patient_age", pl.Series([None, None], dtype=pl.Null)),
        ("procedures", pl.Series([["a"], ["b"]], dtype=pl.Array(pl.String, 1))),
    ):
        assert_same_verdicts(good_frame.with_columns(series.alias(name)))


def test_fast_check_mixed_violations(good_frame):
    """Many rows, each with a random mix of the violations above: row-by-row agreement."""
    import random

    rng = random.Random(7)
    n = 300
    df = pl.concat([good_frame] * (n // 2))
    dates = ["2021-03-15", "2020-02-29", *BAD_DATES]
    df = df.with_columns(pl.Series("encounter_date", [rng.choice(dates) for _ in range(n)]))
    conds = [rng.choice([["a"], [], ["a", None], [None]]) for _ in range(n)]
    df = df.with_columns(pl.Series("active_conditions", conds, pl.List(pl.String)))
    for name in GOLD_SCHEMA.names:
        hit = pl.Series([rng.random() < 0.02 for _ in range(n)])
        df = df.with_columns(pl.when(hit).then(None).otherwise(pl.col(name)).alias(name))
    expected = assert_same_verdicts(df)
    assert 0.2 * n < sum(expected) < n


# ------------------------------------------------------------- built through the job functions


@pytest.fixture(scope="module")
def fixture_gold(tmp_path_factory):
    require_shared()
    root = tmp_path_factory.mktemp("gold") / "root"
    build_lake(root, FIXTURES)
    return root


def test_gold_parity_with_reference(fixture_gold):
    ours = pl.from_arrow(read_table(jobs.Layout.of(fixture_gold).gold_table))
    ref = pl.read_parquet(ORACLE / "gold_encounter_summary.parquet")
    assert ours.columns == ref.columns == GOLD_SCHEMA.names
    cols = [c for c in ref.columns if c not in ("created_timestamp", "silver_versions")]
    ours, ref = ours.select(cols).sort("encounter_id"), ref.select(cols).sort("encounter_id")
    assert ours.schema == ref.schema and ours.height == ref.height == 817
    for col in cols:
        assert ours[col].equals(ref[col]), f"gold.{col} differs from the reference"


def test_every_fixture_gold_row_validates(fixture_gold):
    v = validator()
    rows = read_table(jobs.Layout.of(fixture_gold).gold_table).to_pylist()
    bad = [
        r["encounter_id"] for r in rows if any(True for _ in v.iter_errors(contract.to_json_row(r)))
    ]
    assert rows and not bad


def test_fast_check_agrees_on_fixture_gold(fixture_gold):
    df = pl.from_arrow(read_table(jobs.Layout.of(fixture_gold).gold_table))
    assert df.height == 817
    assert contract.certainly_valid(df).all()
    assert assert_same_verdicts(df) == [False] * 817
    # the same real rows, each broken in one column: still row-by-row agreement
    broken = pl.concat(
        [
            null_at_0(df.slice(0, 50), "patient_id"),
            with_column(df.slice(50, 2), "encounter_date", ["2021-02-30", "2021-02-28"], pl.String),
            df.slice(52, 50).with_columns(
                pl.col("active_conditions").list.concat(pl.lit([None], pl.List(pl.String)))
            ),
        ],
        how="vertical_relaxed",
    )
    expected = assert_same_verdicts(broken)
    assert expected == [True] + [False] * 49 + [True, False] + [True] * 50


def test_fixture_manifest_matches_reference_stats(fixture_gold):
    ours = json.loads(jobs.Layout.of(fixture_gold).corpus_manifest.read_text())
    ref = json.loads((ORACLE / "corpus_manifest.json").read_text())
    assert ours["corpus_stats"] == ref["corpus_stats"]
    assert [s["row_count"] for s in ours["silver_sources"]] == [
        s["row_count"] for s in ref["silver_sources"]
    ]
    assert {k: v["row_count"] for k, v in ours["cohorts"].items()} == {
        "A": 261,
        "B": 291,
        "C": 265,
    }
    assert sum(v["corpus_stats"]["encounters"] for v in ours["cohorts"].values()) == 817
    version = ours["gold_delta_version"]
    assert (
        DeltaTable(str(jobs.Layout.of(fixture_gold).gold_table), version=version).version()
        == version
    )


def test_changing_one_cohort_changes_only_its_gold_rows(tmp_path, sample_source):
    root = tmp_path / "lake"
    build_lake(root, sample_source)
    lake = Layout.of(root)
    gold_path = lake.gold_table
    before = {r["encounter_id"]: r for r in read_table(gold_path).to_pylist()}
    v0 = DeltaTable(str(gold_path)).version()
    b_file = sorted(sample_source.iterdir())[1]  # lands in cohort B
    bundle = json.loads(b_file.read_text())
    encounters = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"]
    gone = encounters[-1]["resource"]["id"]
    bundle["entry"].remove(encounters[-1])
    for e in bundle["entry"]:
        if (
            e["resource"]["resourceType"] == "Observation"
            and e["resource"]["code"]["coding"][0]["code"] == "8867-4"
        ):
            e["resource"]["valueQuantity"]["value"] += 10
    write_bundles(sample_source, {b_file.name: bundle})
    jobs.land_job(lake, sample_source)
    jobs.bronze_cohort_job(lake, "B")
    assert jobs.silver_job(lake, "B").marker["parsed_files"] == 1
    marker = jobs.gold_job(lake, "B")
    assert marker["deleted"] == 1 and marker["updated"] >= 1 and marker["inserted"] == 0
    assert not marker["full"] and marker["recomputed"] < marker["rows"]  # one patient's rows
    after = {r["encounter_id"]: r for r in read_table(gold_path).to_pylist()}
    assert gone in before and gone not in after
    b_patients = {
        r["patient_id"]
        for r in read_table(lake.silver_table("patient")).to_pylist()
        if r["cohort"] == "B"
    }
    cdf = pa.table(DeltaTable(str(gold_path)).load_cdf(starting_version=v0 + 1).read_all())
    assert set(cdf["patient_id"].to_pylist()) <= b_patients
    for key, row in after.items():
        if row["patient_id"] not in b_patients:
            assert row == before[key]  # other cohorts' rows untouched, timestamps included
    again = jobs.gold_job(lake, "B")  # asked for with no Silver change: the whole cohort
    assert again["full"] and again["committed"] is False  # idempotent


def test_cli_gold_rebuilds_from_silver(tmp_path, capsys):
    src = write_bundles(tmp_path / "src", {})
    shutil.copy(sorted((REPO / "resources/sample_bundles").iterdir())[0], src)
    root = tmp_path / "lake"
    assert main(["run", "--root", str(root), "--source", str(src), "--no-gold"]) == 0
    assert not jobs.Layout.of(root).gold_table.exists()
    assert main(["gold", "--root", str(root)]) == 0
    assert "gold.encounter_summary: 3 rows" in capsys.readouterr().out
    assert main(["gold", "--root", str(tmp_path / "empty")]) == 2
