"""Data checks of Silver and Gold. Pure: tables in, results out.

Rule names and detail strings read as the rule (``min_rows>=100``, ``non_null:patient_id``,
``unique:encounter_id``, ``short_notes_pct<=20%``, ``sections_pct>=80%``,
``range:heart_rate_bpm∈[30,250]``), each failure also carrying a short legacy string
(``nulls_in:patient_id(5)``, ...). Added checks: referential integrity, no future birth date,
no duplicate key across cohorts, and Gold checks.

Scopes: a *cohort* result covers rules that hold row by row (nulls, ranges, note rates, birth
dates, uniqueness within the cohort); a *table* result covers the whole table (all of the
table's rules on the full table, plus cross-cohort duplicates and referential integrity).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from fhirhouse import PARTITION_COLUMN
from fhirhouse.checks.rules import SILVER_RULES
from fhirhouse.silver.registry import spec

Frame = pa.Table | pl.DataFrame


@dataclass
class CheckOutcome:
    rule: str
    passed: bool
    detail: str
    legacy: str = ""  # the short failure string (``nulls_in:patient_id(5)``); empty when passed


@dataclass
class TableResult:
    table: str
    scope: str  # "cohort=<label>" or "table"
    row_count: int
    checks: list[CheckOutcome] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)  # the numbers behind row rules

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> str:
        return ",".join(c.legacy or c.rule for c in self.checks if not c.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "scope": self.scope,
            "row_count": self.row_count,
            "passed": self.passed,
            "failed_checks": self.failed_checks,
            "rules_total": len(self.checks),
            "rules_passed": sum(c.passed for c in self.checks),
            "checks": [asdict(c) for c in self.checks],
            "counts": self.counts,
        }

    def to_markdown(self) -> str:
        head = f"### {self.table} ({self.scope}): {'passed' if self.passed else '**FAILED**'}"
        lines = [head, "", f"{self.row_count:,} rows.", "", "| Rule | Result | Detail |"]
        lines.append("|---|---|---|")
        for c in self.checks:
            lines.append(f"| `{c.rule}` | {'pass' if c.passed else '**FAIL**'} | {c.detail} |")
        return "\n".join(lines) + "\n"


def _outcome(rule: str, passed: bool, detail: str, legacy: str) -> CheckOutcome:
    """A rule outcome; the legacy failure string is kept only on failure."""
    return CheckOutcome(rule, passed, detail, "" if passed else legacy)


def _df(table: Frame) -> pl.DataFrame:
    return table if isinstance(table, pl.DataFrame) else pl.from_arrow(table)


def _pct(x: float) -> str:
    return f"{x:.0%}" if x * 100 == int(x * 100) else f"{x:.1%}"


def merged_rules(name: str, overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """The default rules of a table (:mod:`fhirhouse.checks.rules`) with config overrides
    applied key by key."""
    rules = dict(SILVER_RULES[name])
    rules.update((overrides or {}).get(name, {}))
    return rules


def columns_needed(name: str, rules: Mapping[str, Any]) -> list[str]:
    """The columns the table-level checks of ``name`` read (everything else can be pruned)."""
    s = spec(name)
    wanted = {
        s.key,
        PARTITION_COLUMN,
        *rules.get("required_non_null", []),
        *rules.get("unique_keys", []),
    }
    wanted |= set(rules.get("numeric_ranges", {}))
    wanted |= set(rules.get("required_section_flags", []))
    if "min_char_count" in rules:
        wanted.add("char_count")
    wanted |= {"patient_id", "encounter_id", "birth_date"}
    return [f.name for f in s.schema if f.name in wanted]


# ------------------------------------------------------------------------------ the rules


def check_min_rows(df: pl.DataFrame, minimum: int) -> CheckOutcome:
    return min_rows_outcome(df.height, minimum)


def min_rows_outcome(n: int, minimum: int) -> CheckOutcome:
    return _outcome(
        f"min_rows>={minimum}",
        n >= minimum,
        f"{n:,} rows (minimum {minimum:,})",
        f"min_rows<{minimum}(={n})",
    )


def markers_outcome(rows: int, recorded: int) -> CheckOutcome:
    """A whole table holds the rows its cohorts' markers recorded (none lost or added
    behind the build's back)."""
    return _outcome(
        "rows==markers",
        rows == recorded,
        f"{rows:,} rows; the cohort markers record {recorded:,}",
        f"rows!=markers({rows}!={recorded})",
    )


