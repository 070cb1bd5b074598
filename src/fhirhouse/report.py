"""HTML pages for `snakemake --report`: one per Silver table and one for Gold.

Each Silver page shows the schema, rows per cohort, five sample rows and the check results
rule by rule. The Gold page shows the corpus manifest, per-cohort coverage, three plots
(coverage per cohort, patient-age distribution, encounters by type) and one sample encounter
card with its SOAP note. The pages show data, like the tables they describe: identifiers
appear in sample rows, the card shows redacted ids. Share a report as you would share the data.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from fhirhouse import SILVER_TABLES
from fhirhouse.checks.rules import SILVER_RULES, summary
from fhirhouse.gold.encounter_summary import GOLD_SCHEMA
from fhirhouse.layout import Layout
from fhirhouse.redact import redact
from fhirhouse.silver.registry import spec
from fhirhouse.store import delta

STYLE = """<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.2rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.6rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f3f5f7}td.num{text-align:right}.fail{color:#b00020;font-weight:600}
.pass{color:#1b7f3b}.null{color:#999;font-style:italic}.card{border:1px solid #ccc;
border-radius:8px;padding:1rem;max-width:60rem;background:#fafbfc}
pre{white-space:pre-wrap;background:#fff;border:1px solid #eee;padding:.6rem}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plots figure{margin:0}
</style>"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _cell(value: Any, width: int = 60) -> str:
    if value is None:
        return '<span class="null">null</span>'
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > width:
        text = text[: width - 1] + "…"
    return _e(text)


def table_html(headers: Sequence[str], rows: Sequence[Sequence[Any]], raw: bool = False) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for v in row:
            num = isinstance(v, int | float) and not isinstance(v, bool)
            content = str(v) if raw else _cell(v)
            cells.append(f'<td class="num">{content}</td>' if num else f"<td>{content}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"{STYLE}</head><body><h1>{_e(title)}</h1>{body}</body></html>\n"
    )


def _checks_html(result: Mapping[str, Any] | None, label: str) -> str:
    if result is None:
        return f"<p>No {label} check results.</p>"
    verdict = "pass" if result["passed"] else "fail"
    rows = [
        (
            f"<code>{_e(c['rule'])}</code>",
            f'<span class="{"pass" if c["passed"] else "fail"}">'
            f"{'pass' if c['passed'] else 'FAIL'}</span>",
            _e(c["detail"]),
        )
        for c in result["checks"]
    ]
    return (
        f'<p>{_e(label)}: <span class="{verdict}">{"passed" if result["passed"] else "FAILED"}'
        f"</span> ({result['rules_passed']}/{result['rules_total']} rules)</p>"
        + table_html(["rule", "result", "detail"], rows, raw=True)
    )


def silver_page(
    name: str,
    rows_per_cohort: Mapping[str, int],
    sample: pl.DataFrame,
    table_checks: Mapping[str, Any] | None,
    cohort_checks: Mapping[str, Mapping[str, Any]],
) -> str:
    """The report page of one Silver table: its rows per cohort, and ``sample``, a few of its
    rows."""
    s = spec(name)
    rules = SILVER_RULES[name]
    required = set(rules.get("required_non_null", []))
    schema_rows = [
        (f.name, str(f.type), "key" if f.name == s.key else "", "✓" if f.name in required else "")
        for f in s.schema
    ]
    per_cohort = sorted(rows_per_cohort.items())
    sample = sample.sort(s.key).head(5)
    body = [
        f"<p>Primary key <code>{_e(s.key)}</code>; {len(s.schema)} columns; "
        f"{sum(rows_per_cohort.values()):,} rows. "
        f"Rules: {_e(summary(rules).replace('`', ''))}.</p>",
        "<h2>Rows per cohort</h2>",
        table_html(["cohort", "rows"], per_cohort) if per_cohort else "<p>No rows.</p>",
        "<h2>Checks</h2>",
        _checks_html(table_checks, "whole table"),
    ]
    for cohort, result in sorted(cohort_checks.items()):
        body.append(_checks_html(result, f"cohort {cohort}"))
    body += [
        "<h2>Schema</h2>",
        table_html(["column", "type", "key", "required"], schema_rows),
        "<h2>Sample rows</h2>",
        table_html(sample.columns, sample.rows()) if sample.height else "<p>No rows.</p>",
    ]
    return _page(f"silver.{name}", "".join(body))


#: Coverage plot bars: label -> the manifest's per-cohort statistic.
COVERAGE = {
    "notes": "with_soap_note",
    "vitals": "with_vitals",
    "labs": "with_labs",
    "imaging": "with_imaging",
}


#: The age histogram: 5-year bins from 0 to 110 (the last bin includes 110).
AGE_BIN, AGE_MAX = 5, 110


def _chart(kind: str, title: str, width: int, height: int, **options: Any) -> Any:
    """A pygal chart drawn as plain inline SVG: no script, no XML declaration."""
    import pygal
    from pygal.style import DefaultStyle

    style = DefaultStyle(
        background="white", plot_background="white", font_family="sans-serif",
        label_font_size=9, major_label_font_size=9, title_font_size=11,
        legend_font_size=8, value_font_size=8, tooltip_font_size=8,
    )  # fmt: skip
    return getattr(pygal, kind)(
        title=title, width=width, height=height, style=style, js=[],
        disable_xml_declaration=True, explicit_size=True, **options,
    )  # fmt: skip


def gold_plots(df: pl.DataFrame, per_cohort: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Three inline SVG plots (pygal): coverage per cohort (from the manifest's per-cohort
    statistics), the age distribution and encounters by type (``df``: Gold's ``patient_age``
    and ``encounter_type`` columns)."""
    coverage = _chart(
        "Bar", "Coverage per cohort", 520, 300, y_title="% of encounters", legend_at_bottom=True
    )
    coverage.x_labels = list(COVERAGE)
    for label, entry in sorted(per_cohort.items()):
        rows, stats = entry["row_count"], entry["corpus_stats"]
        values = [round(100 * stats[c] / rows, 1) if rows else 0 for c in COVERAGE.values()]
        coverage.add(f"cohort {label}", values)

    ages = df["patient_age"].drop_nulls()
    ages = ages.filter((ages >= 0) & (ages <= AGE_MAX))
    bins = (ages // AGE_BIN * AGE_BIN).clip(upper_bound=AGE_MAX - AGE_BIN).value_counts()
    age = _chart(
        "Histogram", "Patient age distribution", 520, 300, show_legend=False,
        x_title="patient age at encounter (years)", y_title="encounters",
    )  # fmt: skip
    age.add(
        "encounters",
        [(n, lo, lo + AGE_BIN) for lo, n in sorted(bins.iter_rows())],
    )

    top = (
        df.with_columns(pl.col("encounter_type").replace("", "(no type)"))
        .group_by("encounter_type")
        .len()
        .sort(["len", "encounter_type"], descending=[True, False])
        .head(12)
        .reverse()
    )
    types = _chart(
        "HorizontalBar", "Encounters by type (top 12)", 650, 360, show_legend=False,
        x_title="encounters",
    )  # fmt: skip
    types.x_labels = [t if len(t) <= 45 else t[:44] + "…" for t in top["encounter_type"]]
    types.add("encounters", top["len"].to_list())
    return {"coverage": _svg(coverage), "age": _svg(age), "types": _svg(types)}


def _svg(chart: Any) -> str:
    """The chart's SVG without pygal's scripts (interactive tooltips; a report page is read
    as it is, also offline)."""
    from xml.etree import ElementTree

    tree = chart.render_tree()
    for parent in tree.iter():
        for child in list(parent):
            if isinstance(child.tag, str) and child.tag.rpartition("}")[2] == "script":
                parent.remove(child)
    return ElementTree.tostring(tree, encoding="unicode")


#: The encounter card picks among the first this many rows by encounter id.
CARD_CANDIDATES = 200


def encounter_card(gold: pl.DataFrame) -> str:
    """A sample encounter with its SOAP note.

    Among the first 200 rows by encounter id that have a note, the first that also has
    conditions, medications and a heart rate; failing that, the first with conditions; then
    simply the first with a note.
    """
    rows = gold.sort("encounter_id").head(CARD_CANDIDATES)
    rows = rows.filter(pl.col("soap_note_text").is_not_null())
    if rows.is_empty():
        return "<p>No encounter with a SOAP note.</p>"
    has_conditions = pl.col("active_conditions").list.len() > 0
    rich = has_conditions & (pl.col("active_medications").list.len() > 0)
    rich = rich & pl.col("recent_vitals").struct.field("heart_rate").is_not_null()
    for preference in (rich, has_conditions):
        preferred = rows.filter(preference)
        if not preferred.is_empty():
            rows = preferred
            break
    r = rows.row(0, named=True)

    def listing(items: list[str]) -> str:
        shown = ", ".join(_e(x) for x in items[:6]) or "none"
        return shown + (f" (+{len(items) - 6} more)" if len(items) > 6 else "")

    vitals = ", ".join(f"{k} {v:g}" for k, v in r["recent_vitals"].items() if v is not None)
    img = r["imaging"]
    imaging = (
        f"{_e(img['modality'])} {_e(img['body_site_display'] or '')}"
        if img["has_imaging"]
        else "none"
    )
    note = r["soap_note_text"]
    note = note if len(note) <= 1500 else note[:1500] + "…"
    return (
        '<div class="card">'
        f"<p><b>Encounter</b> {_e(redact(r['encounter_id']))} · <b>patient</b> "
        f"{_e(redact(r['patient_id']))} · {_e(r['encounter_date'])} · "
        f"{_e(r['encounter_type'] or '(no type)')} · age {_e(r['patient_age'])} · "
        f"{_e(r['patient_gender'])}</p>"
        f"<p><b>Active conditions:</b> {listing(r['active_conditions'])}</p>"
        f"<p><b>Active medications:</b> {listing(r['active_medications'])}</p>"
        f"<p><b>Vitals:</b> {_e(vitals or 'none')} · <b>Imaging:</b> {imaging}</p>"
        f"<p><b>SOAP note</b> ({len(r['soap_note_text']):,} characters):</p><pre>{_e(note)}</pre>"
        "</div>"
    )


def gold_page(
    manifest: Mapping[str, Any],
    plotted: pl.DataFrame,
    candidates: pl.DataFrame,
    checks: Mapping[str, Mapping[str, Any]],
) -> str:
    """The Gold page: ``plotted`` holds Gold's ``patient_age`` and ``encounter_type``,
    ``candidates`` the rows the encounter card may show (:data:`CARD_CANDIDATES` rows)."""
    stats = manifest["corpus_stats"]
    per_cohort = [
        (
            c,
            v["row_count"],
            v["corpus_stats"]["distinct_patients"],
            v["corpus_stats"]["with_soap_note"],
            v["corpus_stats"]["with_vitals"],
            v["corpus_stats"]["with_labs"],
            v["corpus_stats"]["with_imaging"],
        )
        for c, v in sorted(manifest.get("cohorts", {}).items())
    ]
    sources = [(s["table"], s["row_count"], s["delta_version"]) for s in manifest["silver_sources"]]
    plots = gold_plots(plotted, manifest.get("cohorts", {})) if plotted.height else {}
    body = [
        f"<p>Contract v{_e(manifest['contract_version'])}; {manifest['row_count']:,} rows; "
        f"Delta version {_e(manifest['gold_delta_version'])}; manifest written "
        f"{_e(manifest['created_timestamp'][:19])} UTC. {len(GOLD_SCHEMA)} columns.</p>",
        "<h2>Corpus manifest</h2>",
        table_html(["statistic", "value"], list(stats.items())),
        "<h2>Per cohort</h2>",
        table_html(
            ["cohort", "rows", "patients", "with note", "with vitals", "with labs", "with imaging"],
            per_cohort,
        ),
        "<h2>Plots</h2>",
        '<div class="plots">'
        + "".join(f'<figure id="plot-{k}">{v}</figure>' for k, v in plots.items())
        + "</div>",
        "<h2>Sample encounter</h2>",
        encounter_card(candidates),
        "<h2>Gold checks</h2>",
        *[_checks_html(r, f"cohort {c}") for c, r in sorted(checks.items())],
        "<h2>Silver sources</h2>",
        table_html(["table", "rows", "Delta version"], sources),
    ]
    return _page("gold.encounter_summary", "".join(body))


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def report_pages_job(layout: Layout, outputs: Mapping[str, str | Path]) -> dict[str, Any]:
    """Write the report pages: ``outputs`` maps each Silver table and ``gold`` to a path.

    Reads what the pages show and no more: row counts from Delta's file statistics, five
    sample rows per table, two Gold columns for the plots and the card's candidate rows."""
    cohorts = sorted(layout.cohort_markers("gold"))
    for name in SILVER_TABLES:
        path = layout.silver_table(name)
        page = silver_page(
            name,
            delta.partition_rows(delta.open_table(path)),
            delta.scan(path).head(5).collect(),
            _read(layout.check_table(name)),
            {c: _read(layout.check_cohort(name, c)) for c in cohorts},
        )
        Path(outputs[name]).write_text(page, encoding="utf-8")
    gold = delta.scan(layout.gold_table)
    first = gold.select("encounter_id").collect().to_series().sort().head(CARD_CANDIDATES)
    page = gold_page(
        _read(layout.corpus_manifest),
        gold.select("patient_age", "encounter_type").collect(),
        gold.filter(pl.col("encounter_id").is_in(first.implode())).collect(),
        {c: _read(layout.check_gold(c)) for c in cohorts},
    )
    Path(outputs["gold"]).write_text(page, encoding="utf-8")
    return {"layer": "report", "tables": [*SILVER_TABLES, "gold"], "rows_written": 0}
