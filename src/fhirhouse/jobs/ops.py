"""Operations on the tables themselves: maintenance (compact, checkpoint, vacuum) and
rollback to an earlier Delta version."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fhirhouse import SILVER_TABLES
from fhirhouse.jobs.runlog import now, run_id, write_marker
from fhirhouse.layout import TABLES, Layout
from fhirhouse.store.atomic import read_json, write_json_atomic

log = logging.getLogger(__name__)


def table_names() -> list[str]:
    """Every table ``maintain``, ``history`` and ``rollback`` know: the ten Silver tables,
    ``gold`` (gold.encounter_summary) and the two operations tables."""
    return list(TABLES)


def maintain_job(
    layout: Layout,
    tables: list[str] | None = None,
    *,
    retention_hours: float | None = None,
    marker: str | Path | None = None,
) -> dict[str, Any]:
    """Compact, checkpoint and vacuum each table (all of them by default).

    Rows do not change and markers are not touched, so a later build stays incremental.
    Versions older than ``retention_hours`` (default: the config schema's) can no longer be
    read or restored afterwards.
    """
    from fhirhouse.config import schema_default
    from fhirhouse.store import delta, maintenance

    if retention_hours is None:
        retention_hours = schema_default("maintenance", "retention_hours")

    done = []
    for name in tables or table_names():
        path = layout.table(name)
        if not delta.is_table(path):
            log.info("maintain %s: no table yet, skipped", name)
            continue
        result = maintenance.maintain(
            path,
            retention_hours=retention_hours,
            metadata={"run_id": run_id(), "rule": f"maintain_{name}"},
        )
        log.info(
            "maintain %s: %d -> %d files (%d compacted, %d vacuumed), %d rows, "
            "version %d -> %d, %.2f s",
            name,
            result.files_before,
            result.files_after,
            result.files_compacted,
            result.files_vacuumed,
            result.rows,
            result.version_before,
            result.version_after,
            result.seconds,
        )
        done.append({**result.to_dict(), "table": name})
    payload = {"retention_hours": retention_hours, "tables": done}
    if marker is not None:
        write_marker(marker, "maintenance", payload)
    return payload


def maintenance_summary(markers: list[str | Path], out: str | Path) -> dict[str, Any]:
    """One file listing what the last maintenance did to each table."""
    tables = [t for m in markers for t in read_json(m).get("tables", [])]
    summary = {"maintained_at": now(), "tables": tables}
    write_json_atomic(out, summary)
    log.info("maintenance: %d tables", len(tables))
    return summary


def rollback_job(layout: Layout, name: str, version: int) -> dict[str, Any]:
    """Restore one table to an earlier version, then drop what the restore made untrue, so
    the next build redoes exactly those jobs from the current Bronze.

    A Silver table: the Silver markers and parse caches of the cohorts whose partition
    changed (their next build re-parses them and rewrites what differs). Gold: every
    cohort's Gold marker and Gold state (Gold has no cohort column), and the corpus manifest
    is rewritten at once, so it describes the Gold version consumers now read.
    """
    from fhirhouse.jobs.corpus import gold_manifest_job
    from fhirhouse.store import delta, maintenance

    path = layout.table(name)
    if not delta.is_table(path):
        raise FileNotFoundError(f"no table {name!r} under {layout.root}")
    new_version, changed = maintenance.restore(
        path, version, metadata={"run_id": run_id(), "rule": f"rollback_{name}"}
    )
    dropped: list[Path] = []
    if name in SILVER_TABLES:
        cohorts = [c for c in changed if c]
        dropped = [layout.silver_cohort_marker(c) for c in cohorts]
        for c in cohorts:
            layout.parse_index(c).unlink(missing_ok=True)
    elif name == "gold":
        dropped = list(layout.cohort_markers("gold").values())
        for state in layout.gold_states().values():
            state.unlink()  # the next Gold job of each cohort recomputes it whole
    for p in dropped:
        p.unlink(missing_ok=True)
    if name == "gold":
        gold_manifest_job(layout)
    log.info(
        "rolled %s back to version %d (now version %d); cohorts changed: %s",
        name,
        version,
        new_version,
        changed,
    )
    return {
        "table": name,
        "restored_version": version,
        "delta_version": new_version,
        "changed_cohorts": [c for c in changed if c],
        "markers_dropped": [str(p.relative_to(layout.state)) for p in dropped],
    }