def check_non_null(df: pl.DataFrame, column: str) -> CheckOutcome:
    return non_null_outcome(column, df[column].null_count(), df.height)


def non_null_outcome(column: str, nulls: int, n: int) -> CheckOutcome:
    return _outcome(
        f"non_null:{column}",
        nulls == 0,
        f"{nulls:,} nulls / {n:,} rows",
        f"nulls_in:{column}({nulls})",
    )


def check_unique(df: pl.DataFrame, column: str) -> CheckOutcome:
    distinct, n = df[column].n_unique(), df.height
    return _outcome(
        f"unique:{column}",
        distinct == n,
        f"{distinct:,}/{n:,} distinct",
        f"non_unique:{column}({distinct}/{n})",
    )


def check_short_notes(df: pl.DataFrame, min_chars: int, max_pct: float) -> CheckOutcome:
    return short_notes_outcome(int((df["char_count"] < min_chars).sum()), df.height, min_chars,
                               max_pct)  # fmt: skip


def short_notes_outcome(short: int, n: int, min_chars: int, max_pct: float) -> CheckOutcome:
    rate = short / n
    return _outcome(
        f"short_notes_pct<={_pct(max_pct)}",
        rate <= max_pct,
        f"{rate:.1%} short (< {min_chars} chars), {short:,}/{n:,}",
        f"short_notes_pct>{max_pct}(={rate:.2f})",
    )


def _complete(df: pl.DataFrame, flags: list[str]) -> tuple[int, int]:
    """(rows with every present flag set, how many flags are present)."""
    present = [f for f in flags if f in df.columns]
    complete = int(
        df.select(pl.all_horizontal([pl.col(f).fill_null(False) for f in present]))
        .to_series()
        .sum()
    )
    return complete, len(present)


def check_sections(df: pl.DataFrame, flags: list[str], min_pct: float) -> CheckOutcome:
    complete, present = _complete(df, flags)
    return sections_outcome(complete, df.height, present, min_pct)


def sections_outcome(complete: int, n: int, present: int, min_pct: float) -> CheckOutcome:
    rate = complete / n
    return _outcome(
        f"sections_pct>={_pct(min_pct)}",
        rate >= min_pct,
        f"{rate:.1%} of rows have all {present} sections",
        f"sections_pct<{min_pct}(={rate:.2f})",
    )


def _out_of_range(df: pl.DataFrame, column: str, lo: float, hi: float) -> tuple[int, int]:
    """(values outside [lo, hi], non-null values)."""
    values = df[column].drop_nulls()
    if not values.len():
        return 0, 0
    return int(((values < lo) | (values > hi)).sum()), values.len()


def check_range(df: pl.DataFrame, column: str, lo: float, hi: float) -> CheckOutcome:
    return range_outcome(column, lo, hi, *_out_of_range(df, column, lo, hi))


def range_outcome(column: str, lo: float, hi: float, bad: int, values: int) -> CheckOutcome:
    return _outcome(
        f"range:{column}∈[{lo},{hi}]",
        bad == 0,
        f"all {values:,} non-null values within [{lo}, {hi}]"
        if bad == 0
        else f"{bad:,} of {values:,} non-null values outside [{lo}, {hi}]",
        f"out_of_range:{column}({bad} not in [{lo},{hi}])",
    )


def _future_births(df: pl.DataFrame, today: dt.date) -> int:
    return int((df["birth_date"].drop_nulls() > today).sum())


def check_no_future_birth(df: pl.DataFrame, today: dt.date) -> CheckOutcome:
    return future_birth_outcome(_future_births(df, today), today)


