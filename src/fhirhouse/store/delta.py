"""The only code that touches Delta tables.

Silver tables are partitioned by ``cohort`` and written one cohort slice at a time
(:func:`write_cohort_slice`): a cohort written for the first time is appended; later writes
MERGE only the rows that changed (inserted, updated, deleted), scoped to the partition by a
literal, so writers of different cohorts never conflict and Change Data Feed shows exactly
what changed. An unchanged slice commits nothing. Commit conflicts that still happen (a
concurrent table creation, say) are retried.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from fhirhouse import PARTITION_COLUMN, faults
from fhirhouse.layout import check_cohort_label
from fhirhouse.store.maintenance import commit_properties, open_table, table_name
from fhirhouse.store.objects import delta_storage_options, is_uri

log = logging.getLogger(__name__)

CDF = {"delta.enableChangeDataFeed": "true"}
_OP = "_fhirhouse_op"


@dataclass
class WriteResult:
    table_path: str
    cohort: str
    rows: int
    inserted: int
    updated: int
    deleted: int
    delta_version: int
    committed: bool

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def is_table(path: object) -> bool:
    return DeltaTable.is_deltatable(str(path), delta_storage_options(path))


def table_version(path: object) -> int | None:
    """The current Delta version, or ``None`` when there is no table."""
    if not is_table(path):
        return None
    return open_table(path).version()


def ensure_table(path: object, schema: pa.Schema, partition_by: list[str]) -> DeltaTable:
    """Open the table, creating it empty (CDF on) when missing; safe against a racing creator.
    A table made before ``schema`` gained a column gets that column (null in its rows)."""
    name = table_name(path)
    for attempt in range(5):
        if is_table(path):
            return _with_columns(open_table(path), schema)
        try:
            if not is_uri(path):
                Path(str(path)).mkdir(parents=True, exist_ok=True)
            table = DeltaTable.create(
                str(path),
                schema,
                mode="ignore",
                partition_by=partition_by,
                configuration=CDF,
                storage_options=delta_storage_options(path),
            )
            faults.point("delta.after_create", name)
            return table
        except (CommitFailedError, DeltaError) as exc:  # another writer created it first
            log.info("table creation raced (%s); retrying (%d)", type(exc).__name__, attempt + 1)
            time.sleep(0.05 * (attempt + 1))
    return open_table(path)


def _with_columns(table: DeltaTable, schema: pa.Schema) -> DeltaTable:
    """Add the columns of ``schema`` that ``table`` lacks (schema evolution, one commit)."""
    from deltalake import Schema

    have = set(table.schema().to_arrow().names)
    missing = [f for f in schema if f.name not in have]
    if missing:
        fields = Schema.from_arrow(pa.schema(missing)).fields
        table.alter.add_columns(fields)
        log.info("%s: added column(s) %s", table_name(table.table_uri), [f.name for f in missing])
        table.update_incremental()
    return table


def read_table(path: object, columns: list[str] | None = None) -> pa.Table:
    return open_table(path).to_pyarrow_table(columns=columns)


def read_partition(
    path: object, value: str, column: str = PARTITION_COLUMN, columns: list[str] | None = None
) -> pa.Table:
    """The rows of one partition of the table at ``path`` (only ``columns`` when given)."""
    return open_table(path).to_pyarrow_table(filters=[(column, "=", value)], columns=columns)


def partition_values(path: object, column: str = PARTITION_COLUMN) -> list[str]:
    """The distinct values of a partition column, sorted; ``[]`` when there is no table."""
    if not is_table(path):
        return []
    return sorted({p[column] for p in open_table(path).partitions() if column in p})


def partition_rows(table: DeltaTable, column: str = PARTITION_COLUMN) -> dict[str, int]:
    """Rows per partition value, from the table's file statistics (no data is read)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    if actions.num_rows == 0:
        return {}
    counts = pl.from_arrow(actions.select([f"partition.{column}", "num_records"]))
    by = counts.group_by(f"partition.{column}").agg(pl.col("num_records").sum())
    return {str(k): int(v) for k, v in by.iter_rows()}


def table_rows(path: object) -> int:
    """Rows of the table at ``path`` from its file statistics; 0 when there is no table."""
    if not is_table(path):
        return 0
    actions = pa.table(open_table(path).get_add_actions(flatten=True))
    return int(pc.sum(actions.column("num_records")).as_py() or 0)


def scan(path: object, version: int | None = None) -> pl.LazyFrame:
    """A Polars scan of the table at ``path`` (local or on a store), at ``version`` if given."""
    return pl.scan_delta(str(path), version=version, storage_options=delta_storage_options(path))


