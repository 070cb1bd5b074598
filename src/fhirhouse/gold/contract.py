"""The contract files, generated from the code.

- ``schemas/gold_encounter_summary.json``: JSON Schema 2020-12 of a Gold row;
- ``docs/DATA_DICTIONARY.md``: every Silver table and Gold column;
- ``docs/CORPUS_CONTRACT.md``: the consumer-facing contract.

``fhirhouse contract`` writes them; ``fhirhouse contract --check`` fails when a committed
file differs from what the code generates.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from fhirhouse.checks.rules import SILVER_RULES, summary
from fhirhouse.gold.encounter_summary import (
    CONTRACT_VERSION,
    GOLD_SCHEMA,
    KEY,
    NULLABLE_FIELDS,
    REQUIRED_FIELDS,
    SUMMARY_NAMESPACE,
)
from fhirhouse.gold.manifest import GOLD_TABLE
from fhirhouse.silver.registry import REGISTRY

SCHEMA_ID = "https://scribe-iq.dev/schemas/gold_encounter_summary.json"
SCHEMA_FILE = Path("schemas/gold_encounter_summary.json")
DICTIONARY_FILE = Path("docs/DATA_DICTIONARY.md")
CONTRACT_FILE = Path("docs/CORPUS_CONTRACT.md")

GOLD_DESCRIPTIONS: dict[str, str] = {
    "summary_id": f"UUIDv5 of `encounter_id` in namespace `{SUMMARY_NAMESPACE}`; stable",
    "patient_id": "the encounter's patient (foreign key to silver.patient)",
    "encounter_id": "the grain and primary key: one row per silver.encounter row",
    "patient_age": "whole years at `encounter_date` (anniversary rule); null without both dates",
    "patient_gender": "silver.patient.gender",
    "encounter_type": "silver.encounter.type_display (may be empty)",
    "encounter_date": "UTC calendar date of the encounter's start",
    "active_conditions": "problem list as of `encounter_date`: onset on or before, not abated "
    "by then; distinct, sorted; `[]` when none",
    "active_medications": "`active` medication requests first authored on or before "
    "`encounter_date`; distinct, sorted; `[]` when none",
    "recent_vitals": "last value by effective date for heart rate (8867-4), blood pressure "
    "(85354-9 components 8480-6/8462-4), temperature (8310-5), SpO2 (2708-6, 59408-5); "
    "struct always present",
    "recent_labs": "distinct laboratory observations {name, value, unit}, sorted; `[]` when none",
    "procedures": "distinct, sorted procedure displays of the encounter; `[]` when none",
    "soap_note_text": "text of the encounter's last note by date",
    "soap_note_id": "id of that note",
    "ecg_finding": "conclusion of the encounter's last ECG report",
    "ecg_rhythm": "rhythm of that ECG report",
    "has_ecg": "any ECG report linked to the encounter",
    "imaging": "the encounter's last imaging study by start date; struct always present, "
    "`has_imaging` false and members null when none",
    "has_genomics": "any genomic report linked to the encounter",
    "genomic_summary": "result summary of the encounter's last genomic report",
    "created_timestamp": "when the row was last (re)computed",
    "silver_versions": "Delta versions of the ten Silver tables the row was computed from",
}

#: The one tie rule of every "last by date" pick (vitals, note, ECG, imaging, genomics).
LAST_BY_RULE = (
    '"Last" picks (`recent_vitals`, the SOAP note, ECG, `imaging`, genomics) take the row '
    "with the latest date (a row without a date counts as the earliest); among rows of the "
    "same date, the one recorded later in its bundle wins (the higher `source_entry` in Silver; "
    "for blood pressure, then the later component). The order of Silver's rows on disk never "
    "matters."
)

SILVER_NOTES: dict[str, str] = {
    "source_file": "Bronze bundle file name (provenance)",
    "source_entry": "index of the row's resource in its bundle's `entry` array, from 0 "
    "(provenance; breaks ties of Gold's last-by-date picks)",
    "ingest_timestamp": "parse run that last changed the row (provenance)",
    "cohort": "Bronze cohort label; the Delta partition column (provenance)",
    "components_json": "JSON array of {code, display, value, unit}; null without components",
    "data_limitation": "always: Synthea simulated inheritance — not clinical variants",
}

LIMITATIONS = [
    "**Medications** are a forward `status = active` approximation: FHIR carries no stop date, "
    "so a medication stopped later never appears, even on earlier encounters.",
    "**ECG** is empty on Synthea Coherent: it has no ECG DiagnosticReports, so `has_ecg` is "
    "false there (generated and other corpora may have some).",
    "**Genomics** is Synthea's simulated inheritance, not clinical variants (see "
    "`data_limitation`).",
    "**DICOM**: only some imaging studies have files; descriptive DICOM tags are placeholders "
    "and become null, so ground imaging on `modality` and `body_site_display`. Pixels are never "
    "read.",
    "**Vitals** cover a minority of encounters (about 14% on Coherent).",
    "**SOAP Objective** is absent from Coherent notes; section flags are heuristic.",
    "**Social-determinant conditions** (employment, stress, ...) are Synthea conditions that "
    "rarely abate; they inflate the average problem-list length.",
    "**Encounter dates** are UTC calendar dates of the encounter's start.",
    "Medications given by reference (no code) appear as empty strings in "
    "`active_medications`; provider ids from conditional references look like `us-npi|...` "
    "(kept from the reference for v1.1.0).",
    'A respiratory "DNA and RNA panel" report is classified as genomic (keyword `dna`), as in '
    "the reference.",
]


def _json_type(t: pa.DataType) -> dict[str, Any]:
    if pa.types.is_string(t):
        return {"type": "string"}
    if pa.types.is_integer(t):
        return {"type": "integer"}
    if pa.types.is_floating(t):
        return {"type": "number"}
    if pa.types.is_boolean(t):
        return {"type": "boolean"}
    if pa.types.is_date(t):
        return {"type": "string", "format": "date"}
    if pa.types.is_timestamp(t):
        return {"type": "string", "format": "date-time"}
    if pa.types.is_list(t):
        return {"type": "array", "items": _json_type(t.value_type)}
    if pa.types.is_struct(t):
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {f.name: _nullable(_json_type(f.type)) for f in t},
        }
    raise TypeError(f"no JSON Schema mapping for {t}")


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one Gold row."""
    props = {}
    for f in GOLD_SCHEMA:
        s = _json_type(f.type)
        if f.name in NULLABLE_FIELDS:
            s = _nullable(s)
        props[f.name] = {**s, "description": GOLD_DESCRIPTIONS[f.name]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": GOLD_TABLE,
        "description": f"One row of {GOLD_TABLE}, corpus contract v{CONTRACT_VERSION}.",
        "x-contract-version": CONTRACT_VERSION,
        "type": "object",
        "additionalProperties": False,
        "required": list(REQUIRED_FIELDS),
        "properties": props,
    }


