"""Gold: one job per cohort recomputes the Gold rows of the patients whose Silver changed.

The cohort's Silver job lists those patients (``_staging/gold/cohort=<c>.pending.arrow``).
With a list, only their encounters are rebuilt and compared with Gold; with "all of them"
(the cohort's first build, a changed parser) or no list at all (the job was asked for
without a Silver change, e.g. ``--forcerun gold``) the whole cohort is. A cohort's first
rows are appended; later changes are one MERGE of the changed keys, so Change Data Feed
shows exactly what changed. The Gold checks run on the rows written, and their numbers are
kept per cohort (``_staging/gold/cohort=<c>.json``) so that a partial rebuild updates them;
they are marked in doubt while a commit is under way, so that after a crash the next run
recomputes the whole cohort.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from fhirhouse import PARTITION_COLUMN, SILVER_TABLES, digest
from fhirhouse.checks.validate import combine_gold_counts, gold_counts, gold_result
from fhirhouse.gold import encounter_summary as gold
from fhirhouse.gold.manifest import add_partials, corpus_partials
from fhirhouse.jobs import checking, verify
from fhirhouse.jobs.runlog import run_id, write_marker
from fhirhouse.jobs.silver import _pending
from fhirhouse.layout import Layout
from fhirhouse.store import delta
from fhirhouse.store.atomic import read_json, write_json_atomic
from fhirhouse.store.delta_log import silver_versions

log = logging.getLogger(__name__)

#: Gold is one unpartitioned table written by every cohort's job: MERGEs of cohorts that
#: change at the same time conflict, and each retry re-reads and re-compares its rows.
GOLD_RETRIES = 10


def code_digest() -> str:
    """The digest of the Gold transform's code: a change rebuilds every cohort."""
    return digest.source_digest(*digest.GOLD_PACKAGES)


def _silver_rows(
    layout: Layout,
    cohort: str,
    patients: list[str] | None,
    slices: Mapping[str, pa.Table] | None,
) -> dict[str, pl.DataFrame]:
    """The Silver columns Gold reads, for the cohort (only ``patients`` when given)."""
    out = {}
    for t in SILVER_TABLES:
        columns = list(dict.fromkeys([*gold.SILVER_COLUMNS[t], "patient_id"]))
        if slices is not None:
            frame = pl.from_arrow(slices[t].select(columns)).lazy()
        else:
            frame = delta.scan(layout.silver_table(t)).filter(pl.col(PARTITION_COLUMN) == cohort)
            frame = frame.select(columns)
        if patients is not None:
            frame = frame.filter(pl.col("patient_id").is_in(patients))
        out[t] = frame.collect()
    return out


def _gold_keys(layout: Layout) -> set[str]:
    if not delta.is_table(layout.gold_table):
        return set()
    return set(delta.read_table(layout.gold_table, [gold.KEY]).column(gold.KEY).to_pylist())


def _silver_encounters(layout: Layout, other_than: str | None = None) -> set[str]:
    path = layout.silver_table("encounter")
    if not delta.is_table(path):
        return set()
    frame = delta.scan(path)
    if other_than is not None:
        frame = frame.filter(pl.col(PARTITION_COLUMN) != other_than)
    return set(frame.select(gold.KEY).collect().to_series().to_list())


def _damaged(layout: Layout, cohort: str, damage: str | Path | None) -> bool:
    damaged = bool(verify.damaged_tables(layout, cohort, verify.GOLD, damage))
    if damaged:
        log.warning("cohort %s: gold damaged; recomputing the whole cohort", cohort)
    return damaged


