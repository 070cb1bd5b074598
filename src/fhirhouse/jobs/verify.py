"""Markers are checked against the tables before they are trusted.

A cohort's Silver marker records, per table, the Delta version its write left and the rows
of the cohort's partition; its Gold marker the Gold version and the cohort's Gold rows. A
marker is *damaged* when the table no longer holds what it recorded:

- cheap, on every workflow invocation (one listing of each table's ``_delta_log``): the
  version a marker committed is no longer in the log (a lost or deleted commit), or the
  table is older than the marker;
- deep, when a table has commits no marker accounts for (a rollback, maintenance, a writer
  outside fhirhouse), and always for ``fhirhouse status``: each cohort's row count, from
  Delta's file statistics, against the marker (Gold: the table against the sum of its
  cohort markers). A table found sound at its latest version is remembered
  (``_markers/_verified.json``), so the deep check runs once per such version.

The workflow makes a damaged cohort's Silver or Gold job rerun through a small state file
per cohort and layer (:func:`sync_damage_file`); the jobs then compare whole what the
marker vouched for instead of trusting it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fhirhouse.layout import Layout
from fhirhouse.store.atomic import read_json_if_valid, write_json_atomic
from fhirhouse.store.delta_log import LogState, log_state

GOLD = "gold"


@dataclass(frozen=True)
class Damage:
    layer: str  # "silver" or "gold"
    cohort: str
    table: str  # a Silver table name, or "gold"
    detail: str

    @property
    def what(self) -> str:
        """The table and what is wrong with it, e.g. ``silver.observation lost ...``."""
        name = self.table if self.table == GOLD else f"silver.{self.table}"
        return f"{name} {self.detail}"

    def __str__(self) -> str:
        return f"cohort {self.cohort}: {self.what}"


@dataclass(frozen=True)
class _Record:
    layer: str
    cohort: str
    table: str
    version: int
    committed: bool
    rows: int


def _records(layout: Layout, cohort: str) -> list[_Record]:
    """What the cohort's markers recorded of each table (an on-demand rewrite of one
    table, when newer than the cohort's Silver marker, speaks for that table)."""
    out = []
    silver = read_json_if_valid(layout.silver_cohort_marker(cohort))
    if silver:
        for table, t in (silver.get("tables") or {}).items():
            one = read_json_if_valid(layout.silver_marker(table, cohort))
            if one and one.get("written_at", "") > silver.get("written_at", ""):
                t = one
            out.append(
                _Record("silver", cohort, table, t["delta_version"], t["committed"], t["rows"])
            )
    gold = read_json_if_valid(layout.gold_marker(cohort))
    if gold and "delta_version" in gold:
        out.append(
            _Record(GOLD, cohort, GOLD, gold["delta_version"], gold["committed"], gold["rows"])
        )
    return out


def recorded_rows(layout: Layout, cohorts: Sequence[str]) -> dict[str, int]:
    """The rows of each table the markers of ``cohorts`` add up to (``"gold"``: Gold)."""
    rows: dict[str, int] = {}
    for r in (r for c in cohorts for r in _records(layout, c)):
        rows[r.table] = rows.get(r.table, 0) + r.rows
    return rows


def _verified_path(layout: Layout) -> Path:
    return layout.markers / "_verified.json"


def _version_damage(rec: _Record, state: LogState | None) -> str | None:
    if state is None:
        return "is gone" if rec.committed or rec.rows else None
    if rec.committed and not state.has(rec.version):
        return f"lost the commit of version {rec.version} (the log ends at {state.latest})"
    if state.latest < rec.version:
        return f"is at version {state.latest}, older than the version {rec.version} recorded"
    return None