def to_json_row(value: Any) -> Any:
    """A Gold row (or value) as JSON data: dates and timestamps become ISO-8601 strings."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_json_row(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json_row(v) for v in value]
    return value


def row_validator() -> Callable[[dict[str, Any]], bool]:
    """``row -> bool``: whether a Gold row (as Python values) validates against the contract."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(
        json_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return lambda row: validator.is_valid(to_json_row(row))


# ----------------------------------------------------------------- the fast contract check
#
# ``row_validator`` costs about 0.3 ms a row. The fast check decides the same verdicts in two
# steps: a vectorized pass over the columns, derived from the same JSON Schema and the frame's
# dtypes, marks the rows it can prove valid; every other row goes through ``row_validator``,
# so each violation is still decided by jsonschema itself. The pass is conservative: a dtype,
# keyword or format it does not know makes it unsure, never sure, so the verdicts stay exact
# (only slower) if the schema grows.

#: Keywords the vectorized pass understands; any other keyword makes its node "unsure".
_KNOWN_KEYWORDS = frozenset(
    {
        "type",
        "format",
        "items",
        "properties",
        "additionalProperties",
        "required",
        "description",
        "title",
        "$schema",
        "$id",
        "x-contract-version",
    }
)
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _const(n: int, value: bool) -> pl.Series:
    return pl.repeat(value, n, dtype=pl.Boolean, eager=True)


