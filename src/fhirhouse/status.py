"""What is built, stale or failed, per cohort and layer; and the run history by run.

Reads only markers, check results, Bronze folder states and the run-history table, so it
works on any root, with or without Snakemake, and never opens a bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from fhirhouse import SILVER_TABLES
from fhirhouse.bronze.landing import (
    changed_since_landing,
    cohort_files,
    cohort_inputs,
    folder_state,
    list_cohorts,
)
from fhirhouse.jobs.verify import Damage, find_damage
from fhirhouse.layout import Layout
from fhirhouse.store.atomic import read_json_if_valid
from fhirhouse.store.history import read_run_history
from fhirhouse.summary import table_check_lines
from fhirhouse.words import plural

LAYER_RULES: dict[str, set[str]] = {
    "bronze": {"bronze"},
    "silver": {"silver", "silver_table"},
    "gold": {"gold"},
}


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


def _state(failed: bool | None, marker: Any, detail: str, stale: bool) -> str:
    if failed:
        return "failed"
    if marker is None:
        return "not built"
    return f"{'stale' if stale else 'built'} ({detail})"


def _damaged(found: list[Damage]) -> str | None:
    """``damaged (...)`` when the tables no longer hold what the layer's marker recorded."""
    if not found:
        return None
    return f"damaged ({'; '.join(d.what for d in found)})"


@dataclass
class CohortStatus:
    cohort: str
    bronze: str
    silver: str
    checks: str
    gold: str
    last_run: str


def _failed_layers(layout: Layout) -> dict[tuple[str, str], bool]:
    """(layer, cohort) -> whether the latest job of that layer and cohort failed; the layer
    ``checks`` when it failed on a data check (``checks.on_failure: fail``)."""
    history = read_run_history(layout.run_history)
    if history.is_empty():
        return {}
    latest = (
        history.filter(pl.col("cohort").is_not_null())
        .sort("started_at")
        .group_by("rule", "cohort", maintain_order=True)
        .last()
    )
    out: dict[tuple[str, str], bool] = {}
    for row in latest.iter_rows(named=True):
        failed = row["status"] == "failed"
        for layer, rules in LAYER_RULES.items():
            if row["rule"] in rules:
                key = (layer, row["cohort"])
                out[key] = out.get(key, False) or failed
        if failed and (row["message"] or "").startswith("check failed"):
            out[("checks", row["cohort"])] = True
    return out


def cohort_statuses(layout: Layout) -> list[CohortStatus]:
    failed = _failed_layers(layout)
    cohorts = list_cohorts(layout)
    damage = find_damage(layout, cohorts, deep=True, remember=False)
    out = []
    for cohort in cohorts:
        files = cohort_files(layout, cohort)
        bronze_m = layout.bronze_marker(cohort)
        state_file = layout.bronze_state(cohort)
        state_now = folder_state(cohort_inputs(layout, cohort, files))
        changed = read_json_if_valid(state_file) != state_now or _mtime(bronze_m) < _mtime(
            state_file
        )
        silver_m = read_json_if_valid(layout.silver_cohort_marker(cohort))
        gold_m = read_json_if_valid(layout.gold_marker(cohort))

        bronze = _state(
            failed.get(("bronze", cohort)),
            read_json_if_valid(bronze_m),
            plural(len(files), "file"),
            changed,
        )
        edited, gone = changed_since_landing(layout, cohort)
        if edited or gone:
            bronze = f"damaged ({edited} changed, {gone} gone since landing)"
        silver_rows = sum(t["rows"] for t in (silver_m or {}).get("tables", {}).values())
        silver_path = layout.silver_cohort_marker(cohort)
        silver_stale = changed or _mtime(silver_path) < _mtime(bronze_m)
        silver = _state(
            failed.get(("silver", cohort)), silver_m, f"{silver_rows:,} rows", silver_stale
        )
        gold_path = layout.gold_marker(cohort)
        gold_stale = silver_stale or _mtime(gold_path) < _mtime(silver_path)
        gold_rows = f"{(gold_m or {}).get('rows', 0):,} rows"
        gold = _state(failed.get(("gold", cohort)), gold_m, gold_rows, gold_stale)
        silver, gold = (
            _damaged([d for d in damage if d.cohort == cohort and d.layer == layer]) or shown
            for layer, shown in (("silver", silver), ("gold", gold))
        )
        results = [read_json_if_valid(layout.check_cohort(t, cohort)) for t in SILVER_TABLES]
        results.append(read_json_if_valid(layout.check_gold(cohort)))
        present = [r for r in results if r is not None]
        if failed.get(("checks", cohort)):
            checks = "failed"
        elif not present:
            checks = "not run"
        else:
            bad = [r["table"] for r in present if not r["passed"]]
            checks = "passed" if not bad else f"{len(bad)} failed: {', '.join(bad)}"
        markers = [m for m in (silver_m, gold_m, read_json_if_valid(bronze_m)) if m]
        last = max(markers, key=lambda m: m["written_at"]) if markers else None
        last_run = (
            f"{last['written_at'][:19].replace('T', ' ')} ({last['run_id']})" if last else "-"
        )
        out.append(CohortStatus(cohort, bronze, silver, checks, gold, last_run))
    return out


