"""Corpus-wide steps: whole-table checks of every Silver table, and the corpus manifest.

Both cost what changed rather than what exists: the whole-table checks add up the numbers
each cohort's Silver job recorded (re-reading only a partition whose numbers are missing or
out of date) and read only the key columns for uniqueness and references; the manifest adds
up each cohort's Gold numbers and takes row counts and versions from Delta's own file
statistics. Where the per-cohort numbers do not add up to the table, Gold is read instead.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from fhirhouse import PARTITION_COLUMN, SILVER_TABLES
from fhirhouse.bronze.landing import list_cohorts
from fhirhouse.checks.validate import (
    TableResult,
    columns_needed,
    ingest_log_table,
    markers_outcome,
    merged_rules,
    row_counts,
    validate_table_parts,
)
from fhirhouse.gold import encounter_summary as gold
from fhirhouse.gold.manifest import build_corpus_manifest
from fhirhouse.jobs import checking
from fhirhouse.jobs.runlog import write_marker
from fhirhouse.jobs.verify import recorded_rows
from fhirhouse.layout import Layout
from fhirhouse.silver.registry import spec
from fhirhouse.store import delta, history
from fhirhouse.store.atomic import read_json_if_valid, write_json_atomic
from fhirhouse.store.delta_log import silver_versions

log = logging.getLogger(__name__)


def _table_result(
    layout: Layout,
    table: str,
    overrides: Mapping[str, Mapping[str, Any]] | None,
    patient_ids: pl.Series | None,
    encounter_ids: pl.Series | None,
    keys: pl.DataFrame,
    today: dt.date,
) -> TableResult:
    """Whole-table checks of one table from its cohorts' recorded numbers."""
    path = layout.silver_table(table)
    rules = merged_rules(table, overrides)
    per_cohort = delta.partition_rows(delta.open_table(path)) if delta.is_table(path) else {}
    parts = []
    for cohort, rows in sorted(per_cohort.items()):
        counts = (read_json_if_valid(layout.check_cohort(table, cohort)) or {}).get("counts")
        if not counts or counts.get("rows") != rows:
            log.info(
                "silver.%s cohort %s: no current numbers; reading the partition", table, cohort
            )
            df = pl.from_arrow(
                delta.read_partition(path, cohort, columns=columns_needed(table, rules))
            )
            counts = row_counts(table, df, rules, today)
        parts.append(counts)
    return validate_table_parts(
        table,
        parts,
        keys,
        overrides,
        patient_ids=patient_ids,
        encounter_ids=encounter_ids,
        today=today,
    )


def _keys(layout: Layout, table: str) -> pl.DataFrame:
    """The key, cohort, patient and encounter columns of a whole table."""
    s = spec(table)
    wanted = [
        c for c in (s.key, PARTITION_COLUMN, "patient_id", "encounter_id") if c in s.schema.names
    ]
    path = layout.silver_table(table)
    if not delta.is_table(path):
        return pl.from_arrow(s.schema.empty_table().select(list(dict.fromkeys(wanted))))
    return delta.scan(path).select(list(dict.fromkeys(wanted))).collect()


def check_tables_job(
    layout: Layout,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    policy: str | None = None,
    outputs: Mapping[str, str | Path] | None = None,
    markdown: str | Path | None = None,
) -> dict[str, Any]:
    """Whole-table checks of every Silver table; appends one ``silver.ingest_log`` row each."""
    today = dt.date.today()
    keys = {t: _keys(layout, t) for t in SILVER_TABLES}
    patient_ids = keys["patient"]["patient_id"]
    encounter_ids = keys["encounter"]["encounter_id"]
    results = [
        _table_result(layout, t, overrides, patient_ids, encounter_ids, keys[t], today)
        for t in SILVER_TABLES
    ]
    recorded = recorded_rows(layout, list_cohorts(layout))
    for r in results:
        r.checks.append(markers_outcome(r.row_count, recorded.get(r.table, 0)))
    checking.write_results(
        results,
        [Path(outputs[t]) if outputs else layout.check_table(t) for t in SILVER_TABLES],
        Path(markdown) if markdown else layout.check_tables_md(),
    )
    history.append(
        layout.ingest_log,
        ingest_log_table(results, dt.datetime.now(dt.UTC)),
        history.INGEST_LOG_SCHEMA,
    )
    checking.enforce(results, policy)
    return {
        "layer": "checks",
        "tables": list(SILVER_TABLES),
        "passed": all(r.passed for r in results),
        "rows_written": len(results),
    }


def gold_manifest_job(
    layout: Layout,
    manifest: str | Path | None = None,
    marker: str | Path | None = None,
) -> dict[str, Any]:
    """Write the corpus manifest for the current Gold and Silver tables."""
    counts = {t: delta.table_rows(layout.silver_table(t)) for t in SILVER_TABLES}
    gold_rows = delta.table_rows(layout.gold_table)
    cohorts = delta.partition_values(layout.silver_table("encounter"))
    states = {c: read_json_if_valid(layout.gold_state(c)) for c in cohorts}
    partials = {c: s["partials"] for c, s in states.items() if s and "partials" in s}
    created = dt.datetime.now(dt.UTC)
    common = {
        "silver_versions": silver_versions(layout),
        "gold_version": delta.table_version(layout.gold_table),
    }
    if len(partials) == len(cohorts) and sum(p["encounters"] for p in partials.values()) == (
        gold_rows
    ):
        doc = build_corpus_manifest(None, counts, created, cohort_partials=partials, **common)
    else:
        log.info("per-cohort Gold numbers do not add up to Gold; reading Gold")
        table = (
            delta.read_table(layout.gold_table)
            if delta.is_table(layout.gold_table)
            else gold.GOLD_SCHEMA.empty_table()
        )
        enc = layout.silver_table("encounter")
        doc = build_corpus_manifest(
            table,
            counts,
            created,
            encounter_cohorts=delta.read_table(enc, ["encounter_id", PARTITION_COLUMN])
            if delta.is_table(enc)
            else None,
            **common,
        )
    write_json_atomic(manifest or layout.corpus_manifest, doc, sort_keys=False)
    log.info(
        "corpus manifest: %d Gold rows, gold version %s",
        doc["row_count"],
        doc["gold_delta_version"],
    )
    payload = {
        "row_count": doc["row_count"],
        "gold_delta_version": doc["gold_delta_version"],
        "contract_version": doc["contract_version"],
        "cohorts": {k: v["row_count"] for k, v in doc.get("cohorts", {}).items()},
    }
    return write_marker(marker or layout.gold_manifest_marker(), "gold", payload)