def _row_damage(layout: Layout, table: str, records: list[_Record]) -> list[Damage]:
    """Row counts against the markers (reads Delta's file statistics)."""
    from fhirhouse.store import delta

    path = layout.table(table)
    if table == GOLD:
        now = delta.table_rows(path) if delta.is_table(path) else 0
        recorded = sum(r.rows for r in records)
        if now == recorded:
            return []
        detail = f"holds {now:,} rows where its cohorts' markers add up to {recorded:,}"
        return [Damage(GOLD, r.cohort, GOLD, detail) for r in records]
    per_cohort = delta.partition_rows(delta.open_table(path)) if delta.is_table(path) else {}
    return [
        Damage(r.layer, r.cohort, table, f"holds {n:,} rows where {r.rows:,} were written")
        for r in records
        if (n := per_cohort.get(r.cohort, 0)) != r.rows
    ]


def _marked_cohorts(layout: Layout) -> set[str]:
    """Every cohort with a Silver or Gold marker."""
    return {c for layer in ("silver", GOLD) for c in layout.cohort_markers(layer)}


def find_damage(
    layout: Layout, cohorts: Sequence[str], *, deep: bool = False, remember: bool = True
) -> list[Damage]:
    """Every marker of ``cohorts`` that its table no longer bears out (see the module).
    ``deep``: count rows of every table; ``remember``: note the tables found sound.

    Whether a table's commits are accounted for, and Gold's row total, are judged against
    the markers of every cohort, whichever ``cohorts`` are asked about."""
    wanted = set(cohorts)
    records = [r for c in sorted(_marked_cohorts(layout) | wanted) for r in _records(layout, c)]
    tables = sorted({r.table for r in records if r.cohort in wanted})
    states = {t: log_state(layout.table(t)) for t in tables}
    found = []
    for r in records:
        detail = _version_damage(r, states[r.table]) if r.table in states else None
        if detail:
            found.append(Damage(r.layer, r.cohort, r.table, detail))
    verified = read_json_if_valid(_verified_path(layout)) or {}
    sound = {}
    for t in tables:
        state = states[t]
        if state is None or any(d.table == t and d.cohort in wanted for d in found):
            continue
        every = [r for r in records if r.table == t]
        if t == GOLD and {r.cohort for r in records if r.layer == "silver"} - {
            r.cohort for r in every
        }:
            continue  # a cohort's Gold rows are under way or failed: no total to compare
        explained = state.latest <= max(r.version for r in every)
        if not deep and (explained or verified.get(t) == state.latest):
            continue
        rows = _row_damage(layout, t, every)
        found += rows
        if not rows:
            sound[t] = state.latest
    if remember and any(verified.get(t) != v for t, v in sound.items()):
        write_json_atomic(_verified_path(layout), {**verified, **sound})
    return [d for d in found if d.cohort in wanted]


def sync_damage_file(path: str | Path, found: Iterable[Damage]) -> Path:
    """The state file a cohort's job depends on for damage: what the tables no longer bear
    out of the cohort's marker (table, and what is wrong). Rewritten with a new modification
    time, so that the job reruns, when it did not list this damage yet; when the damage is
    gone, rewritten with the modification time it had (a new file gets time 0), so that a
    clean file never makes a job rerun and the same damage coming back is seen again."""
    path = Path(path)
    listed = sorted(({"table": d.table, "detail": str(d)} for d in found), key=str)
    current = read_json_if_valid(path)
    if current is not None and current.get("damage") == listed:
        return path
    before = path.stat().st_mtime_ns if current is not None else 0
    write_json_atomic(path, {"damage": listed})
    if not listed:
        os.utime(path, ns=(before, before))
    return path


def damaged_tables(
    layout: Layout, cohort: str, layer: str, damage: str | Path | None = None
) -> set[str]:
    """The tables a cohort's ``layer`` job must compare whole instead of trusting its
    marker: those its damage state file ``damage`` lists, and those the check finds now
    (it finds nothing once Snakemake has removed the job's old marker, hence the file)."""
    found = {d.table for d in find_damage(layout, [cohort]) if d.layer == layer}
    return found | listed_damage(damage)


def listed_damage(path: str | Path | None) -> set[str]:
    """The tables a damage state file lists (none without a file). A job reads it because
    Snakemake removes the job's old marker before the job starts."""
    current = read_json_if_valid(Path(path)) if path else None
    return {d["table"] for d in (current or {}).get("damage", []) if isinstance(d, dict)}
