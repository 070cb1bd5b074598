"""Delta table maintenance (compaction, checkpoint, vacuum) and time travel (history, restore).

All of it is delta-rs's own operations; this module only sequences them, retries a commit
that lost a race with a writer of another invocation, and reports what changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError

from fhirhouse import PARTITION_COLUMN
from fhirhouse.store.objects import delta_storage_options

log = logging.getLogger(__name__)

META_PREFIX = "fhirhouse."


def open_table(path: object, version: int | None = None) -> DeltaTable:
    """The Delta table at ``path`` (a local path or an ``s3://`` URI), at ``version`` if given."""
    return DeltaTable(str(path), version=version, storage_options=delta_storage_options(path))


def table_name(path: object) -> str:
    """The last part of a table's path or URI (``patient``, ``encounter_summary``)."""
    return str(path).rstrip("/").rsplit("/", 1)[-1]


def commit_properties(metadata: Mapping[str, Any] | None) -> CommitProperties | None:
    """Commit metadata (run id, rule, cohort) under ``fhirhouse.*`` keys, for ``history``."""
    if not metadata:
        return None
    return CommitProperties(
        custom_metadata={f"{META_PREFIX}{k}": str(v) for k, v in metadata.items() if v is not None}
    )


@dataclass
class Maintained:
    table: str
    version_before: int
    version_after: int
    rows: int
    files_before: int
    files_after: int
    files_compacted: int
    files_vacuumed: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rows(table: DeltaTable) -> int:
    return table.to_pyarrow_dataset().count_rows()


def maintain(
    path: object,
    *,
    retention_hours: float,
    metadata: Mapping[str, Any] | None = None,
    retries: int = 5,
) -> Maintained:
    """Compact small files, write a checkpoint, then delete files that no version newer than
    ``retention_hours`` still needs. Rows and the current version's content do not change;
    versions older than the retention can no longer be read (or restored) afterwards."""
    started = time.monotonic()
    table = open_table(path)
    before_version, files_before, rows = table.version(), len(table.file_uris()), _rows(table)
    compacted = 0
    for attempt in range(retries + 1):
        try:
            metrics = table.optimize.compact(commit_properties=commit_properties(metadata))
            compacted = int(metrics.get("numFilesRemoved", 0))
            break
        except CommitFailedError as exc:
            if attempt == retries:
                raise
            log.info("compaction lost a commit race (%s); retrying", type(exc).__name__)
            time.sleep(0.2 * (attempt + 1))
            table.update_incremental()
    table.create_checkpoint()
    vacuumed = table.vacuum(
        retention_hours=int(retention_hours),
        enforce_retention_duration=False,
        dry_run=False,
        commit_properties=commit_properties(metadata),
    )
    table.cleanup_metadata()
    table.update_incremental()
    return Maintained(
        table=table_name(path),
        version_before=before_version,
        version_after=table.version(),
        rows=rows,
        files_before=files_before,
        files_after=len(table.file_uris()),
        files_compacted=compacted,
        files_vacuumed=len(vacuumed),
        seconds=round(time.monotonic() - started, 3),
    )


def history(path: object, limit: int | None = None) -> list[dict[str, Any]]:
    """One dict per version, newest first: version, time, operation, the fhirhouse run/rule/
    cohort that wrote it (when it was fhirhouse) and the rows it inserted/updated/deleted."""
    out = []
    for h in open_table(path).history(limit):
        metrics = h.get("operationMetrics") or {}
        out.append(
            {
                "version": h.get("version"),
                "timestamp": h.get("timestamp"),
                "operation": h.get("operation"),
                "run_id": h.get(f"{META_PREFIX}run_id"),
                "rule": h.get(f"{META_PREFIX}rule"),
                "cohort": h.get(f"{META_PREFIX}cohort"),
                "inserted": metrics.get("num_target_rows_inserted", metrics.get("num_added_rows")),
                "updated": metrics.get("num_target_rows_updated"),
                "deleted": metrics.get("num_target_rows_deleted"),
            }
        )
    return out


def partition_files(table: DeltaTable, column: str = PARTITION_COLUMN) -> dict[str, set[str]]:
    """Data file paths by partition value (``""`` for an unpartitioned table)."""
    out: dict[str, set[str]] = {}
    for uri in table.file_uris():
        value = ""
        for part in uri.split("/")[:-1]:
            if part.startswith(f"{column}="):
                value = part.split("=", 1)[1]
        out.setdefault(value, set()).add(uri)
    return out


def restore(
    path: object, version: int, metadata: Mapping[str, Any] | None = None
) -> tuple[int, list[str]]:
    """Make ``version`` the table's current content (as a new version); return the new
    version and the partition values whose files differ from what was current before."""
    table = open_table(path)
    if not 0 <= version < table.version():
        raise ValueError(
            f"{table_name(path)}: version {version} is not an earlier version "
            f"(current is {table.version()})"
        )
    before = partition_files(table)
    target = partition_files(open_table(path, version))
    table.restore(version, commit_properties=commit_properties(metadata))
    table.update_incremental()
    changed = sorted(k for k in before.keys() | target.keys() if before.get(k) != target.get(k))
    return table.version(), changed
