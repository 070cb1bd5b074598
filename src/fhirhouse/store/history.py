"""Append-only Delta tables for operations: the run history and the ingest log (paths:
:class:`fhirhouse.layout.Layout`).

Appends never conflict with each other in Delta (blind appends), so every job can write its
own row. Rows carry counts, rule names, cohort labels and versions, never identifiers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from fhirhouse import faults
from fhirhouse.store.delta import CDF, ensure_table, is_table

log = logging.getLogger(__name__)

RUN_HISTORY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("rule", pa.string()),
        ("cohort", pa.string()),
        ("tables", pa.list_(pa.string())),
        ("rows_written", pa.int64()),
        ("delta_versions", pa.string()),  # JSON object: table -> version
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.float64()),
        ("status", pa.string()),  # success | failed
        ("code_version", pa.string()),
        ("message", pa.string()),
    ]
)

INGEST_LOG_SCHEMA = pa.schema(
    [
        ("table", pa.string()),
        ("row_count", pa.int64()),
        ("passed", pa.bool_()),
        ("failed_checks", pa.string()),
        ("ingest_timestamp", pa.timestamp("us", tz="UTC")),
    ]
)


def append(path: str | Path, table: pa.Table, schema: pa.Schema, retries: int = 5) -> None:
    """Append rows to a Delta table (created with CDF on when missing)."""
    data = table.select(schema.names).cast(schema)
    for attempt in range(retries + 1):
        try:
            ensure_table(path, schema, [])
            faults.point("history.before_append")
            write_deltalake(str(path), data, mode="append", configuration=CDF)
            return
        except (CommitFailedError, DeltaError) as exc:
            if attempt == retries:
                raise
            log.info("append retried (%s)", type(exc).__name__)
            time.sleep(0.05 * (attempt + 1))


def record_run(
    path: str | Path,
    *,
    run_id: str,
    rule: str,
    cohort: str | None,
    started_at: dt.datetime,
    duration_s: float,
    status: str,
    code_version: str,
    tables: list[str] | None = None,
    rows_written: int | None = None,
    delta_versions: Mapping[str, Any] | None = None,
    message: str = "",
) -> None:
    row = {
        "run_id": [run_id],
        "rule": [rule],
        "cohort": [cohort],
        "tables": [tables or []],
        "rows_written": [rows_written],
        "delta_versions": [json.dumps(dict(delta_versions or {}), sort_keys=True)],
        "started_at": [started_at],
        "duration_s": [round(duration_s, 3)],
        "status": [status],
        "code_version": [code_version],
        "message": [message],
    }
    append(path, pa.table(row, schema=RUN_HISTORY_SCHEMA), RUN_HISTORY_SCHEMA)


def read_run_history(path: str | Path) -> pl.DataFrame:
    """All rows of the run history at ``path`` (an empty frame with the schema when none)."""
    if not is_table(path):
        return pl.from_arrow(RUN_HISTORY_SCHEMA.empty_table())
    return pl.read_delta(str(path))
