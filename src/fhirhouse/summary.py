"""What a build prints when it ends, for ``fhirhouse run`` and for a Snakemake build alike:
a line per cohort (bundles parsed, checks, Gold rows), the rows per table and cohort, the
whole-table checks that fail, Gold's total and where the data is.

Counts and cohort labels only: never an identifier or a bundle file name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fhirhouse import SILVER_TABLES
from fhirhouse.layout import Layout
from fhirhouse.store.atomic import read_json_if_valid
from fhirhouse.store.delta_log import silver_versions
from fhirhouse.words import plural


def cohort_line(cohort: str, silver: Mapping[str, Any], gold: Mapping[str, Any] | None) -> str:
    """One cohort's build: its bundles, what was parsed or quarantined, checks, Gold rows."""
    q = silver["quarantined_files"]
    line = (
        f"cohort {cohort}: {plural(silver['files'], 'bundle')} ({silver['parsed_files']:,} parsed"
        f"{f', {q:,} quarantined' if q else ''}), checks "
        f"{'passed' if silver['checks_passed'] else 'FAILED'}"
    )
    if gold is not None:
        line += (
            f"; gold {plural(gold['rows'], 'row')} (+{gold['inserted']:,} ~{gold['updated']:,} "
            f"-{gold['deleted']:,}), checks {'passed' if gold['checks_passed'] else 'FAILED'}"
        )
    return line


def rows_table(layout: Layout, results: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """Rows per Silver table (lines) and cohort (columns), with each table's Delta version;
    ``results`` maps a cohort to its Silver marker's ``tables``. The versions come from
    listing each table's log (no deltalake: this runs in the Snakemake process too)."""
    cohorts = sorted(results)
    width = max(len(t) for t in SILVER_TABLES) + 2
    head = "table".ljust(width) + "".join(c.rjust(10) for c in cohorts) + "version".rjust(10)
    lines = [head, "-" * len(head)]
    versions = silver_versions(layout)
    for table in SILVER_TABLES:
        cells = "".join(f"{results[c][table]['rows']:,}".rjust(10) for c in cohorts)
        lines.append(table.ljust(width) + cells + str(versions[table]).rjust(10))
    return "\n".join(lines)


def table_check_lines(layout: Layout) -> list[str]:
    """A line per Silver table whose whole-table checks fail (from its check file)."""
    lines = []
    for t in SILVER_TABLES:
        r = read_json_if_valid(layout.check_table(t))
        if r is not None and not r["passed"]:
            lines.append(f"  silver.{t}: {r['failed_checks']}")
    return lines


def table_checks(layout: Layout) -> list[str]:
    """The whole-table checks that fail, a heading and a line per table; none: no lines."""
    failing = table_check_lines(layout)
    if not failing:
        return []
    where = layout.check_tables_md()
    return [f"whole-table checks failing (details in {where}):", *failing]


def manifest_line(layout: Layout, manifest: Mapping[str, Any]) -> str:
    return (
        f"gold.encounter_summary: {plural(manifest['row_count'], 'row')}, version "
        f"{manifest['gold_delta_version']}; manifest {layout.corpus_manifest}"
    )


def where(layout: Layout) -> str:
    """The root as a user finds it again: absolute, or the URI."""
    return layout.root if layout.on_store else str(Path(layout.root).resolve())


def build_summary(layout: Layout, run_id: str) -> str | None:
    """The summary of a Snakemake build from the markers its jobs wrote: a line per cohort
    built by run ``run_id``, the rows table of every cohort, failing whole-table checks,
    Gold's total and where the data is. ``None`` when the run built no Silver or Gold."""
    from fhirhouse.bronze.landing import list_cohorts

    silver: dict[str, dict[str, Any]] = {}
    gold: dict[str, dict[str, Any] | None] = {}
    for cohort in list_cohorts(layout):
        marker = read_json_if_valid(layout.silver_cohort_marker(cohort))
        if isinstance(marker, dict) and "tables" in marker:
            silver[cohort] = marker
            gold[cohort] = read_json_if_valid(layout.gold_marker(cohort))
    manifest = read_json_if_valid(layout.gold_manifest_marker())

    def now(marker: Any) -> bool:
        return isinstance(marker, dict) and marker.get("run_id") == run_id

    built = [c for c in silver if now(silver[c]) or now(gold[c])]
    if not built and not now(manifest):
        return None
    lines = [
        f"[{n}/{len(built)}] {cohort_line(c, silver[c], gold[c])}" for n, c in enumerate(built, 1)
    ]
    if len(built) < len(silver):
        lines.append(f"unchanged: cohort {', '.join(c for c in silver if c not in built)}")
    lines += ["", rows_table(layout, {c: m["tables"] for c, m in silver.items()})]
    failing = table_checks(layout)
    if failing:
        lines += ["", *failing]
    if isinstance(manifest, dict):
        lines += ["", manifest_line(layout, manifest)]
    lines.append(f"data under {where(layout)}/")
    return "\n".join(lines)