def render_status(layout: Layout) -> str:
    rows = cohort_statuses(layout)
    if not rows:
        return f"no cohorts under {layout.bronze_fhir}"
    head = ("cohort", "bronze", "silver", "checks", "gold", "last run")
    cells = [head] + [(r.cohort, r.bronze, r.silver, r.checks, r.gold, r.last_run) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    failing = table_check_lines(layout)
    lines.append("")
    # whole-table checks run in `gold_manifest` (Snakemake) or `check_tables` (the CLI)
    history = read_run_history(layout.run_history).filter(
        pl.col("rule").is_in(["check_tables", "gold_manifest"])
    )
    last_tables = history.sort("started_at").tail(1).to_dicts()
    if (
        last_tables
        and last_tables[0]["status"] == "failed"
        and (last_tables[0]["message"] or "").startswith("check failed")
    ):
        lines.append(f"whole-table checks failed in the last run: {last_tables[0]['message']}")
    elif failing:
        lines.append("whole-table checks failing:")
        lines += failing
    elif read_json_if_valid(layout.check_table(SILVER_TABLES[0])) is not None:
        lines.append("whole-table checks: all passed")
    manifest = read_json_if_valid(layout.corpus_manifest)
    if manifest:
        lines.append(
            f"gold.encounter_summary: {manifest['row_count']:,} rows, Delta version "
            f"{manifest['gold_delta_version']}, manifest {manifest['created_timestamp'][:19]}"
        )
    return "\n".join(lines)


def runs(layout: Layout, last: int = 10) -> pl.DataFrame:
    """One row per invocation (run id), newest first."""
    history = read_run_history(layout.run_history)
    if history.is_empty():
        return history
    jobs = history.filter(pl.col("rule") != "(invocation)")
    summary = (
        history.group_by("run_id")
        .agg(
            pl.col("started_at").min().alias("started"),
            (pl.col("rule") != "(invocation)").sum().alias("jobs"),
            ((pl.col("status") == "failed") & (pl.col("rule") != "(invocation)"))
            .sum()
            .alias("failed"),
            pl.col("rows_written").sum().alias("rows_written"),
            pl.col("cohort").drop_nulls().unique().sort().alias("cohorts"),
            pl.col("status").filter(pl.col("rule") == "(invocation)").last().alias("outcome"),
        )
        .sort("started", descending=True)
        .head(last)
    )
    spans = jobs.group_by("run_id").agg(
        (
            (pl.col("started_at") + pl.duration(milliseconds=pl.col("duration_s") * 1000)).max()
            - pl.col("started_at").min()
        )
        .dt.total_milliseconds()
        .truediv(1000)
        .alias("wall_s")
    )
    return summary.join(spans, on="run_id", how="left")


def render_history(layout: Layout, last: int = 10, show_jobs: bool = False) -> str:
    table = runs(layout, last)
    if table.is_empty():
        return f"no run history under {layout.run_history}"
    lines = [
        f"{'run id':<14}{'started (UTC)':<21}{'outcome':<12}{'jobs':>6}{'failed':>8}"
        f"{'rows':>12}{'wall s':>9}  cohorts"
    ]
    for r in table.iter_rows(named=True):
        outcome = r["outcome"] or ("failed" if r["failed"] else "incomplete")
        wall = f"{r['wall_s']:,.1f}" if r["wall_s"] is not None else "-"
        lines.append(
            f"{r['run_id']:<14}{str(r['started'])[:19]:<21}{outcome:<12}{r['jobs']:>6,}"
            f"{r['failed']:>8,}{r['rows_written'] or 0:>12,}{wall:>9}  {','.join(r['cohorts'])}"
        )
        if show_jobs:
            jobs = read_run_history(layout.run_history).filter(
                (pl.col("run_id") == r["run_id"]) & (pl.col("rule") != "(invocation)")
            )
            for j in jobs.sort("started_at").iter_rows(named=True):
                lines.append(
                    f"    {j['rule']:<28}{j['cohort'] or '':<8}{j['status']:<12}"
                    f"{j['duration_s']:>7.2f}s  {j['message']}"
                )
    return "\n".join(lines)


def render_table_history(layout: Layout, name: str, last: int = 10) -> str:
    """A table's Delta versions, newest first, each with the run, rule and cohort behind it."""
    import datetime as dt

    from fhirhouse.store.delta import is_table
    from fhirhouse.store.maintenance import history

    path = layout.table(name)
    if not is_table(path):
        return f"no table {name} under {layout.root}"
    lines = [
        f"{'version':>7}  {'committed (UTC)':<22}{'operation':<17}{'run id':<14}"
        f"{'rule':<22}{'cohort':<8}{'+rows':>7}{'~rows':>7}{'-rows':>7}"
    ]

    def cell(x: Any, width: int) -> str:
        return ("-" if x is None else str(x))[: width - 1].ljust(width)

    def num(x: Any) -> str:
        return ("-" if x is None else f"{x:,}").rjust(7)

    for v in history(path, last):
        when = dt.datetime.fromtimestamp((v["timestamp"] or 0) / 1000, dt.UTC)
        lines.append(
            f"{v['version']:>7}  {when:%Y-%m-%d %H:%M:%S}   {cell(v['operation'], 17)}"
            f"{cell(v['run_id'], 14)}{cell(v['rule'], 22)}{cell(v['cohort'], 8)}"
            f"{num(v['inserted'])}{num(v['updated'])}{num(v['deleted'])}"
        )
    lines.append(
        f"read a version with pl.read_delta('{path}', version=N); "
        f"restore one with `fhirhouse rollback --table {name} --to-version N`"
    )
    return "\n".join(lines)
