"""Data checks (spec section 5, plus what the reference left out). Pure: tables in, results out.

Rule names and detail strings follow the reference (``min_rows>=100``, ``non_null:patient_id``,
``unique:encounter_id``, ``short_notes_pct<=20%``, ``sections_pct>=80%``,
``range:heart_rate_bpm∈[30,250]``), each failure also carrying the reference's legacy string
(``nulls_in:patient_id(5)``, ...). Added checks: referential integrity, no future birth date,
no duplicate key across cohorts, and Gold checks.

Scopes: a *cohort* result covers rules that hold row by row (nulls, ranges, note rates, birth
dates, uniqueness within the cohort); a *table* result covers the whole table (all of the
reference's rules on the full table, plus cross-cohort duplicates and referential integrity).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl
import pyarrow as pa

from fhirhouse.checks.rules import SILVER_RULES
from fhirhouse.silver.registry import spec

Frame = pa.Table | pl.DataFrame


@dataclass
class CheckOutcome:
    rule: str
    passed: bool
    detail: str
    legacy: str = ""  # the reference's failure string; empty when passed


@dataclass
class TableResult:
    table: str
    scope: str  # "cohort=<label>" or "table"
    row_count: int
    checks: list[CheckOutcome] = field(default_factory=list)

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
        }

    def to_markdown(self) -> str:
        head = f"### {self.table} ({self.scope}): {'passed' if self.passed else '**FAILED**'}"
        lines = [head, "", f"{self.row_count:,} rows.", "", "| Rule | Result | Detail |"]
        lines.append("|---|---|---|")
        for c in self.checks:
            lines.append(f"| `{c.rule}` | {'pass' if c.passed else '**FAIL**'} | {c.detail} |")
        return "\n".join(lines) + "\n"


def _outcome(rule: str, passed: bool, detail: str, legacy: str) -> CheckOutcome:
    """A rule outcome; the reference's legacy failure string is kept only on failure."""
    return CheckOutcome(rule, passed, detail, "" if passed else legacy)


def _df(table: Frame) -> pl.DataFrame:
    return table if isinstance(table, pl.DataFrame) else pl.from_arrow(table)


def _pct(x: float) -> str:
    return f"{x:.0%}" if x * 100 == int(x * 100) else f"{x:.1%}"


def merged_rules(name: str, overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any]:
    """The reference rules of a table with config overrides applied key by key."""
    rules = dict(SILVER_RULES[name])
    rules.update((overrides or {}).get(name, {}))
    return rules


def columns_needed(name: str, rules: Mapping[str, Any]) -> list[str]:
    """The columns the table-level checks of ``name`` read (everything else can be pruned)."""
    s = spec(name)
    wanted = {s.key, "cohort", *rules.get("required_non_null", []), *rules.get("unique_keys", [])}
    wanted |= set(rules.get("numeric_ranges", {}))
    wanted |= set(rules.get("required_section_flags", []))
    if "min_char_count" in rules:
        wanted.add("char_count")
    wanted |= {"patient_id", "encounter_id", "birth_date"}
    return [f.name for f in s.schema if f.name in wanted]


# ------------------------------------------------------------------------------ the rules


def check_min_rows(df: pl.DataFrame, minimum: int) -> CheckOutcome:
    n = df.height
    ok = n >= minimum
    return _outcome(
        f"min_rows>={minimum}",
        ok,
        f"{n:,} rows (minimum {minimum:,})",
        f"min_rows<{minimum}(={n})",
    )


