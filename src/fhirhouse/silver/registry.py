"""The Silver table registry: name -> primary key and explicit Arrow schema.

Every table ends with provenance: ``source_file``, ``ingest_timestamp``, ``source_entry``
(the row's resource's index in its bundle's ``entry`` array) and ``cohort`` (the Delta
partition column).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from fhirhouse import PARTITION_COLUMN, SILVER_TABLES

TS = pa.timestamp("us", tz="UTC")
S, F, I32, B, D = pa.string(), pa.float64(), pa.int32(), pa.bool_(), pa.date32()

PROVENANCE: tuple[tuple[str, pa.DataType], ...] = (
    ("source_file", S),
    ("source_entry", I32),
    ("ingest_timestamp", TS),
    (PARTITION_COLUMN, S),
)
#: Columns that describe a run rather than the data: excluded when deciding if a row changed.
RUN_COLUMNS: frozenset[str] = frozenset({"ingest_timestamp"})


@dataclass(frozen=True)
class TableSpec:
    name: str
    key: str
    schema: pa.Schema

    @property
    def data_columns(self) -> list[str]:
        """The columns the parser produces (schema minus provenance)."""
        prov = {n for n, _ in PROVENANCE}
        return [f.name for f in self.schema if f.name not in prov]


def _spec(name: str, key: str, cols: list[tuple[str, pa.DataType]]) -> TableSpec:
    return TableSpec(name, key, pa.schema([*cols, *PROVENANCE]))


_SPECS = [
    _spec(
        "patient",
        "patient_id",
        [
            ("patient_id", S),
            ("birth_date", D),
            ("gender", S),
            ("race", S),
            ("ethnicity", S),
            ("state", S),
            ("city", S),
            ("zip", S),
            ("deceased", B),
            ("deceased_date", TS),
        ],
    ),
    _spec(
        "encounter",
        "encounter_id",
        [
            ("encounter_id", S),
            ("patient_id", S),
            ("type_code", S),
            ("type_display", S),
            ("class_code", S),
            ("start_date", TS),
            ("end_date", TS),
            ("status", S),
            ("provider_id", S),
            ("reason_code", S),
            ("reason_display", S),
        ],
    ),
    _spec(
        "condition",
        "condition_id",
        [
            ("condition_id", S),
            ("patient_id", S),
            ("encounter_id", S),
            ("code", S),
            ("display", S),
            ("clinical_status", S),
            ("onset_date", TS),
            ("abatement_date", TS),
            ("recorded_date", TS),
        ],
    ),
    _spec(
        "observation",
        "observation_id",
        [
            ("observation_id", S),
            ("patient_id", S),
            ("encounter_id", S),
            ("code", S),
            ("display", S),
            ("category", S),
            ("value", F),
            ("unit", S),
            ("value_string", S),
            ("components_json", S),
            ("effective_date", TS),
        ],
    ),
    _spec(
        "medication_request",
        "medication_request_id",
        [
            ("medication_request_id", S),
            ("patient_id", S),
            ("encounter_id", S),
            ("code", S),
            ("display", S),
            ("status", S),
            ("intent", S),
            ("authored_on", TS),
            ("dosage_text", S),
        ],
    ),
    _spec(
        "procedure",
        "procedure_id",
        [
            ("procedure_id", S),
            ("patient_id", S),
            ("encounter_id", S),
            ("code", S),
            ("display", S),
            ("status", S),
            ("performed_start", TS),
            ("performed_end", TS),
        ],
    ),
    _spec(
        "soap_note",
        "note_id",
        [
            ("note_id", S),
            ("patient_id", S),
            ("encounter_id", S),
            ("note_date", TS),
            ("note_text", S),
            ("has_subjective", B),
            ("has_objective", B),
            ("has_assessment", B),
            ("has_plan", B),
            ("char_count", I32),
            ("word_count", I32),
            ("binary_id", S),
        ],
    ),
    _spec(
        "ecg_metadata",
        "ecg_id",
        [
            ("ecg_id", S),
            ("patient_id", S),
            ("encounter_id", S),
            ("report_date", TS),
            ("status", S),
            ("conclusion", S),
            ("rhythm", S),
            ("heart_rate_bpm", I32),
            ("pr_interval_ms", I32),
            ("qrs_duration_ms", I32),
            ("has_waveform", B),
            ("waveform_binary_id", S),
        ],
    ),
    _spec(
        "imaging_study",
        "study_id",
        [
            ("study_id", S),
            ("patient_id", S),
            ("encounter_id", S),
            ("started_date", TS),
            ("status", S),
            ("modality", S),
            ("body_site", S),
            ("body_site_display", S),
            ("series_count", I32),
            ("instance_count", I32),
            ("study_description", S),
            ("series_description", S),
            ("study_date", D),
            ("manufacturer", S),
            ("magnetic_field_strength", F),
            ("slice_thickness_mm", F),
            ("rows", I32),
            ("columns", I32),
            ("dicom_binary_id", S),
            ("dicom_extracted", B),
        ],
    ),
    _spec(
        "genomic_report",
        "report_id",
        [
            ("report_id", S),
            ("patient_id", S),
            ("encounter_id", S),
            ("report_date", TS),
            ("status", S),
            ("gene_panel_name", S),
            ("result_summary", S),
            ("has_pathogenic_variant", B),
            ("family_history_flag", B),
            ("binary_id", S),
            ("data_limitation", S),
        ],
    ),
]

REGISTRY: dict[str, TableSpec] = {s.name: s for s in _SPECS}
assert tuple(REGISTRY) == SILVER_TABLES


def spec(name: str) -> TableSpec:
    """The spec of a Silver table; ``KeyError`` with the valid names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown Silver table {name!r}; known: {', '.join(REGISTRY)}") from None
