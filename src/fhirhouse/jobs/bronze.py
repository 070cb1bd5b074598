"""Bronze jobs: generate the default corpus, land a source folder, describe each cohort."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fhirhouse.bronze import landing
from fhirhouse.jobs.runlog import write_marker
from fhirhouse.layout import Layout

log = logging.getLogger(__name__)


def land_job(
    layout: Layout,
    source: str | Path | None,
    *,
    cohorts: int | list[str] = 3,
    cohort: str | None = None,
    marker: str | Path | None = None,
    state: str | Path | None = None,
) -> dict[str, Any]:
    """Land ``source`` into Bronze and write the landing marker. ``state``: the workflow's
    source state file (:func:`landing.sync_source_state`), brought up to date before the
    marker so that what this landing repaired does not rerun it."""
    result = landing.land(layout, source, cohorts=cohorts, cohort=cohort)
    if state is not None and source is not None:
        landing.sync_source_state(state, layout, source)
    payload = {
        "new_files": result.new,
        "replaced_files": result.replaced,
        "restored_files": result.restored,
        "dicom_files": result.dicom,
        "unchanged_files": result.unchanged,
        "refused_links": result.refused_links,
        "cohorts": result.manifest["cohorts"],
        "file_count": result.manifest["file_count"],
        "total_bytes": result.manifest["total_bytes"],
    }
    return write_marker(marker or layout.landing_marker(), "bronze", payload)


def resolve_source(layout: Layout, source: str | Path | None) -> Path | None:
    """The folder to land: ``source`` when given; otherwise the generated corpus on a fresh
    root (or a root that already has one); otherwise ``None`` (the Bronze tree as it is)."""
    if source:
        return Path(source)
    if layout.synth_marker.exists() or not landing.list_cohorts(layout):
        return layout.synth_dir
    return None


def synth_job(
    out: str | Path,
    patients: int,
    seed: int,
    marker: str | Path,
    progress: bool = False,
) -> dict[str, Any]:
    """Generate (or refresh) a synthetic corpus in ``out`` and describe it in ``marker``."""
    from fhirhouse.synth import write_corpus

    summary = write_corpus(out, patients, seed, progress=progress)
    log.info(
        "generated %d synthetic patients (%d bytes, %d DICOM files) in %.1f s",
        patients,
        summary["bundle_bytes"],
        summary["dicom_files"],
        summary["seconds"],
    )
    return write_marker(marker, "bronze", {**summary, "out": str(out)})


def bronze_cohort_job(
    layout: Layout, cohort: str, marker: str | Path | None = None
) -> dict[str, Any]:
    """Describe one cohort's Bronze files in its marker: count, bytes and a fingerprint of
    their names, sizes and modification times (no file is read; Silver digests what it
    parses)."""
    files = landing.cohort_files(layout, cohort)
    if not files:
        raise FileNotFoundError(f"cohort {cohort} has no bundle files")
    dicom = landing.cohort_dicom_files(layout, files)
    refused = landing.links_outside(layout.bronze_cohort(cohort), layout.bronze_fhir)
    if refused:
        log.warning(
            "cohort %s: %d symbolic link(s) point outside Bronze; left out", cohort, len(refused)
        )
    state = landing.folder_state(files + dicom)
    payload = {
        "cohort": cohort,
        "refused_links": len(refused),
        "files": len(files),
        "dicom_files": len(dicom),
        "bytes": sum(p.stat().st_size for p in files),
        "fingerprint": state["fingerprint"],
    }
    log.info("bronze cohort %s: %d files, %d bytes", cohort, payload["files"], payload["bytes"])
    return write_marker(marker or layout.bronze_marker(cohort), "bronze", payload)