def _python_year(s: pl.Series) -> pl.Series:
    """Dates and timestamps that convert to Python (years 1 to 9999)."""
    return s.dt.year().is_between(1, 9999).fill_null(False)


def _iso_date_string(s: pl.Series) -> pl.Series:
    """Strings that certainly pass jsonschema's ``date`` format (``YYYY-MM-DD``, a real date)."""
    parsed = s.str.to_date("%Y-%m-%d", strict=False)
    exact = s.str.contains(_ISO_DATE) & (parsed.dt.strftime("%Y-%m-%d") == s)
    return (exact & _python_year(parsed)).fill_null(False)


def _sure_non_null(s: pl.Series, node: Mapping[str, Any], types: set[str]) -> pl.Series:
    """Per value, assuming it is not null: whether it certainly validates against ``node``."""
    n, dtype, fmt = s.len(), s.dtype, node.get("format")
    if dtype == pl.String:
        if "string" not in types:
            return _const(n, False)
        if fmt is None:
            return _const(n, True)
        return _iso_date_string(s) if fmt == "date" else _const(n, False)
    if dtype == pl.Boolean:
        return _const(n, "boolean" in types)
    if dtype.is_integer():
        return _const(n, bool(types & {"integer", "number"}))
    if dtype.is_float():
        return _const(n, "number" in types)
    # Dates and timestamps reach the validator as ``isoformat()`` strings (``to_json_row``).
    if dtype == pl.Date:
        ok = "string" in types and fmt in (None, "date")
        return _python_year(s) if ok else _const(n, False)
    if isinstance(dtype, pl.Datetime):
        # UTC-aware timestamps render as ``...+00:00``: RFC 3339. Naive or other zones: unsure.
        utc = fmt == "date-time" and dtype.time_zone == "UTC"
        ok = "string" in types and (fmt is None or utc)
        return _python_year(s) if ok else _const(n, False)
    if isinstance(dtype, pl.List):
        return _sure_list(s, node) if "array" in types else _const(n, False)
    if isinstance(dtype, pl.Struct):
        return _sure_struct(s, node) if "object" in types else _const(n, False)
    return _const(n, False)  # Decimal, Time, Duration, Binary, Categorical, Array, Object, ...


def _sure_list(s: pl.Series, node: Mapping[str, Any]) -> pl.Series:
    n = s.len()
    if "items" not in node:
        return _const(n, True)
    lengths = s.list.len().fill_null(0)
    if not lengths.sum():
        return _const(n, True)
    items = s.filter(lengths > 0).explode()  # non-empty lists only: no null padding
    parents = (
        pl.DataFrame({"row": pl.int_range(n, eager=True), "len": lengths})
        .filter(pl.col("len") > 0)
        .select(pl.col("row").repeat_by("len").explode())
        .to_series()
    )
    bad = parents.filter(~_sure(items, node["items"]))
    return ~pl.int_range(n, eager=True).is_in(bad.implode())


def _sure_struct(s: pl.Series, node: Mapping[str, Any]) -> pl.Series:
    n, fields = s.len(), [f.name for f in s.dtype.fields]
    props = node.get("properties", {})
    extra = node.get("additionalProperties", True)
    if not isinstance(extra, bool) or (extra is False and set(fields) - set(props)):
        return _const(n, False)
    if set(node.get("required", [])) - set(fields):
        return _const(n, False)
    ok = _const(n, True)
    for name in fields:
        if name in props:
            ok = ok & _sure(s.struct.field(name), props[name])
    return ok


def _sure(s: pl.Series, node: Mapping[str, Any]) -> pl.Series:
    """Per value: True where it certainly validates against ``node``; False where unsure."""
    n = s.len()
    if not isinstance(node, Mapping) or set(node) - _KNOWN_KEYWORDS or "type" not in node:
        return _const(n, False)
    types = {node["type"]} if isinstance(node["type"], str) else set(node["type"])
    nulls = s.is_null()
    ok = _sure_non_null(s, node, types).fill_null(False) & ~nulls
    return ok | nulls if "null" in types else ok


