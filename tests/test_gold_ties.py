"""Gold's "last by date" picks: among rows of the same date, the one recorded later in its
bundle wins (Silver's `source_entry`), whatever order Silver's rows are in."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pyarrow as pa
import pytest
from conftest import (
    FIXTURES,
    b64,
    build_lake,
    bundle_of,
    make_bundle,
    require_shared,
    table_frame,
    write_bundles,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from fhirhouse import SILVER_TABLES, jobs
from fhirhouse.fhir.parser import parse_bundle
from fhirhouse.gold.encounter_summary import SILVER_COLUMNS, build_encounter_summary
from fhirhouse.layout import Layout
from fhirhouse.silver.build import build_table
from fhirhouse.store.delta import read_table
from fhirhouse.store.delta_log import silver_versions
from fhirhouse.synth.builders import (
    attachment,
    coding,
    component,
    concept,
    document_reference,
    ecg_report,
    encounter,
    genomic_report,
    imaging_series,
    imaging_study,
    observation,
    patient,
    quantity,
)

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
WHEN = "2021-03-10T10:00:00+00:00"


def tied_bundle() -> dict:
    """Two of each "last" kind on one encounter, at the same instant. The one recorded later
    has the smaller value, so a tie broken by the values themselves picks the wrong one."""
    resources = [
        patient("p", gender="female", birth_date="1980-01-01"),
        encounter("e", "p", start=WHEN),
    ]
    studies = [("img-1", "US", "Thoracic"), ("img-2", "DX", "Thoracic structure")]
    for n, (study, modality, body) in enumerate(studies):
        scan = imaging_series(coding(modality), coding(str(n), body))
        resources.append(imaging_study(study, "p", "e", started=WHEN, series=[scan]))
    for note, text in (("note-1", "Z earlier note"), ("note-2", "A later note")):
        resources.append(
            document_reference(note, "p", "e", date=WHEN, content=attachment(b64(text)))
        )
    ecg, panel = (
        concept("11524-6", "EKG study"),
        concept("55232-3", "Genetic analysis summary panel"),
    )
    for report, build, code, conclusion in (
        ("ecg-1", ecg_report, ecg, "z earlier rhythm"),
        ("ecg-2", ecg_report, ecg, "a later rhythm"),
        ("gen-1", genomic_report, panel, "z earlier panel"),
        ("gen-2", genomic_report, panel, "a later panel"),
    ):
        resources.append(build(report, "p", "e", when=WHEN, code=code, conclusion=conclusion))
    for obs, value in (("hr-1", 90), ("hr-2", 60)):
        resources.append(
            observation(
                obs,
                "p",
                "e",
                when=WHEN,
                category=concept("vital-signs"),
                code=concept("8867-4", "Heart rate"),
                value=quantity(value),
            )
        )
    for obs, (sys_, dia) in (("bp-1", (150, 95)), ("bp-2", (120, 80))):
        bp = [
            component(concept("8480-6", "Systolic"), quantity(sys_)),
            component(concept("8462-4", "Diastolic"), quantity(dia)),
        ]
        resources.append(
            observation(
                obs,
                "p",
                "e",
                when=WHEN,
                code=concept("85354-9", "Blood pressure panel"),
                components=bp,
            )
        )
    return bundle_of(resources)


def silver(bundle: dict) -> dict[str, pa.Table]:
    records = parse_bundle(bundle).records
    for recs in records.values():
        for rec in recs:
            rec["source_file"] = "tied.json"
    return {t: build_table(t, records[t], ingest_timestamp=NOW, cohort="A") for t in records}


def _reversed(tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return {
        t: x.take(pa.array(range(x.num_rows - 1, -1, -1), pa.int64())) for t, x in tables.items()
    }


@pytest.mark.parametrize("order", ["as parsed", "reversed"])
def test_the_later_entry_wins_every_tie(order):
    tables = silver(tied_bundle())
    if order == "reversed":
        tables = _reversed(tables)
    [row] = build_encounter_summary(tables, NOW).to_pylist()
    assert row["imaging"]["modality"] == "DX"  # the study recorded later
    assert row["imaging"]["body_site_display"] == "Thoracic structure"
    assert row["soap_note_text"] == "A later note" and row["soap_note_id"] == "note-2"
    assert row["ecg_finding"] == "a later rhythm"
    assert row["genomic_summary"] == "a later panel"
    vitals = row["recent_vitals"]
    assert vitals["heart_rate"] == 60
    assert (vitals["bp_systolic"], vitals["bp_diastolic"]) == (120, 80)


def test_every_silver_row_records_its_place_in_the_bundle():
    tables = silver(tied_bundle())
    entries = {e["resource"]["id"]: i for i, e in enumerate(tied_bundle()["entry"])}
    for t, key in [("imaging_study", "study_id"), ("soap_note", "note_id"),
                   ("ecg_metadata", "ecg_id"), ("observation", "observation_id"),
                   ("patient", "patient_id"), ("encounter", "encounter_id")]:  # fmt: skip
        rows = tables[t].to_pylist()
        assert rows and all(r["source_entry"] == entries[r[key]] for r in rows), t


@pytest.fixture(scope="module")
def fixture_silver(tmp_path_factory) -> dict[str, pa.Table]:
    require_shared()
    root = build_lake(tmp_path_factory.mktemp("ties") / "root", FIXTURES, gold=False)
    layout = jobs.Layout.of(root)
    return {t: read_table(layout.silver_table(t), list(SILVER_COLUMNS[t])) for t in SILVER_TABLES}


def _frame(table: pa.Table) -> pl.DataFrame:
    df = pl.from_arrow(table.drop_columns(["created_timestamp"]))
    nested = [c for c, t in df.schema.items() if isinstance(t, pl.List | pl.Struct)]
    df = df.with_columns([pl.struct(c).struct.json_encode().alias(c) for c in nested])
    return df.sort("encounter_id")


@settings(max_examples=8, deadline=None, derandomize=True)
@given(seed=st.integers(0, 2**32 - 1))
def test_shuffling_silver_rows_leaves_gold_identical(fixture_silver, seed):
    want = _frame(build_encounter_summary(fixture_silver, NOW))
    shuffled = {
        t: pl.from_arrow(x).sample(fraction=1.0, shuffle=True, seed=seed).to_arrow()
        for t, x in fixture_silver.items()
    }
    assert _frame(build_encounter_summary(shuffled, NOW)).equals(want)


def test_a_root_without_source_entry_gets_it_on_the_next_build(tmp_path, monkeypatch):
    """A root built before Silver had `source_entry`: the next build adds the column to every
    table and fills it in (the parser's code changed, so every cohort is parsed again)."""
    from deltalake import write_deltalake

    src = write_bundles(tmp_path / "src", {f"b{i}.json": make_bundle(f"p{i}") for i in range(4)})
    root = build_lake(tmp_path / "root", src, cohorts=2)
    layout = jobs.Layout.of(root)
    for t in SILVER_TABLES:  # the tables as an older fhirhouse wrote them
        old = read_table(layout.silver_table(t)).drop_columns(["source_entry"])
        write_deltalake(
            str(layout.silver_table(t)),
            old,
            mode="overwrite",
            schema_mode="overwrite",
            partition_by=["cohort"],
        )
    for c in ("A", "B"):  # and the parse caches of the older parser
        index = json.loads(layout.parse_index(c).read_text())
        layout.parse_index(c).write_text(json.dumps({**index, "code": "an older parser"}))
    build_lake(root, None, cohorts=2)
    for t in SILVER_TABLES:
        frame = table_frame(layout.silver_table(t), {"ingest_timestamp"})
        assert "source_entry" in frame.columns, t
        assert frame["source_entry"].null_count() == 0, t
    patients = table_frame(layout.silver_table("patient"), set())
    assert patients["source_entry"].to_list() == [0, 0, 0, 0]


# slow: tests/test_incremental.py covers a changed parser through the job functions in
# `make test`; `make test-all` runs this Snakemake round trip too.
@pytest.mark.slow
@pytest.mark.workflow
def test_a_changed_parser_rebuilds_silver_on_the_next_snakemake_run(tmp_path, sample_source):
    """Snakemake sees the parser's code as a parameter of the `silver` rule: after an upgrade
    (here: a copy of the package with one more line in the parser), the next run re-parses
    every cohort by itself; the same rows come out, so nothing is committed."""
    import os
    import shutil
    import subprocess

    from conftest import REPO, _snakemake_command

    root = tmp_path / "lake"
    config = {"root": root, "source": sample_source}
    cmd, env = _snakemake_command(tmp_path, ("--cores", "2"), config)
    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    lake = Layout.of(root)
    before = silver_versions(lake)
    upgraded = shutil.copytree(REPO / "src", tmp_path / "src")
    with (upgraded / "fhirhouse/fhir/parser.py").open("a") as fh:
        fh.write("\n# an upgraded parser\n")
    env = {**env, "PYTHONPATH": f"{upgraded}{os.pathsep}{env.get('PYTHONPATH', '')}"}
    dry = subprocess.run([*cmd, "-n"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert "Params have changed since last execution" in dry.stdout + dry.stderr
    subprocess.run(cmd, cwd=tmp_path, env=env, check=True, capture_output=True)
    for cohort in "ABC":
        marker = json.loads(lake.silver_cohort_marker(cohort).read_text())
        assert marker["full"] and marker["parsed_files"] == 2
    assert silver_versions(lake) == before  # the same rows: nothing to commit
