"""The default validation rules of each Silver table, as data (config ``checks.silver``
overrides them key by key).

The rule grammar: ``min_rows``, ``required_non_null``, ``unique_keys``, ``min_char_count`` +
``max_short_pct``, ``required_section_flags`` + ``required_sections_pct``, ``numeric_ranges``.
"""

from __future__ import annotations

from typing import Any

SILVER_RULES: dict[str, dict[str, Any]] = {
    "patient": {
        "min_rows": 100,
        "required_non_null": ["patient_id", "gender"],
        "unique_keys": ["patient_id"],
    },
    "encounter": {
        "min_rows": 100,
        "required_non_null": ["encounter_id", "patient_id"],
        "unique_keys": ["encounter_id"],
    },
    "condition": {
        "min_rows": 50,
        "required_non_null": ["condition_id", "patient_id", "code"],
        "unique_keys": ["condition_id"],
    },
    "observation": {
        "min_rows": 100,
        "required_non_null": ["observation_id", "patient_id", "code"],
        "unique_keys": ["observation_id"],
    },
    "medication_request": {
        "min_rows": 0,
        "required_non_null": ["medication_request_id", "patient_id"],
        "unique_keys": ["medication_request_id"],
    },
    "procedure": {
        "min_rows": 0,
        "required_non_null": ["procedure_id", "patient_id"],
        "unique_keys": ["procedure_id"],
    },
    "soap_note": {
        "min_rows": 50,
        "required_non_null": ["note_id", "patient_id", "note_text"],
        "unique_keys": ["note_id"],
        "min_char_count": 100,
        "max_short_pct": 0.2,
        "required_section_flags": ["has_subjective", "has_assessment", "has_plan"],
        "required_sections_pct": 0.8,
    },
    "ecg_metadata": {
        "min_rows": 0,
        "required_non_null": ["ecg_id", "patient_id"],
        "unique_keys": ["ecg_id"],
        "numeric_ranges": {"heart_rate_bpm": [30, 250]},
    },
    "imaging_study": {
        "min_rows": 0,
        "required_non_null": ["study_id", "patient_id"],
        "unique_keys": ["study_id"],
    },
    "genomic_report": {
        "min_rows": 0,
        "required_non_null": ["report_id", "patient_id", "data_limitation"],
        "unique_keys": ["report_id"],
    },
}


def summary(rules: dict[str, Any]) -> str:
    """A one-line human summary, e.g. "min rows 50; unique `note_id`; ..."."""
    parts = [f"min rows {rules.get('min_rows', 0)}"]
    parts += [f"unique `{c}`" for c in rules.get("unique_keys", [])]
    if "required_section_flags" in rules:
        flags = ", ".join(rules["required_section_flags"])
        parts.append(f"≥{rules['required_sections_pct']:.0%} rows with [{flags}]")
    if "min_char_count" in rules:
        parts.append(
            f"≤{rules.get('max_short_pct', 1.0):.0%} notes under {rules['min_char_count']} chars"
        )
    for col, (lo, hi) in rules.get("numeric_ranges", {}).items():
        parts.append(f"`{col}` in [{lo}, {hi}]")
    return "; ".join(parts)