def certainly_valid(rows: pa.Table | pl.DataFrame) -> pl.Series:
    """Per row: True where the vectorized pass proves the row valid against the contract.

    False means unsure, not invalid: ``invalid_row_mask`` asks ``row_validator`` about those.
    """
    df = rows if isinstance(rows, pl.DataFrame) else pl.from_arrow(rows)
    schema = json_schema()
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    sure = (
        set(schema) <= _KNOWN_KEYWORDS
        and schema.get("type") == "object"
        and isinstance(extra, bool)
        and not (extra is False and set(df.columns) - set(props))
        and not set(schema.get("required", [])) - set(df.columns)
    )
    ok = _const(df.height, sure)
    if sure:
        for name in df.columns:
            if name in props:
                ok = ok & _sure(df[name], props[name])
    return ok


def invalid_row_mask(rows: pa.Table | pl.DataFrame) -> pl.Series:
    """Per row: whether ``row_validator()`` rejects it, deciding it row by row only where the
    vectorized pass (``certainly_valid``) cannot prove the row valid."""
    df = rows if isinstance(rows, pl.DataFrame) else pl.from_arrow(rows)
    unsure = (~certainly_valid(df)).arg_true()
    invalid = _const(df.height, False).alias("invalid")
    if unsure.len():
        is_valid = row_validator()
        verdicts = [not is_valid(row) for row in df[unsure].iter_rows(named=True)]
        invalid = invalid.scatter(unsure, verdicts)
    return invalid


def invalid_row_count(rows: pa.Table | pl.DataFrame) -> int:
    """How many rows ``row_validator()`` rejects: the same count, vectorized where provable."""
    return int(invalid_row_mask(rows).sum())


def render_json_schema() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _type_name(t: pa.DataType) -> str:
    return str(t).replace("timestamp[us, tz=UTC]", "timestamp(us, UTC)")


def _gold_table() -> list[str]:
    lines = [
        "| # | Column | Type | Required | Nullable | Meaning |",
        "|---:|---|---|---|---|---|",
    ]
    for i, f in enumerate(GOLD_SCHEMA, 1):
        lines.append(
            f"| {i} | `{f.name}` | `{_type_name(f.type)}` | "
            f"{'yes' if f.name in REQUIRED_FIELDS else 'no'} | "
            f"{'yes' if f.name in NULLABLE_FIELDS else 'no'} | {GOLD_DESCRIPTIONS[f.name]} |"
        )
    return lines


def render_data_dictionary() -> str:
    lines = [
        "# Data dictionary",
        "",
        "Generated by `fhirhouse contract` from the Silver registry, the validation rules and "
        "the Gold schema; do not edit by hand (`fhirhouse contract --check` fails when stale).",
        "",
        "Every table is a Delta table with Change Data Feed on (`delta.enableChangeDataFeed = "
        "true`). Every Silver table is partitioned by `cohort` and ends with the provenance "
        "columns `source_file`, `source_entry`, `ingest_timestamp` and `cohort`.",
        "",
    ]
    for name, spec in REGISTRY.items():
        rules = SILVER_RULES[name]
        required = set(rules.get("required_non_null", []))
        lines += [
            f"## silver.{name}",
            "",
            f"Primary key `{spec.key}`; {len(spec.schema)} columns. Validation: {summary(rules)}.",
            "",
            "| Column | Type | Required | Notes |",
            "|---|---|---|---|",
        ]
        for f in spec.schema:
            note = "Primary key" if f.name == spec.key else SILVER_NOTES.get(f.name, "")
            tick = "✓" if f.name in required else ""
            lines.append(f"| `{f.name}` | `{_type_name(f.type)}` | {tick} | {note} |")
        lines.append("")
    lines += [
        f"## {GOLD_TABLE}",
        "",
        f"Primary key `{KEY}`; {len(GOLD_SCHEMA)} columns; contract v{CONTRACT_VERSION}. "
        "Every row validates against `schemas/gold_encounter_summary.json`.",
        "",
        *_gold_table(),
        "",
        LAST_BY_RULE,
        "",
    ]
    return "\n".join(lines)