def gold_job(
    layout: Layout,
    cohort: str,
    *,
    policy: str | None = None,
    max_age: int | None = None,
    slices: Mapping[str, pa.Table] | None = None,
    check_output: str | Path | None = None,
    check_markdown: str | Path | None = None,
    marker: str | Path | None = None,
    damage: str | Path | None = None,
) -> dict[str, Any]:
    """Bring the cohort's Gold rows up to date with its Silver rows, then check them.
    ``damage``: the cohort's damage state file; when it lists damage, or Gold no longer
    bears out the cohort's marker, the whole cohort is recomputed.

    ``slices``: the cohort's Silver rows when the caller has them in memory (``fhirhouse
    run``); otherwise they are read from the Silver tables. Rows of other cohorts are left
    untouched; rows of the cohort's patients whose encounter is gone are deleted; unchanged
    rows keep their ``created_timestamp`` and ``silver_versions``. ``policy`` and
    ``max_age`` left out: the config schema's defaults.
    """
    from fhirhouse.gold.contract import invalid_row_count

    if max_age is None:
        from fhirhouse.config import schema_default

        max_age = schema_default("checks", "gold", "max_age")

    started = time.monotonic()
    code = code_digest()
    state_path = layout.gold_state(cohort)
    state = read_json(state_path) if state_path.exists() else None
    due = _pending(layout, cohort)
    full = (
        due is None
        or due[0]
        or state is None
        or state.get("code") != code
        or "partials" not in state
        or state.get("dirty", False)  # a commit was under way: its numbers are unknown
        or _damaged(layout, cohort, damage)  # Gold no longer holds what its marker recorded
    )
    patients = None if full else sorted(due[1])  # type: ignore[index]

    if state is not None:  # until the new numbers are written, the old ones are in doubt
        write_json_atomic(state_path, {**state, "dirty": True})
    versions = silver_versions(layout)
    if full or patients:
        silver = _silver_rows(layout, cohort, patients, slices)
        rows = gold.build_encounter_summary(silver, dt.datetime.now(dt.UTC), versions)
    else:  # Silver ran and changed nothing
        rows = gold.GOLD_SCHEMA.empty_table()
    path = layout.gold_table
    meta = {"run_id": run_id(), "rule": "gold", "cohort": cohort}
    olds: list[pa.Table] = []

    if full:
        existing = _gold_keys(layout)  # before Silver: a key seen here is in Silver, or gone
        orphans = sorted(existing - _silver_encounters(layout)) if existing else []
        new_keys = set(rows.column(gold.KEY).to_pylist())
        if not orphans and not (existing & new_keys):
            version = delta.append_rows(path, rows, metadata=meta)
            merged = delta.MergeCounts(inserted=rows.num_rows, committed=rows.num_rows > 0)
        else:
            merged = delta.upsert_keys(
                path,
                rows,
                key=gold.KEY,
                delete_keys=orphans,
                ignore_columns=gold.RUN_COLUMNS,
                retries=GOLD_RETRIES,
                metadata=meta,
            )
            version = delta.table_version(path)
        counts = gold_counts(rows, max_age=max_age, invalid_rows=invalid_row_count)
        partials = corpus_partials(rows)
    else:
        elsewhere = _silver_encounters(layout, other_than=cohort)

        def read_old(table: Any) -> pa.Table:
            """The Gold rows of the patients, except encounters another cohort now holds."""
            old = (
                delta.scan(path, version=table.version())
                .filter(pl.col("patient_id").is_in(patients))
                .filter(~pl.col(gold.KEY).is_in(sorted(elsewhere)))
                .collect()
                .to_arrow()
            )
            olds.append(old)
            return old

        merged = (
            delta.merge_rows(
                path,
                rows,
                key=gold.KEY,
                read_old=read_old,
                ignore_columns=gold.RUN_COLUMNS,
                retries=GOLD_RETRIES,
                metadata=meta,
            )
            if patients
            else delta.MergeCounts()
        )
        version = delta.table_version(path)
        old = olds[-1] if olds else gold.GOLD_SCHEMA.empty_table()
        counts = combine_gold_counts(
            state["counts"],
            gold_counts(old, max_age=max_age, invalid_rows=invalid_row_count),
            gold_counts(rows, max_age=max_age, invalid_rows=invalid_row_count),
        )
        partials = add_partials(
            state["partials"], corpus_partials(rows), minus=corpus_partials(old)
        )

    write_json_atomic(state_path, {"code": code, "counts": counts, "partials": partials})
    layout.gold_pending(cohort).unlink(missing_ok=True)
    elapsed = time.monotonic() - started
    log.info(
        "gold cohort %s: %d rows recomputed (%s) (+%d ~%d -%d), version %s in %.2f s",
        cohort,
        rows.num_rows,
        "whole cohort" if full else f"{len(patients or [])} patients",
        merged.inserted,
        merged.updated,
        merged.deleted,
        version,
        elapsed,
    )
    if slices is not None:
        encounters = slices["encounter"].num_rows
    else:
        silver_marker = read_json(layout.silver_cohort_marker(cohort))
        encounters = silver_marker["tables"]["encounter"]["rows"]
    result = gold_result(counts, cohort, encounters, max_age=max_age)
    checking.write_results(
        [result],
        [Path(check_output) if check_output else layout.check_gold(cohort)],
        Path(check_markdown) if check_markdown else layout.check_gold_md(cohort),
    )
    payload = {
        "cohort": cohort,
        "rows": counts["rows"],
        "recomputed": rows.num_rows,
        "full": full,
        "inserted": merged.inserted,
        "updated": merged.updated,
        "deleted": merged.deleted,
        "committed": merged.committed,
        "delta_version": version,
        "silver_versions": versions,
        "contract_version": gold.CONTRACT_VERSION,
        "checks_passed": result.passed,
        "seconds": round(elapsed, 3),
    }
    checking.enforce([result], policy)
    return write_marker(marker or layout.gold_marker(cohort), "gold", payload)
