"""fhirhouse: a local-first medallion lakehouse for Synthea FHIR R4 bundles."""

__version__ = "0.1.0"

SILVER_TABLES: tuple[str, ...] = (
    "patient",
    "encounter",
    "condition",
    "observation",
    "medication_request",
    "procedure",
    "soap_note",
    "ecg_metadata",
    "imaging_study",
    "genomic_report",
)