def render_corpus_contract() -> str:
    required = ", ".join(f"`{n}`" for n in REQUIRED_FIELDS)
    lines = [
        f"# Corpus contract: {GOLD_TABLE} v{CONTRACT_VERSION}",
        "",
        "Generated by `fhirhouse contract`; do not edit by hand.",
        "",
        f"`{GOLD_TABLE}` is the hand-off interface to downstream consumers: one row per "
        f"encounter (primary key `{KEY}`), stored as a Delta table at "
        "`<root>/gold/encounter_summary/` with Change Data Feed on, described by "
        "`<root>/gold/_metadata/corpus_manifest.json`. Pin to the MAJOR version.",
        "",
        "## Guarantees",
        "",
        f"- Every row has exactly the {len(GOLD_SCHEMA)} columns below and validates against "
        "`schemas/gold_encounter_summary.json` (JSON Schema 2020-12, "
        "`additionalProperties: false`), with dates and timestamps as ISO-8601 strings.",
        f"- Required keys ({required}) are always present. `patient_age` and `encounter_date` "
        "are present but may be null.",
        "- List fields are never null: `[]` when empty.",
        "- `recent_vitals` and `imaging` are always-present structs: their members may be null, "
        "the struct itself never is.",
        "- `summary_id` is stable across rebuilds.",
        "- Consumer rule: when `soap_note_text` exists it is the primary generation anchor; "
        "otherwise ground on the structured fields only.",
        f"- {LAST_BY_RULE}",
        "",
        "## Columns",
        "",
        *_gold_table(),
        "",
        "## Versioning (semver)",
        "",
        "- **PATCH**: notes and documentation only; no schema change.",
        "- **MINOR**: a new optional field, or a new value in an existing field; "
        "backward-compatible.",
        "- **MAJOR**: a removed or renamed field, a changed type, or a changed meaning of a "
        "required field.",
        "",
        "History: v1.0.0 listed the conditions and medications recorded at the encounter; "
        "v1.1.0 keeps the schema and gives both lists as-of-date semantics (MINOR).",
        "",
        "The version is in the code (`CONTRACT_VERSION`), in the JSON Schema "
        "(`x-contract-version`) and in every corpus manifest (`contract_version`).",
        "",
        "## The corpus manifest",
        "",
        "`corpus_manifest.json` carries `manifest_version`, `contract_version`, `gold_table`, "
        "`created_timestamp`, `platform`, `row_count`, `corpus_stats` (encounters, "
        "distinct_patients, with_soap_note, with_ecg, with_imaging, with_genomics, with_vitals "
        "(heart rate present), with_labs, avg_conditions_per_encounter, "
        "avg_medications_per_encounter), `silver_sources` (table, row_count, delta_version for "
        "each Silver table), `gold_delta_version`, and `cohorts` (row_count and corpus_stats "
        "per cohort). To read exactly the corpus a manifest describes, open the Gold table at "
        "its `gold_delta_version`:",
        "",
        "```python",
        "from deltalake import DeltaTable",
        "gold = DeltaTable(path, version=manifest['gold_delta_version']).to_pyarrow_table()",
        "```",
        "",
        "## Known limitations",
        "",
        *[f"{i}. {text}" for i, text in enumerate(LIMITATIONS, 1)],
        "",
    ]
    return "\n".join(lines)


GENERATED: dict[Path, Any] = {
    SCHEMA_FILE: render_json_schema,
    DICTIONARY_FILE: render_data_dictionary,
    CONTRACT_FILE: render_corpus_contract,
}


def write_all(base: str | Path = ".") -> list[Path]:
    """Write every generated file under ``base``; return the paths written."""
    out = []
    for rel, render in GENERATED.items():
        path = Path(base) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(), encoding="utf-8")
        out.append(path)
    return out


def stale(base: str | Path = ".") -> list[Path]:
    """Generated files under ``base`` that are missing or differ from the code's output."""
    out = []
    for rel, render in GENERATED.items():
        path = Path(base) / rel
        if not path.exists() or path.read_text(encoding="utf-8") != render():
            out.append(rel)
    return out
