"""Silver: one job per cohort parses what changed and writes all ten tables.

The job keeps, per table, every row it ever parsed for the cohort (the parse cache under
``_staging/silver/cohort=<c>/``) and, in ``files.json``, what each bundle was parsed from. A
rerun parses only added or changed bundles, drops the rows of changed and removed ones from
the cache, and writes only the rows whose keys can have changed; a cohort's first write is an
append. Row-level checks run on the slice in memory. The patients whose rows changed are
handed to the cohort's Gold job (``_staging/gold/cohort=<c>.pending.arrow``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from fhirhouse import SILVER_TABLES
from fhirhouse.bronze import landing
from fhirhouse.jobs import checking, verify
from fhirhouse.jobs.runlog import now, run_id, write_marker
from fhirhouse.layout import Layout
from fhirhouse.redact import name_key, redact
from fhirhouse.silver.registry import RUN_COLUMNS, spec
from fhirhouse.store import delta
from fhirhouse.store.atomic import read_arrow, read_json, write_arrow_atomic, write_json_atomic

if TYPE_CHECKING:
    from fhirhouse.jobs.parse import ParseIndex, ParsePool

log = logging.getLogger(__name__)


# The parser (fhirhouse.jobs.parse and the FHIR model under it) loads only when a Silver job
# runs: the Gold job imports this module for _pending.
def code_digest() -> str:
    """The digest of the parser's code (:func:`fhirhouse.jobs.parse.code_digest`)."""
    from fhirhouse.jobs import parse

    return parse.code_digest()


PENDING_SCHEMA = pa.schema([("patient_id", pa.string())])


@dataclass
class CohortSilver:
    """What a Silver job leaves in memory for the next step (``fhirhouse run``)."""

    marker: dict[str, Any]
    slices: dict[str, pa.Table]  # the cohort's rows per table, one per key


def _is_in(values: pa.ChunkedArray | pa.Array, members: Sequence[str]) -> pa.Array:
    return pc.is_in(values, value_set=pa.array(list(members), pa.string()))


def dedup_last(rows: pa.Table, key: str) -> pa.Table:
    """One row per ``key``: the one recorded last (later bundle files win; within a file,
    the later entry), whatever the order of ``rows``."""
    if rows.num_rows == 0 or pc.count_distinct(rows.column(key)).as_py() == rows.num_rows:
        return rows
    order = [("source_file", "ascending"), ("source_entry", "ascending")]
    rows = rows.take(pc.sort_indices(rows, order))
    idx = pa.table({"k": rows.column(key), "i": pa.array(range(rows.num_rows), pa.int64())})
    last = idx.group_by("k", use_threads=False).aggregate([("i", "max")]).column("i_max")
    return rows.take(last.take(pc.sort_indices(last)))  # each key's last row, in order


def _read_cache(layout: Layout, cohort: str, code: str) -> tuple[ParseIndex, dict] | None:
    """The cohort's parse index and cached rows, when both are there and current."""
    from fhirhouse.jobs.parse import ParseIndex

    index = ParseIndex.read(layout.parse_index(cohort))
    if index is None or index.code != code:
        return None
    try:
        cache = {t: read_arrow(layout.staged(cohort, t)) for t in SILVER_TABLES}
    except (OSError, pa.ArrowInvalid):
        return None
    if any(cache[t].schema != spec(t).schema for t in SILVER_TABLES):
        return None
    return index, cache


def _pending(layout: Layout, cohort: str) -> tuple[bool, set[str]] | None:
    """(all patients?, patients) still due for the cohort's Gold; ``None``: nothing due."""
    path = layout.gold_pending(cohort)
    if not path.exists():
        return None
    table = read_arrow(path)
    meta = table.schema.metadata or {}
    return meta.get(b"all") == b"true", set(table.column("patient_id").to_pylist())


def write_pending(layout: Layout, cohort: str, patients: set[str] | None) -> None:
    """Add ``patients`` (``None``: all) to what the cohort's Gold job must recompute."""
    due = _pending(layout, cohort)
    everyone = patients is None or (due is not None and due[0])
    ids = set() if everyone else (patients or set()) | (due[1] if due else set())
    schema = PENDING_SCHEMA.with_metadata({"all": "true" if everyone else "false"})
    write_arrow_atomic(
        layout.gold_pending(cohort), pa.table({"patient_id": sorted(ids)}, schema=schema)
    )


