"""fhirhouse: a local-first medallion lakehouse for Synthea FHIR R4 bundles."""

import os

__version__ = "0.1.0"

# Polars' allocator (jemalloc) keeps freed pages for a while; in a process that builds one
# cohort after another (`fhirhouse run`) that memory piled up to over 1 GB at 1,278 patients.
# Return freed pages after a second instead. Read when polars loads, so set it before; an
# explicit setting in the environment wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:1000")

#: The column every Silver table is partitioned by (one partition per Bronze cohort).
PARTITION_COLUMN = "cohort"

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