def future_birth_outcome(future: int, today: dt.date) -> CheckOutcome:
    return _outcome(
        "no_future_birth_date",
        future == 0,
        f"{future:,} birth dates after {today.isoformat()}",
        f"future_birth_date({future})",
    )


def check_cross_cohort(df: pl.DataFrame, key: str) -> CheckOutcome:
    if df[key].n_unique() == df.height:  # no key twice at all: none in two cohorts
        dupes = 0
    else:
        per_key = df.group_by(key).agg(pl.col(PARTITION_COLUMN).n_unique().alias("n"))
        dupes = int((per_key["n"] > 1).sum())
    return _outcome(
        f"no_cross_cohort_duplicates:{key}",
        dupes == 0,
        f"{dupes:,} keys present in more than one cohort",
        f"cross_cohort_duplicates:{key}({dupes})",
    )


def check_references(
    df: pl.DataFrame, column: str, target: str, keys: pl.Series, *, skip_empty: bool
) -> CheckOutcome:
    values = df[column].drop_nulls()
    if skip_empty:
        values = values.filter(values != "")
    missing = int((~values.is_in(keys.implode())).sum()) if values.len() else 0
    return _outcome(
        f"references:{column}->{target}",
        missing == 0,
        f"{missing:,} of {values.len():,} {column} values do not resolve in {target}",
        f"dangling:{column}({missing})",
    )


# --------------------------------------------------------------------------- per table


def row_counts(
    name: str, df: pl.DataFrame, rules: Mapping[str, Any], today: dt.date
) -> dict[str, Any]:
    """The numbers behind the row-by-row rules of one slice. Counts of several slices add up
    (:func:`add_counts`) to the numbers of the whole table."""
    counts: dict[str, Any] = {"rows": df.height}
    counts["nulls"] = {
        c: df[c].null_count() for c in rules.get("required_non_null", []) if c in df.columns
    }
    if df.height and "min_char_count" in rules and "char_count" in df.columns:
        counts["short"] = int((df["char_count"] < rules["min_char_count"]).sum())
    if df.height and "required_section_flags" in rules:
        counts["complete"], counts["flags"] = _complete(df, rules["required_section_flags"])
    counts["range"] = {
        col: list(_out_of_range(df, col, lo, hi))
        for col, (lo, hi) in rules.get("numeric_ranges", {}).items()
        if col in df.columns
    }
    if name == "patient" and "birth_date" in df.columns:
        counts["future_births"] = _future_births(df, today)
    return counts


