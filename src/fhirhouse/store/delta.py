"""The only code that touches Delta tables.

Silver tables are partitioned by ``cohort`` and written one cohort slice at a time: after
:func:`write_cohort_slice` the partition holds exactly the new rows (inserted, updated,
deleted), other partitions are untouched, and an unchanged slice commits nothing. The MERGE
predicate carries the cohort literal, so writers of different cohorts never conflict; commit
conflicts that still happen (a concurrent table creation, say) are retried.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, DeltaError

from fhirhouse import faults
from fhirhouse.store.maintenance import commit_properties, open_table, table_name
from fhirhouse.store.objects import delta_storage_options, is_uri

log = logging.getLogger(__name__)

CDF = {"delta.enableChangeDataFeed": "true"}
COHORT_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_OP = "_fhirhouse_op"


def check_cohort_label(label: str) -> str:
    """Return ``label`` if it is a safe cohort label, else raise ``ValueError``.

    Labels become folder names and SQL literals: letters, digits, ``_``, ``-`` and ``.`` only
    (not leading), at most 64 characters, never ``..``.
    """
    if not isinstance(label, str) or not COHORT_LABEL.match(label) or ".." in label:
        raise ValueError(
            f"invalid cohort label {label!r}: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (max 64 chars)"
        )
    return label


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
    cross_cohort_duplicate_keys: int

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
    """Open the table, creating it empty (CDF on) when missing; safe against a racing creator."""
    name = table_name(path)
    for attempt in range(5):
        if is_table(path):
            return open_table(path)
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


def read_table(path: object, columns: list[str] | None = None) -> pa.Table:
    return open_table(path).to_pyarrow_table(columns=columns)


def read_partition(
    path: object, value: str, column: str = "cohort", columns: list[str] | None = None
) -> pa.Table:
    """The rows of one partition of the table at ``path`` (only ``columns`` when given)."""
    return open_table(path).to_pyarrow_table(filters=[(column, "=", value)], columns=columns)


def partition_values(path: object, column: str = "cohort") -> list[str]:
    """The distinct values of a partition column, sorted; ``[]`` when there is no table."""
    if not is_table(path):
        return []
    return sorted({p[column] for p in open_table(path).partitions() if column in p})


def scan(path: object, version: int | None = None) -> pl.LazyFrame:
    """A Polars scan of the table at ``path`` (local or on a store), at ``version`` if given."""
    return pl.scan_delta(str(path), version=version, storage_options=delta_storage_options(path))


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
        old = read_old(table).select(cols).cast(data.schema)
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
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def write_cohort_slice(
    path: object,
    data: pa.Table,
    *,
    key: str,
    cohort: str,
    partition_column: str = "cohort",
    ignore_columns: Iterable[str] = ("ingest_timestamp",),
    retries: int = 5,
    metadata: Mapping[str, Any] | None = None,
) -> WriteResult:
    """Make the ``cohort`` partition of the table at ``path`` hold exactly ``data``.

    One MERGE commit (insert new keys, update changed rows, delete vanished keys), scoped to
    the partition by a literal; nothing is committed when the slice is unchanged.
    """
    check_cohort_label(cohort)
    table = ensure_table(path, data.schema, [partition_column])
    merged = _merge_until_committed(
        table,
        data,
        key,
        lambda t: t.to_pyarrow_table(filters=[(partition_column, "=", cohort)]),
        ignore_columns,
        f"t.{_q(partition_column)} = '{cohort}'",
        retries,
        metadata,
    )
    table.update_incremental()
    dupes = cross_partition_duplicates(table, data, key, partition_column, cohort)
    if dupes:
        log.warning("%d primary keys of cohort %s also exist in another cohort", dupes, cohort)
    return WriteResult(
        table_path=str(path),
        cohort=cohort,
        rows=data.num_rows,
        inserted=merged.inserted,
        updated=merged.updated,
        deleted=merged.deleted,
        delta_version=table.version(),
        committed=merged.committed,
        cross_cohort_duplicate_keys=dupes,
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
    table = ensure_table(path, data.schema, [])
    keys = set(data.column(key).to_pylist()) | set(delete_keys)

    def read_old(t: DeltaTable) -> pa.Table:
        if not keys:
            return data.schema.empty_table()
        # Polars' Delta scan prunes by the key and reads the string_view columns delta-rs's
        # MERGE writes; pyarrow's dataset filter fails on them (string vs string_view stats).
        rows = scan(path, version=t.version()).filter(pl.col(key).is_in(sorted(keys)))
        return rows.collect().to_arrow()

    return _merge_until_committed(
        table, data, key, read_old, ignore_columns, None, retries, metadata
    )


def cross_partition_duplicates(
    table: DeltaTable, data: pa.Table, key: str, partition_column: str, cohort: str
) -> int:
    """How many keys of ``data`` also appear in another partition of ``table``."""
    if data.num_rows == 0:
        return 0
    others = table.to_pyarrow_table(columns=[key], filters=[(partition_column, "!=", cohort)])
    if others.num_rows == 0:
        return 0
    mine = pl.from_arrow(data.select([key]))
    theirs = pl.from_arrow(others).unique()
    return mine.join(theirs, on=key, how="semi").height