def check_non_null(df: pl.DataFrame, column: str) -> CheckOutcome:
    nulls = df[column].null_count()
    return _outcome(
        f"non_null:{column}",
        nulls == 0,
        f"{nulls:,} nulls / {df.height:,} rows",
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
    short = int((df["char_count"] < min_chars).sum())
    rate = short / df.height
    ok = rate <= max_pct
    return _outcome(
        f"short_notes_pct<={_pct(max_pct)}",
        ok,
        f"{rate:.1%} short (< {min_chars} chars), {short:,}/{df.height:,}",
        f"short_notes_pct>{max_pct}(={rate:.2f})",
    )


def check_sections(df: pl.DataFrame, flags: list[str], min_pct: float) -> CheckOutcome:
    present = [f for f in flags if f in df.columns]
    complete = int(
        df.select(pl.all_horizontal([pl.col(f).fill_null(False) for f in present]))
        .to_series()
        .sum()
    )
    rate = complete / df.height
    ok = rate >= min_pct
    return _outcome(
        f"sections_pct>={_pct(min_pct)}",
        ok,
        f"{rate:.1%} of rows have all {len(present)} sections",
        f"sections_pct<{min_pct}(={rate:.2f})",
    )


def check_range(df: pl.DataFrame, column: str, lo: float, hi: float) -> CheckOutcome:
    values = df[column].drop_nulls()
    bad = int(((values < lo) | (values > hi)).sum())
    return _outcome(
        f"range:{column}∈[{lo},{hi}]",
        bad == 0,
        f"all {values.len():,} non-null values within [{lo}, {hi}]"
        if bad == 0
        else f"{bad:,} of {values.len():,} non-null values outside [{lo}, {hi}]",
        f"out_of_range:{column}({bad} not in [{lo},{hi}])",
    )


def check_no_future_birth(df: pl.DataFrame, today: dt.date) -> CheckOutcome:
    future = int((df["birth_date"].drop_nulls() > today).sum())
    return _outcome(
        "no_future_birth_date",
        future == 0,
        f"{future:,} birth dates after {today.isoformat()}",
        f"future_birth_date({future})",
    )


def check_cross_cohort(df: pl.DataFrame, key: str) -> CheckOutcome:
    per_key = df.group_by(key).agg(pl.col("cohort").n_unique().alias("n"))
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


def _row_rules(
    name: str, df: pl.DataFrame, rules: Mapping[str, Any], today: dt.date
) -> list[CheckOutcome]:
    """Rules that hold row by row: valid on any slice of the table."""
    out = [check_non_null(df, c) for c in rules.get("required_non_null", []) if c in df.columns]
    if df.height and "min_char_count" in rules and "char_count" in df.columns:
        out.append(check_short_notes(df, rules["min_char_count"], rules.get("max_short_pct", 1.0)))
    if df.height and "required_section_flags" in rules:
        out.append(
            check_sections(
                df, rules["required_section_flags"], rules.get("required_sections_pct", 0.0)
            )
        )
    for col, (lo, hi) in rules.get("numeric_ranges", {}).items():
        if col in df.columns and df[col].drop_nulls().len():
            out.append(check_range(df, col, lo, hi))
    if name == "patient" and "birth_date" in df.columns:
        out.append(check_no_future_birth(df, today))
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
    checks = _row_rules(name, df, rules, today) + _unique(df, rules)
    return TableResult(name, f"cohort={cohort}", df.height, checks)


def validate_table(
    name: str,
    table: Frame,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    patient_ids: pl.Series | None = None,
    encounter_ids: pl.Series | None = None,
    today: dt.date | None = None,
) -> TableResult:
    """All of the reference's rules on the full table, plus cross-cohort duplicates and
    referential integrity (when the patient / encounter keys are given)."""
    df = _df(table)
    rules = merged_rules(name, overrides)
    today = today or dt.date.today()
    checks: list[CheckOutcome] = []
    if "min_rows" in rules:
        checks.append(check_min_rows(df, rules["min_rows"]))
    checks += _row_rules(name, df, rules, today) + _unique(df, rules)
    key = spec(name).key
    if df.height and "cohort" in df.columns:
        checks.append(check_cross_cohort(df, key))
    if name != "patient" and patient_ids is not None and "patient_id" in df.columns:
        checks.append(check_references(df, "patient_id", "patient", patient_ids, skip_empty=False))
    if name != "encounter" and encounter_ids is not None and "encounter_id" in df.columns:
        checks.append(
            check_references(df, "encounter_id", "encounter", encounter_ids, skip_empty=True)
        )
    return TableResult(name, "table", df.height, checks)


# --------------------------------------------------------------------------------- gold

GOLD_LIST_COLUMNS = ("active_conditions", "active_medications", "recent_labs", "procedures")


def validate_gold(
    gold: Frame,
    cohort: str,
    expected_rows: int,
    row_validator: Callable[[dict[str, Any]], bool] | None = None,
    max_age: int = 130,
    *,
    invalid_rows: Callable[[pl.DataFrame], int] | None = None,
) -> TableResult:
    """Gold checks for one cohort's rows: count, age range, list columns, contract schema.

    The contract check counts the rows the schema rejects: with ``invalid_rows`` (a whole-frame
    counter such as ``gold.contract.invalid_row_count``) when given, else with ``row_validator``
    called on every row; without either it is skipped.
    """
    df = _df(gold)
    n = df.height
    checks = [
        _outcome(
            "rows_equal_encounters",
            n == expected_rows,
            f"{n:,} Gold rows for {expected_rows:,} Silver encounters",
            f"row_count({n}!={expected_rows})",
        )
    ]
    if df["patient_age"].drop_nulls().len():
        checks.append(check_range(df, "patient_age", 0, max_age))
    for col in GOLD_LIST_COLUMNS:
        nulls = df[col].null_count()
        checks.append(
            _outcome(
                f"never_null:{col}",
                nulls == 0,
                f"{nulls:,} null lists / {n:,} rows",
                f"null_list:{col}({nulls})",
            )
        )
    if invalid_rows is not None or row_validator is not None:
        invalid = (
            invalid_rows(df)
            if invalid_rows is not None
            else sum(1 for row in df.iter_rows(named=True) if not row_validator(row))
        )
        checks.append(
            _outcome(
                "contract_schema",
                invalid == 0,
                f"{n - invalid:,}/{n:,} rows valid against the contract JSON Schema",
                f"schema_invalid({invalid})",
            )
        )
    return TableResult("gold.encounter_summary", f"cohort={cohort}", n, checks)


def ingest_log_table(results: list[TableResult], ingest_ts: dt.datetime) -> pa.Table:
    """Rows for ``silver.ingest_log`` (spec section 2.3), one per table result."""
    return pa.table(
        {
            "table": [r.table for r in results],
            "row_count": pa.array([r.row_count for r in results], pa.int64()),
            "passed": [r.passed for r in results],
            "failed_checks": [r.failed_checks for r in results],
            "ingest_timestamp": pa.array([ingest_ts] * len(results), pa.timestamp("us", tz="UTC")),
        }
    )