def add_counts(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of several slices' :func:`row_counts`."""
    total: dict[str, Any] = {"rows": 0, "nulls": {}, "range": {}}
    for part in parts:
        total["rows"] += part["rows"]
        for c, k in part.get("nulls", {}).items():
            total["nulls"][c] = total["nulls"].get(c, 0) + k
        for c, (bad, values) in part.get("range", {}).items():
            b, v = total["range"].get(c, [0, 0])
            total["range"][c] = [b + bad, v + values]
        for field_ in ("short", "complete", "future_births"):
            if field_ in part:
                total[field_] = total.get(field_, 0) + part[field_]
        if "flags" in part:
            total["flags"] = part["flags"]
    return total


def row_outcomes(
    name: str, counts: Mapping[str, Any], rules: Mapping[str, Any], today: dt.date
) -> list[CheckOutcome]:
    """The row-by-row rules' outcomes from their numbers: valid on any slice of the table."""
    n = counts["rows"]
    out = [
        non_null_outcome(c, counts["nulls"][c], n)
        for c in rules.get("required_non_null", [])
        if c in counts["nulls"]
    ]
    if n and "min_char_count" in rules and "short" in counts:
        out.append(
            short_notes_outcome(
                counts["short"], n, rules["min_char_count"], rules.get("max_short_pct", 1.0)
            )
        )
    if n and "required_section_flags" in rules and "complete" in counts:
        out.append(
            sections_outcome(
                counts["complete"], n, counts["flags"], rules.get("required_sections_pct", 0.0)
            )
        )
    for col, (lo, hi) in rules.get("numeric_ranges", {}).items():
        bad, values = counts["range"].get(col, (0, 0))
        if values:
            out.append(range_outcome(col, lo, hi, bad, values))
    if "future_births" in counts:
        out.append(future_birth_outcome(counts["future_births"], today))
    return out


def _unique(df: pl.DataFrame, rules: Mapping[str, Any]) -> list[CheckOutcome]:
    if not df.height:
        return []
    return [check_unique(df, c) for c in rules.get("unique_keys", []) if c in df.columns]


def validate_cohort(
    name: str,
    table: Frame,
    cohort: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    today: dt.date | None = None,
) -> TableResult:
    """Row-level rules and within-cohort uniqueness on one cohort's slice of a Silver table."""
    df = _df(table)
    rules = merged_rules(name, overrides)
    today = today or dt.date.today()
    counts = row_counts(name, df, rules, today)
    checks = row_outcomes(name, counts, rules, today) + _unique(df, rules)
    return TableResult(name, f"{PARTITION_COLUMN}={cohort}", df.height, checks, counts)


def validate_table(
    name: str,
    table: Frame,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    patient_ids: pl.Series | None = None,
    encounter_ids: pl.Series | None = None,
    today: dt.date | None = None,
) -> TableResult:
    """All of the table's rules on the full table, plus cross-cohort duplicates and
    referential integrity (when the patient / encounter keys are given)."""
    df = _df(table)
    rules = merged_rules(name, overrides)
    today = today or dt.date.today()
    counts = row_counts(name, df, rules, today)
    return _table_result(name, counts, df, rules, today, patient_ids, encounter_ids)


def validate_table_parts(
    name: str,
    parts: list[Mapping[str, Any]],
    keys: Frame,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    patient_ids: pl.Series | None = None,
    encounter_ids: pl.Series | None = None,
    today: dt.date | None = None,
) -> TableResult:
    """:func:`validate_table` from the cohorts' :func:`row_counts` and the table's key
    columns only (``keys``: the key, ``cohort``, ``patient_id`` and ``encounter_id`` where the
    table has them): the whole table's rows need not be read."""
    rules = merged_rules(name, overrides)
    today = today or dt.date.today()
    return _table_result(
        name, add_counts(parts), _df(keys), rules, today, patient_ids, encounter_ids
    )


def _table_result(
    name: str,
    counts: Mapping[str, Any],
    df: pl.DataFrame,
    rules: Mapping[str, Any],
    today: dt.date,
    patient_ids: pl.Series | None,
    encounter_ids: pl.Series | None,
) -> TableResult:
    checks: list[CheckOutcome] = []
    if "min_rows" in rules:
        checks.append(min_rows_outcome(counts["rows"], rules["min_rows"]))
    checks += row_outcomes(name, counts, rules, today) + _unique(df, rules)
    key = spec(name).key
    if df.height and PARTITION_COLUMN in df.columns:
        checks.append(check_cross_cohort(df, key))
    if name != "patient" and patient_ids is not None and "patient_id" in df.columns:
        checks.append(check_references(df, "patient_id", "patient", patient_ids, skip_empty=False))
    if name != "encounter" and encounter_ids is not None and "encounter_id" in df.columns:
        checks.append(
            check_references(df, "encounter_id", "encounter", encounter_ids, skip_empty=True)
        )
    return TableResult(name, "table", counts["rows"], checks, dict(counts))


# --------------------------------------------------------------------------------- gold

GOLD_LIST_COLUMNS = ("active_conditions", "active_medications", "recent_labs", "procedures")


def gold_counts(
    gold: Frame,
    row_validator: Callable[[dict[str, Any]], bool] | None = None,
    *,
    max_age: int,
    invalid_rows: Callable[[pl.DataFrame], int] | None = None,
) -> dict[str, Any]:
    """The numbers behind the Gold checks of a set of rows; they add up like
    :func:`row_counts` (:func:`combine_gold_counts`). Rows against the contract are counted
    by ``invalid_rows`` (a whole-frame counter) when given, else by ``row_validator``."""
    df = _df(gold)
    bad, values = _out_of_range(df, "patient_age", 0, max_age) if df.height else (0, 0)
    counts: dict[str, Any] = {
        "rows": df.height,
        "age": [bad, values],
        "null_lists": {col: df[col].null_count() for col in GOLD_LIST_COLUMNS},
    }
    if invalid_rows is not None:
        counts["invalid"] = invalid_rows(df)
    elif row_validator is not None:
        counts["invalid"] = sum(1 for row in df.iter_rows(named=True) if not row_validator(row))
    return counts


def combine_gold_counts(
    base: Mapping[str, Any], minus: Mapping[str, Any], plus: Mapping[str, Any]
) -> dict[str, Any]:
    """``base - minus + plus``: the counts after rows ``minus`` were replaced by ``plus``."""

    def num(m: Mapping[str, Any], k: str) -> int:
        return int(m.get(k, 0) or 0)

    out: dict[str, Any] = {
        "rows": num(base, "rows") - num(minus, "rows") + num(plus, "rows"),
        "age": [
            base["age"][i] - minus.get("age", [0, 0])[i] + plus.get("age", [0, 0])[i]
            for i in (0, 1)
        ],
        "null_lists": {
            col: base["null_lists"].get(col, 0)
            - minus.get("null_lists", {}).get(col, 0)
            + plus.get("null_lists", {}).get(col, 0)
            for col in GOLD_LIST_COLUMNS
        },
    }
    if "invalid" in base:
        out["invalid"] = num(base, "invalid") - num(minus, "invalid") + num(plus, "invalid")
    return out


def validate_gold(
    gold: Frame,
    cohort: str,
    expected_rows: int,
    row_validator: Callable[[dict[str, Any]], bool] | None = None,
    *,
    max_age: int,
    invalid_rows: Callable[[pl.DataFrame], int] | None = None,
) -> TableResult:
    """Gold checks for one cohort's rows: count, age range, list columns, contract schema.

    The contract check counts the rows the schema rejects: with ``invalid_rows`` (a whole-frame
    counter such as ``gold.contract.invalid_row_count``) when given, else with ``row_validator``
    called on every row; without either it is skipped.
    """
    counts = gold_counts(gold, row_validator, max_age=max_age, invalid_rows=invalid_rows)
    return gold_result(counts, cohort, expected_rows, max_age=max_age)


def gold_result(
    counts: Mapping[str, Any], cohort: str, expected_rows: int, *, max_age: int
) -> TableResult:
    """The Gold checks of one cohort from its :func:`gold_counts`."""
    n = counts["rows"]
    checks = [
        _outcome(
            "rows_equal_encounters",
            n == expected_rows,
            f"{n:,} Gold rows for {expected_rows:,} Silver encounters",
            f"row_count({n}!={expected_rows})",
        )
    ]
    bad, values = counts["age"]
    if values:
        checks.append(range_outcome("patient_age", 0, max_age, bad, values))
    for col in GOLD_LIST_COLUMNS:
        nulls = counts["null_lists"][col]
        checks.append(
            _outcome(
                f"never_null:{col}",
                nulls == 0,
                f"{nulls:,} null lists / {n:,} rows",
                f"null_list:{col}({nulls})",
            )
        )
    if "invalid" in counts:
        invalid = counts["invalid"]
        checks.append(
            _outcome(
                "contract_schema",
                invalid == 0,
                f"{n - invalid:,}/{n:,} rows valid against the contract JSON Schema",
                f"schema_invalid({invalid})",
            )
        )
    return TableResult(
        "gold.encounter_summary", f"{PARTITION_COLUMN}={cohort}", n, checks, dict(counts)
    )


def ingest_log_table(results: list[TableResult], ingest_ts: dt.datetime) -> pa.Table:
    """Rows for ``silver.ingest_log``, one per table result."""
    return pa.table(
        {
            "table": [r.table for r in results],
            "row_count": pa.array([r.row_count for r in results], pa.int64()),
            "passed": [r.passed for r in results],
            "failed_checks": [r.failed_checks for r in results],
            "ingest_timestamp": pa.array([ingest_ts] * len(results), pa.timestamp("us", tz="UTC")),
        }
    )