def _quarantine(
    layout: Layout, cohort: str, kept: Sequence[str], new: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The cohort's quarantine list: earlier entries of unchanged files, plus ``new``."""
    path = layout.quarantine(cohort)
    refs = {redact(n) for n in kept}
    try:
        old = read_json(path).get("entries", []) if path.exists() else []
    except ValueError:
        old = []
    entries = [e for e in old if e.get("file_ref") in refs] + new
    write_json_atomic(path, {"cohort": cohort, "checked_at": now(), "entries": entries})
    return entries


def _log_write(table: str, result: delta.WriteResult, how: str = "") -> None:
    log.info(
        "silver.%s cohort %s%s: %d rows (+%d ~%d -%d), version %d",
        table,
        result.cohort,
        how,
        result.rows,
        result.inserted,
        result.updated,
        result.deleted,
        result.delta_version,
    )


def silver_job(
    layout: Layout,
    cohort: str,
    *,
    workers: int = 1,
    pool: ParsePool | None = None,
    policy: str | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    check_outputs: Mapping[str, str | Path] | None = None,
    check_markdown: str | Path | None = None,
    marker: str | Path | None = None,
    damage: str | Path | None = None,
) -> CohortSilver:
    """Bring the cohort's slice of every Silver table up to date with its Bronze files.

    The bundles to parse go to up to ``workers`` processes (``pool``'s, when given).
    ``damage``: the cohort's damage state file (:mod:`fhirhouse.jobs.verify`); a table it
    lists, or that no longer bears out the cohort's marker, is compared whole."""
    from fhirhouse.jobs.parse import FileState, ParseIndex, file_states, parse_paths

    started = time.monotonic()
    files = landing.cohort_files(layout, cohort)
    if not files:
        raise FileNotFoundError(f"cohort {cohort} has no bundle files")
    states = file_states(files, landing.cohort_dicom_files(layout, files))
    code = code_digest()
    cached = _read_cache(layout, cohort, code)
    full = cached is None
    index, cache = cached if cached else (ParseIndex(code), {})

    kept: list[str] = []
    to_read = []
    for p in files:
        old = index.files.get(name_key(p.name))
        if old is not None and old.same_stat(states[p.name]):
            kept.append(p.name)
        else:
            to_read.append(p)
    ingest_ts = dt.datetime.now(dt.UTC)
    parsed = parse_paths(
        cohort,
        to_read,
        [states[p.name].size for p in to_read],
        layout.dicom,
        ingest_ts,
        workers,
        pool,
    )
    new_index = ParseIndex(code, {name_key(n): index.files[name_key(n)] for n in kept})
    same: list[str] = []  # read again, but the same bytes and DICOM files as last time
    for p in to_read:
        st, digest = states[p.name], parsed.digests[p.name]
        old = index.files.get(name_key(p.name))
        if old is not None and old.digest == digest and old.dicom == st.dicom:
            same.append(p.name)
        new_index.files[name_key(p.name)] = FileState(st.size, st.mtime_ns, st.dicom, digest)
    unchanged = kept + same
    changed_files = len(to_read) - len(same)

    rows: dict[str, pa.Table] = {}  # every parsed row of the cohort: the new cache
    slices: dict[str, pa.Table] = {}
    scopes: dict[str, set[str] | None] = {}
    expected: dict[str, int | None] = {}
    changed: set[str] = set()  # tables whose cache changes
    patients: set[str] = set()
    for t in SILVER_TABLES:
        key = spec(t).key
        fresh = parsed.tables[t]
        if same:
            fresh = fresh.filter(pc.invert(_is_in(fresh.column("source_file"), same)))
        if full:
            rows[t], scopes[t], expected[t] = fresh, None, None
            changed.add(t)
            slices[t] = dedup_last(rows[t], key)
            continue
        old = cache[t]
        keep_mask = _is_in(old.column("source_file"), unchanged)
        stale = old.filter(pc.invert(keep_mask))
        before = dedup_last(old, key)
        expected[t] = before.num_rows
        if not stale.num_rows and not fresh.num_rows:
            rows[t], scopes[t], slices[t] = old, set(), before
            continue
        changed.add(t)
        rows[t] = pa.concat_tables([old.filter(keep_mask), fresh])
        scopes[t] = set(stale.column(key).to_pylist()) | set(fresh.column(key).to_pylist())
        slices[t] = dedup_last(rows[t], key)
        # whose rows these keys were before and are now: also another bundle's patient, when a
        # key moved between bundles (a shared id; the later file wins)
        in_scope = sorted(scopes[t])
        for part in (before, slices[t]):
            hits = part.filter(_is_in(part.column(key), in_scope))
            patients |= set(hits.column("patient_id").drop_null().to_pylist())

    # a table that lost what the cohort's marker recorded is compared whole, not trusted
    damaged = set() if full else verify.damaged_tables(layout, cohort, "silver", damage)
    for t in sorted(damaged & set(SILVER_TABLES)):
        log.warning("cohort %s: silver.%s damaged; comparing the whole partition", cohort, t)
        scopes[t], expected[t] = None, None

    # entries of the files read now come from this parse, the others' from the last one
    quarantine = _quarantine(layout, cohort, kept, parsed.quarantine)
    # Gold learns what changed before anything is committed: a crash between the commits
    # and the marker leaves the next Gold run with too much to do, never too little.
    write_pending(layout, cohort, None if full else patients)
    tables: dict[str, dict[str, Any]] = {}
    for t in SILVER_TABLES:
        result = delta.write_cohort_slice(
            layout.silver_table(t),
            slices[t],
            key=spec(t).key,
            cohort=cohort,
            scope=scopes[t],
            expected_rows=expected[t],
            ignore_columns=RUN_COLUMNS,
            metadata={"run_id": run_id(), "rule": "silver", "cohort": cohort},
        )
        tables[t] = {
            k: getattr(result, k)
            for k in ("rows", "inserted", "updated", "deleted", "delta_version", "committed")
        }
        if result.committed:
            _log_write(t, result)
    # The cache follows the tables: written after the commits it describes.
    for t in sorted(changed):
        write_arrow_atomic(layout.staged(cohort, t), rows[t])
    new_index.write(layout.parse_index(cohort))

    results = checking.check_cohort(slices, cohort, overrides)
    checking.write_results(
        results,
        [
            Path(check_outputs[t]) if check_outputs else layout.check_cohort(t, cohort)
            for t in SILVER_TABLES
        ],
        Path(check_markdown) if check_markdown else layout.check_cohort_md(cohort),
    )
    quarantined_files = sum(1 for q in quarantine if q["kind"] == "file")
    elapsed = time.monotonic() - started
    log.info(
        "cohort %s: %d bundles, %d parsed (%d bytes), %d quarantined; %s in %.2f s",
        cohort,
        len(files),
        changed_files,
        parsed.bytes,
        quarantined_files,
        "full build" if full else f"{len(patients)} patients changed",
        elapsed,
    )
    payload = {
        "cohort": cohort,
        "files": len(files),
        "read_files": len(to_read),
        "parsed_files": changed_files,
        "parsed_bytes": parsed.bytes,
        "full": full,
        "quarantined_files": quarantined_files,
        "quarantined_resources": sum(1 for q in quarantine if q["kind"] == "resource"),
        "null_coerced_values": sum(q["count"] for q in quarantine if q["kind"] == "value"),
        "duplicate_ids": sum(1 for q in quarantine if q["kind"] == "duplicate"),
        "tables": tables,
        "checks_passed": all(r.passed for r in results),
        "seconds": round(elapsed, 3),
    }
    checking.enforce(results, policy)
    out = write_marker(marker or layout.silver_cohort_marker(cohort), "silver", payload)
    return CohortSilver(out, slices)


def silver_table_job(
    layout: Layout, cohort: str, table: str, marker: str | Path | None = None
) -> dict[str, Any]:
    """Rewrite one table's cohort partition from the parse cache (no bundle is read): the
    partition ends up holding exactly the cohort's cached rows."""
    staged = layout.staged(cohort, table)
    if not staged.exists():
        raise FileNotFoundError(
            f"no parse cache for cohort {cohort}; build the cohort's Silver first"
        )
    key = spec(table).key
    data = dedup_last(read_arrow(staged), key)
    result = delta.write_cohort_slice(
        layout.silver_table(table),
        data,
        key=key,
        cohort=cohort,
        ignore_columns=RUN_COLUMNS,
        metadata={"run_id": run_id(), "rule": "silver_table", "cohort": cohort},
    )
    _log_write(table, result, " (rewritten from the parse cache)")
    payload = {"table": table, **result.to_dict()}
    return write_marker(marker or layout.silver_marker(table, cohort), "silver", payload)


def silver_cohorts(layout: Layout) -> list[str]:
    """Cohorts present in Silver (partitions of the encounter table)."""
    return delta.partition_values(layout.silver_table("encounter"))
