"""Synthetic FHIR: the resource builders (``builders``) and the corpus generator
(``generator``) that writes Synthea-Coherent-like bundles through them."""

from fhirhouse.synth.generator import (
    SYNTH_FIELDS,
    SynthProfile,
    dicom_header,
    generate,
    write_corpus,
)

__all__ = ["SYNTH_FIELDS", "SynthProfile", "dicom_header", "generate", "write_corpus"]