def conform(rows: pa.Table, schema: pa.Schema) -> pa.Table:
    """``rows`` read from a table in ``schema``'s shape: its columns, in its order and types,
    and nulls for a column the table did not have yet (written by an older fhirhouse; the
    next comparison sees those rows as changed, so the write fills the column in)."""
    columns = [
        rows.column(f.name) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def diff_slice(
    old: pa.Table, new: pa.Table, key: str, ignore: Iterable[str] = ()
) -> tuple[pa.Table, int, int, int]:
    """Rows to MERGE for ``old`` -> ``new``, tagged with an op column (I, U, D).

    Returns (changes, inserted, updated, deleted). Columns in ``ignore`` (run metadata) do not
    make a row count as changed.
    """
    ignore = set(ignore)
    n_old, n_new = pl.from_arrow(old), pl.from_arrow(new)
    compare = [c for c in n_new.columns if c != key and c not in ignore]
    old_cmp = n_old.select([key, *compare]).rename({c: f"{c}__old" for c in compare})
    joined = n_new.join(old_cmp.with_columns(pl.lit(True).alias("__in_old")), on=key, how="left")
    in_old = pl.col("__in_old").fill_null(False)
    differs = pl.lit(False)
    for c in compare:
        differs = differs | pl.col(c).ne_missing(pl.col(f"{c}__old"))
    tagged = joined.with_columns(
        pl.when(~in_old).then(pl.lit("I")).when(differs).then(pl.lit("U")).alias(_OP)
    ).filter(pl.col(_OP).is_not_null())
    upserts = tagged.select([*n_new.columns, _OP])
    gone = n_old.join(n_new.select(key), on=key, how="anti").with_columns(pl.lit("D").alias(_OP))
    changes = pl.concat([upserts, gone.select(upserts.columns)], how="vertical")
    counts = changes[_OP].value_counts()
    by_op = dict(zip(counts[_OP].to_list(), counts["count"].to_list(), strict=True))
    schema = pa.schema([*new.schema, pa.field(_OP, pa.string())])
    return (
        changes.to_arrow().cast(schema),
        by_op.get("I", 0),
        by_op.get("U", 0),
        by_op.get("D", 0),
    )


@dataclass
class MergeCounts:
    """What one MERGE changed (all zero and not committed when nothing did)."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    committed: bool = False


def _merge_until_committed(
    table: DeltaTable,
    data: pa.Table,
    key: str,
    read_old: Callable[[DeltaTable], pa.Table],
    ignore_columns: Iterable[str],
    scope: str | None,
    retries: int,
    metadata: Mapping[str, Any] | None = None,
) -> MergeCounts:
    """Diff ``read_old(table)`` -> ``data`` and commit it as one MERGE; retry on conflicts.

    ``scope`` is an extra SQL condition on the target (a partition literal), so that writers
    of different partitions never conflict. On a conflict the old rows are read again and the
    diff recomputed before the next try.
    """
    cols = data.schema.names
    updates = {_q(c): f"s.{_q(c)}" for c in cols}
    predicate = f"t.{_q(key)} = s.{_q(key)}" + (f" AND {scope}" if scope else "")
    for attempt in range(retries + 1):
        table.update_incremental()
        old = conform(read_old(table), data.schema)
        changes, ins, upd, dele = diff_slice(old, data, key, ignore_columns)
        if changes.num_rows == 0:
            return MergeCounts()
        name = table_name(table.table_uri)
        faults.point("delta.before_commit", name)
        try:
            (
                table.merge(
                    changes,
                    predicate,
                    source_alias="s",
                    target_alias="t",
                    merge_schema=True,  # a column added since the table was made
                    commit_properties=commit_properties(metadata),
                )
                .when_matched_delete(predicate=f"s.{_OP} = 'D'")
                .when_matched_update(updates, predicate=f"s.{_OP} = 'U'")
                .when_not_matched_insert(updates, predicate=f"s.{_OP} = 'I'")
                .execute()
            )
            faults.point("delta.after_commit", name)
            return MergeCounts(ins, upd, dele, True)
        except CommitFailedError as exc:
            if attempt == retries:
                raise
            # expected when another invocation writes the same table: retried, not a problem
            log.info(
                "commit conflict (%s); retry %d of %d", type(exc).__name__, attempt + 1, retries
            )
            time.sleep(0.1 * (attempt + 1) * random.uniform(0.5, 1.5))  # out of step
    raise AssertionError("unreachable")


def _append(
    table: DeltaTable, data: pa.Table, metadata: Mapping[str, Any] | None, retries: int = 5
) -> None:
    """One append commit. Appends never conflict with each other, but delta-rs refuses one
    that follows a concurrent MERGE of another partition; nothing was added then, so the
    append is simply made again."""
    name = table_name(table.table_uri)
    for attempt in range(retries + 1):
        faults.point("delta.before_commit", name)
        try:
            write_deltalake(
                table,
                data,
                mode="append",
                schema_mode="merge",  # a column added since the table was made
                commit_properties=commit_properties(metadata),
            )
            break
        except CommitFailedError as exc:
            if attempt == retries:
                raise
            log.info(
                "append conflict (%s); retry %d of %d", type(exc).__name__, attempt + 1, retries
            )
            time.sleep(0.05 * (attempt + 1))
            table.update_incremental()
    faults.point("delta.after_commit", name)


def write_cohort_slice(
    path: object,
    data: pa.Table,
    *,
    key: str,
    cohort: str,
    scope: Collection[str] | None = None,
    expected_rows: int | None = None,
    partition_column: str = PARTITION_COLUMN,
    ignore_columns: Iterable[str] = ("ingest_timestamp",),
    retries: int = 5,
    metadata: Mapping[str, Any] | None = None,
) -> WriteResult:
    """Make the ``cohort`` partition of the table at ``path`` hold exactly ``data``.

    ``scope``: the keys that can have changed since the previous write (all others are known
    to be unchanged), so only their rows are read and compared. It is trusted only while the
    partition still holds ``expected_rows`` rows (what the previous write left); otherwise
    the whole partition is compared, which also repairs a partition changed behind our back.
    An empty partition is appended to; otherwise one MERGE commit inserts new keys, updates
    changed rows and deletes vanished keys; nothing is committed when nothing changed.
    """
    check_cohort_label(cohort)
    table = ensure_table(path, data.schema, [partition_column])
    present = partition_rows(table, partition_column).get(cohort, 0)
    if scope is not None and expected_rows is not None and present != expected_rows:
        log.warning(
            "%s cohort %s holds %d rows where %d were written; comparing the whole partition",
            table_name(path),
            cohort,
            present,
            expected_rows,
        )
        scope = None
    if present == 0:
        merged = MergeCounts()
        if data.num_rows:
            _append(table, data, metadata)
            merged = MergeCounts(inserted=data.num_rows, committed=True)
    elif scope is not None and not scope:
        merged = MergeCounts()
    else:
        keys = None if scope is None else sorted(scope)
        new = data if keys is None else _rows_with_keys(data, key, keys)

        def read_old(t: DeltaTable) -> pa.Table:
            rows = scan(path, version=t.version()).filter(pl.col(partition_column) == cohort)
            if keys is not None:
                rows = rows.filter(pl.col(key).is_in(keys))
            return rows.collect().to_arrow()

        merged = _merge_until_committed(
            table,
            new,
            key,
            read_old,
            ignore_columns,
            f"t.{_q(partition_column)} = '{cohort}'",
            retries,
            metadata,
        )
    if merged.committed:
        table.update_incremental()
    return WriteResult(
        table_path=str(path),
        cohort=cohort,
        rows=data.num_rows,
        inserted=merged.inserted,
        updated=merged.updated,
        deleted=merged.deleted,
        delta_version=table.version(),
        committed=merged.committed,
    )


def append_rows(
    path: object,
    data: pa.Table,
    *,
    partition_by: list[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Append ``data`` (rows whose keys the table does not hold) in one commit; the new
    version. Creates the table when missing."""
    table = ensure_table(path, data.schema, partition_by or [])
    if data.num_rows:
        _append(table, data, metadata)
        table.update_incremental()
    return table.version()


def _rows_with_keys(data: pa.Table, key: str, keys: list[str]) -> pa.Table:
    return data.filter(pc.is_in(data.column(key), value_set=pa.array(keys, pa.string())))


def merge_rows(
    path: object,
    data: pa.Table,
    *,
    key: str,
    read_old: Callable[[DeltaTable], pa.Table],
    ignore_columns: Iterable[str] = (),
    retries: int = 5,
    metadata: Mapping[str, Any] | None = None,
) -> MergeCounts:
    """Make the table's rows ``read_old(table)`` become ``data``: one MERGE of the keys that
    were inserted, changed or deleted (none when nothing changed); ``read_old`` is read again
    after a commit conflict."""
    table = ensure_table(path, data.schema, [])
    return _merge_until_committed(
        table, data, key, read_old, ignore_columns, None, retries, metadata
    )


def upsert_keys(
    path: object,
    data: pa.Table,
    *,
    key: str,
    delete_keys: Iterable[str] = (),
    ignore_columns: Iterable[str] = (),
    retries: int = 5,
    metadata: Mapping[str, Any] | None = None,
) -> MergeCounts:
    """Make the rows of ``data`` current in an unpartitioned table and delete ``delete_keys``.

    Rows with other keys are untouched; unchanged rows (ignoring ``ignore_columns``) are not
    rewritten. One MERGE commit, or none when nothing changed.
    """
    keys = set(data.column(key).to_pylist()) | set(delete_keys)

    def read_old(t: DeltaTable) -> pa.Table:
        if not keys:
            return data.schema.empty_table()
        # Polars' Delta scan prunes by the key and reads the string_view columns delta-rs's
        # MERGE writes; pyarrow's dataset filter fails on them (string vs string_view stats).
        rows = scan(path, version=t.version()).filter(pl.col(key).is_in(sorted(keys)))
        return rows.collect().to_arrow()

    return merge_rows(
        path,
        data,
        key=key,
        read_old=read_old,
        ignore_columns=ignore_columns,
        retries=retries,
        metadata=metadata,
    )
