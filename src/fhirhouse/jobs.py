"""The units of work: what one Snakemake job (or one CLI step) does.

Rule scripts and ``fhirhouse run`` call these same functions, so no transform logic exists
twice. Each job ends by writing its JSON marker atomically; a marker always carries content
(versions, counts, digests, run id), so Snakemake sees real changes across invocations.

Layout under ``root`` (for an ``s3://`` root the first three lines are on the store and
the rest is in the local state folder, see :class:`Layout`)::

    bronze/fhir/cohort=<c>/*.json           raw bundles
    silver/<table>/                         Delta, partitioned by cohort, CDF on
    gold/encounter_summary/, gold/_metadata/corpus_manifest.json
    bronze/_quarantine/cohort=<c>.json      what the last parse of <c> skipped, and why
    _staging/silver/cohort=<c>/<table>.arrow  the parse job's per-table output
    _markers/...                            one JSON per (layer, cohort[, table])
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhirhouse import SILVER_TABLES, __version__
from fhirhouse.bronze import landing
from fhirhouse.bronze.dicom_index import DicomIndex
from fhirhouse.fhir import NotABundleError, RejectedBundleError, parse_bytes
from fhirhouse.gold import encounter_summary as gold
from fhirhouse.gold.manifest import build_corpus_manifest
from fhirhouse.redact import redact
from fhirhouse.silver.build import build_table
from fhirhouse.silver.registry import RUN_COLUMNS, spec
from fhirhouse.store import delta, history, maintenance
from fhirhouse.store.atomic import read_arrow, read_json, write_arrow_atomic, write_json_atomic
from fhirhouse.store.objects import StorePath, data_root, state_dir

log = logging.getLogger(__name__)

_PROCESS_RUN_ID = uuid.uuid4().hex[:12]


def run_id() -> str:
    """The invocation's run id: ``$FHIRHOUSE_RUN_ID`` (set by the Snakefile) or per process."""
    return os.environ.get("FHIRHOUSE_RUN_ID") or _PROCESS_RUN_ID


@dataclass(frozen=True)
class Layout:
    """Every path fhirhouse uses for one root.

    ``data`` holds Bronze, the Silver and Gold tables and the corpus manifest; ``root`` holds
    the local state (markers, staging, logs, checks, run history, quarantine lists, reports).
    They are the same folder unless the root is an object store URI (see
    :mod:`fhirhouse.store.objects`).
    """

    root: Path
    data: Path | StorePath

    @classmethod
    def of(cls, root: str | Path) -> Layout:
        return cls(state_dir(root), data_root(root))

    def silver_table(self, table: str) -> Path | StorePath:
        return self.data / "silver" / spec(table).name

    def staged(self, cohort: str, table: str) -> Path:
        return self.root / "_staging" / "silver" / f"cohort={cohort}" / f"{table}.arrow"

    def quarantine(self, cohort: str) -> Path:
        return self.root / "bronze" / "_quarantine" / f"cohort={cohort}.json"

    @property
    def markers(self) -> Path:
        return self.root / "_markers"

    def landing_marker(self) -> Path:
        return self.markers / "bronze" / "landing.json"

    def bronze_state(self, cohort: str) -> Path:
        """The fingerprint of a cohort's Bronze files that its bronze job was built from."""
        return self.markers / "bronze" / "_state" / f"cohort={cohort}.json"

    def bronze_marker(self, cohort: str) -> Path:
        return self.markers / "bronze" / f"cohort={cohort}.json"

    def parse_marker(self, cohort: str) -> Path:
        return self.markers / "parse" / f"cohort={cohort}.json"

    def silver_marker(self, table: str, cohort: str) -> Path:
        return self.markers / "silver" / table / f"cohort={cohort}.json"

    def silver_cohort_marker(self, cohort: str) -> Path:
        return self.markers / "silver" / f"cohort={cohort}.json"

    @property
    def gold_table(self) -> Path | StorePath:
        return self.data / "gold" / "encounter_summary"

    @property
    def corpus_manifest(self) -> Path | StorePath:
        return self.data / "gold" / "_metadata" / "corpus_manifest.json"

    @property
    def synth_dir(self) -> Path:
        return self.root / "_synth" / "bundles"

    @property
    def synth_marker(self) -> Path:
        return self.root / "_synth" / "manifest.json"

    def gold_marker(self, cohort: str) -> Path:
        return self.markers / "gold" / f"cohort={cohort}.json"

    def gold_manifest_marker(self) -> Path:
        return self.markers / "gold" / "manifest.json"

    @property
    def checks(self) -> Path:
        return self.root / "_checks"

    def check_cohort(self, table: str, cohort: str) -> Path:
        return self.checks / "silver" / table / f"cohort={cohort}.json"

    def check_cohort_md(self, cohort: str) -> Path:
        return self.checks / "silver" / f"cohort={cohort}.md"

    def check_table(self, table: str) -> Path:
        return self.checks / "silver" / table / "table.json"

    def check_tables_md(self) -> Path:
        return self.checks / "silver" / "tables.md"

    def check_gold(self, cohort: str) -> Path:
        return self.checks / "gold" / f"cohort={cohort}.json"

    def check_gold_md(self, cohort: str) -> Path:
        return self.checks / "gold" / f"cohort={cohort}.md"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def write_marker(path: str | Path, layer: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Stamp run metadata on ``payload`` and write it atomically as the job's last act."""
    marker = {
        "layer": layer,
        **payload,
        "run_id": run_id(),
        "written_at": _now(),
        "fhirhouse_version": __version__,
    }
    write_json_atomic(path, marker)
    return marker


# ------------------------------------------------------------------------------- bronze


def land_job(
    root: str | Path,
    source: str | Path | None,
    *,
    cohorts: int | list[str] = 3,
    cohort: str | None = None,
    marker: str | Path | None = None,
) -> dict[str, Any]:
    """Land ``source`` into Bronze and write the landing marker."""
    result = landing.land(root, source, cohorts=cohorts, cohort=cohort)
    payload = {
        "new_files": result.new,
        "replaced_files": result.replaced,
        "dicom_files": result.dicom,
        "unchanged_files": result.unchanged,
        "refused_links": result.refused_links,
        "cohorts": result.manifest["cohorts"],
        "file_count": result.manifest["file_count"],
        "total_bytes": result.manifest["total_bytes"],
    }
    return write_marker(marker or Layout.of(root).landing_marker(), "bronze", payload)


def resolve_source(root: str | Path, source: str | Path | None) -> Path | None:
    """The folder to land: ``source`` when given; otherwise the generated corpus on a fresh
    root (or a root that already has one); otherwise ``None`` (the Bronze tree as it is)."""
    if source:
        return Path(source)
    layout = Layout.of(root)
    if layout.synth_marker.exists() or not landing.list_cohorts(root):
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
    from fhirhouse.bronze.synth import write_corpus

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
    root: str | Path, cohort: str, marker: str | Path | None = None
) -> dict[str, Any]:
    """Describe one cohort's Bronze files (count, bytes, content digest) in its marker."""
    files = landing.cohort_files(root, cohort)
    if not files:
        raise FileNotFoundError(f"cohort {cohort} has no bundle files")
    dicom = landing.cohort_dicom_files(root, files)
    refused = landing.links_outside(landing.cohort_dir(root, cohort), landing.fhir_dir(root))
    if refused:
        log.warning(
            "cohort %s: %d symbolic link(s) point outside Bronze; left out", cohort, len(refused)
        )
    payload = {
        "cohort": cohort,
        "refused_links": len(refused),
        "files": len(files),
        "dicom_files": len(dicom),
        "bytes": sum(p.stat().st_size for p in files),
        "input_digest": landing.cohort_digest(files + dicom),
    }
    log.info("bronze cohort %s: %d files, %d bytes", cohort, payload["files"], payload["bytes"])
    return write_marker(marker or Layout.of(root).bronze_marker(cohort), "bronze", payload)


# ------------------------------------------------------------------------------- silver


@dataclass
class CohortParse:
    """The parse of one cohort: records per table plus what was quarantined."""

    records: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {t: [] for t in SILVER_TABLES}
    )
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> digest of its bytes


def _quarantine_entry(
    cohort: str, name: str, sha256: str, size: int, kind: str, reason: str, **extra: Any
) -> dict[str, Any]:
    return {
        "cohort": cohort,
        "file_ref": redact(name),
        "sha256": sha256,
        "bytes": size,
        "kind": kind,
        "reason": reason,
        **extra,
    }


def parse_files(cohort: str, files: list[Path], dicom: DicomIndex | None) -> CohortParse:
    """Read and parse each bundle once; bad files are quarantined, the rest goes on."""
    out = CohortParse()
    resolver = dicom.resolve if dicom else None
    started = time.monotonic()
    for i, path in enumerate(files, 1):
        data = path.read_bytes()
        out.files += 1
        out.bytes += len(data)
        sha256 = out.sha256[path.name] = hashlib.sha256(data).hexdigest()
        try:
            parsed = parse_bytes(data, resolver)
        except NotABundleError as exc:
            reason = f"not a FHIR Bundle: {exc}"
        except RejectedBundleError as exc:
            reason = str(exc)
        else:
            reason = None
        if reason is not None:
            out.quarantine.append(
                _quarantine_entry(cohort, path.name, sha256, len(data), "file", reason)
            )
            log.warning("bundle %s quarantined: %s", redact(path.name), reason)
            continue
        if parsed.issues:
            kinds = Counter(issue.reason.split(":", 1)[0] for issue in parsed.issues)
            log.warning(
                "bundle %s: %d resource(s) dropped or kept FHIR-only (%s)",
                redact(path.name),
                len(parsed.issues),
                ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())),
            )
        for issue in parsed.issues:
            out.quarantine.append(
                _quarantine_entry(
                    cohort,
                    path.name,
                    sha256,
                    len(data),
                    "resource",
                    issue.reason,
                    resource_type=issue.resource_type,
                )
            )
        for table, recs in parsed.records.items():
            for rec in recs:
                rec["source_file"] = path.name
            out.records[table].extend(recs)
        if i % 100 == 0:
            log.info(
                "cohort %s: parsed %d/%d bundles (%.1f s)",
                cohort,
                i,
                len(files),
                time.monotonic() - started,
            )
    return out


def parse_cohort_job(
    root: str | Path,
    cohort: str,
    *,
    staged: dict[str, str | Path] | None = None,
    marker: str | Path | None = None,
) -> dict[str, Any]:
    """Parse a cohort once into all ten tables, staged as Arrow files, and write its marker."""
    layout = Layout.of(root)
    files = landing.cohort_files(root, cohort)
    dicom = DicomIndex.for_root(root)
    started = time.monotonic()
    parsed = parse_files(cohort, files, dicom)
    ingest_ts = dt.datetime.now(dt.UTC)
    rows = {}
    sizes = {p.name: p.stat().st_size for p in files}
    for table in SILVER_TABLES:
        problems: Counter[tuple[str, str]] = Counter()
        arrow = build_table(
            table,
            parsed.records[table],
            ingest_timestamp=ingest_ts,
            cohort=cohort,
            problems=problems,
        )
        for (name, column), count in sorted(problems.items()):
            reason = (
                f"{table}.{column}: {count} value(s) of the wrong type or format, stored as null"
            )
            log.warning("bundle %s: %s", redact(name), reason)
            parsed.quarantine.append(
                {
                    "cohort": cohort,
                    "file_ref": redact(name),
                    "bytes": sizes.get(name),
                    "kind": "value",
                    "reason": reason,
                    "table": table,
                    "column": column,
                    "count": count,
                }
            )
        target = Path(staged[table]) if staged else layout.staged(cohort, table)
        write_arrow_atomic(target, arrow)
        rows[table] = arrow.num_rows
    write_json_atomic(
        layout.quarantine(cohort),
        {"cohort": cohort, "checked_at": _now(), "entries": parsed.quarantine},
    )
    elapsed = time.monotonic() - started
    quarantined_files = sum(1 for q in parsed.quarantine if q["kind"] == "file")
    log.info(
        "cohort %s parsed: %d bundles (%d quarantined), %d bytes in %.2f s; rows %s",
        cohort,
        parsed.files,
        quarantined_files,
        parsed.bytes,
        elapsed,
        rows,
    )
    payload = {
        "cohort": cohort,
        "files": parsed.files,
        "bytes": parsed.bytes,
        "quarantined_files": quarantined_files,
        "quarantined_resources": sum(1 for q in parsed.quarantine if q["kind"] == "resource"),
        "null_coerced_values": sum(q["count"] for q in parsed.quarantine if q["kind"] == "value"),
        "dicom_files_indexed": len(dicom),
        "rows": rows,
        "ingest_timestamp": ingest_ts.isoformat(),
        # the bundles' digests from the bytes parsed above: no second read of the cohort
        "input_digest": landing.cohort_digest(
            landing.cohort_inputs(root, cohort, files), known=parsed.sha256
        ),
        "seconds": round(elapsed, 3),
    }
    return write_marker(marker or layout.parse_marker(cohort), "parse", payload)


def write_silver_job(
    root: str | Path,
    cohort: str,
    table: str,
    *,
    staged: str | Path | None = None,
    marker: str | Path | None = None,
) -> dict[str, Any]:
    """Load one staged table of a cohort and make its Delta partition hold exactly it."""
    layout = Layout.of(root)
    table_spec = spec(table)
    data = read_arrow(staged or layout.staged(cohort, table))
    started = time.monotonic()
    result = delta.write_cohort_slice(
        layout.silver_table(table),
        data,
        key=table_spec.key,
        cohort=cohort,
        ignore_columns=RUN_COLUMNS,
        metadata={"run_id": run_id(), "rule": f"silver_{table}", "cohort": cohort},
    )
    log.info(
        "silver.%s cohort %s: %d rows (+%d ~%d -%d), version %d%s in %.2f s",
        table,
        cohort,
        result.rows,
        result.inserted,
        result.updated,
        result.deleted,
        result.delta_version,
        "" if result.committed else " (unchanged, nothing committed)",
        time.monotonic() - started,
    )
    payload = {"table": table, **result.to_dict()}
    payload["table_path"] = str(layout.silver_table(table))
    return write_marker(marker or layout.silver_marker(table, cohort), "silver", payload)


def silver_cohort_summary(
    root: str | Path,
    cohort: str,
    table_markers: dict[str, str | Path],
    marker: str | Path | None = None,
) -> dict[str, Any]:
    """Gather the ten table markers of a cohort into one cohort-level marker."""
    tables = {}
    for table, path in table_markers.items():
        m = read_json(path)
        tables[table] = {k: m[k] for k in ("rows", "delta_version", "committed")}
    payload = {"cohort": cohort, "tables": tables}
    return write_marker(marker or Layout.of(root).silver_cohort_marker(cohort), "silver", payload)


def silver_versions(root: str | Path) -> dict[str, int | None]:
    """The current Delta version of every Silver table (``None`` when absent)."""
    layout = Layout.of(root)
    return {t: delta.table_version(layout.silver_table(t)) for t in SILVER_TABLES}


# --------------------------------------------------------------------------------- gold


def gold_cohort_job(
    root: str | Path, cohort: str, marker: str | Path | None = None
) -> dict[str, Any]:
    """Recompute Gold for one cohort's patients and make those rows current.

    Reads only the cohort's Silver partitions (a patient's bundle lives in one cohort), so the
    cost follows the cohort, not the corpus. Rows of other cohorts are left untouched; Gold
    rows whose encounter no longer exists in Silver are deleted; unchanged rows keep their
    ``created_timestamp`` and ``silver_versions``.
    """
    layout = Layout.of(root)
    started = time.monotonic()
    versions = silver_versions(root)
    silver = {
        t: delta.read_partition(
            layout.silver_table(t), cohort, columns=list(gold.SILVER_COLUMNS[t])
        )
        for t in SILVER_TABLES
    }
    created = dt.datetime.now(dt.UTC)
    rows = gold.build_encounter_summary(silver, created, versions)
    orphans: list[str] = []
    if delta.is_table(layout.gold_table):
        live = set(
            delta.read_table(layout.silver_table("encounter"), ["encounter_id"])
            .column("encounter_id")
            .to_pylist()
        )
        current = delta.read_table(layout.gold_table, [gold.KEY]).column(gold.KEY).to_pylist()
        orphans = sorted(set(current) - live)
    merged = delta.upsert_keys(
        layout.gold_table,
        rows,
        key=gold.KEY,
        delete_keys=orphans,
        ignore_columns=gold.RUN_COLUMNS,
        metadata={"run_id": run_id(), "rule": "gold", "cohort": cohort},
    )
    version = delta.table_version(layout.gold_table)
    log.info(
        "gold cohort %s: %d rows (+%d ~%d -%d), version %s in %.2f s",
        cohort,
        rows.num_rows,
        merged.inserted,
        merged.updated,
        merged.deleted,
        version,
        time.monotonic() - started,
    )
    payload = {
        "cohort": cohort,
        "rows": rows.num_rows,
        "inserted": merged.inserted,
        "updated": merged.updated,
        "deleted": merged.deleted,
        "committed": merged.committed,
        "delta_version": version,
        "silver_versions": versions,
        "contract_version": gold.CONTRACT_VERSION,
        "seconds": round(time.monotonic() - started, 3),
    }
    return write_marker(marker or layout.gold_marker(cohort), "gold", payload)


def gold_manifest_job(
    root: str | Path,
    manifest: str | Path | None = None,
    marker: str | Path | None = None,
) -> dict[str, Any]:
    """Write the corpus manifest from the current Gold and Silver tables."""
    layout = Layout.of(root)
    if delta.is_table(layout.gold_table):
        table = delta.read_table(layout.gold_table)
    else:
        table = gold.GOLD_SCHEMA.empty_table()
    counts = {}
    for t in SILVER_TABLES:
        path = layout.silver_table(t)
        counts[t] = delta.read_table(path, [spec(t).key]).num_rows if delta.is_table(path) else 0
    enc_path = layout.silver_table("encounter")
    cohorts = (
        delta.read_table(enc_path, ["encounter_id", "cohort"]) if delta.is_table(enc_path) else None
    )
    doc = build_corpus_manifest(
        table,
        counts,
        dt.datetime.now(dt.UTC),
        silver_versions(root),
        gold_version=delta.table_version(layout.gold_table),
        encounter_cohorts=cohorts,
    )
    write_json_atomic(manifest or layout.corpus_manifest, doc, sort_keys=False)
    log.info(
        "corpus manifest: %d Gold rows, gold version %s",
        doc["row_count"],
        doc["gold_delta_version"],
    )
    payload = {
        "row_count": doc["row_count"],
        "gold_delta_version": doc["gold_delta_version"],
        "contract_version": doc["contract_version"],
        "cohorts": {k: v["row_count"] for k, v in doc.get("cohorts", {}).items()},
    }
    return write_marker(marker or layout.gold_manifest_marker(), "gold", payload)


def silver_cohorts(root: str | Path) -> list[str]:
    """Cohorts present in Silver (partitions of the encounter table)."""
    return delta.partition_values(Layout.of(root).silver_table("encounter"))


# ------------------------------------------------------------------------------- checks


class CheckFailed(RuntimeError):
    """A data check failed under ``checks.on_failure: fail``; the message names table, rule
    and numbers (never identifiers)."""


def _enforce(results: list[Any], policy: str) -> None:
    failed = [(r, c) for r in results for c in r.checks if not c.passed]
    for r, c in failed:
        log.warning("check failed: %s (%s) %s: %s", r.table, r.scope, c.rule, c.detail)
    if failed and policy == "fail":
        first, check = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise CheckFailed(
            f"check failed: {first.table} ({first.scope}) {check.rule}: {check.detail}{more}"
        )


def _write_results(results: list[Any], paths: list[Path], md_path: Path | None) -> None:
    for result, path in zip(results, paths, strict=True):
        write_json_atomic(path, {**result.to_dict(), "checked_at": _now()})
    if md_path is not None:
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text("\n".join(r.to_markdown() for r in results), encoding="utf-8")


def check_cohort_job(
    root: str | Path,
    cohort: str,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    policy: str = "warn",
    outputs: Mapping[str, str | Path] | None = None,
    markdown: str | Path | None = None,
) -> dict[str, Any]:
    """Row-level checks on one cohort's slice of every Silver table."""
    from fhirhouse.checks.validate import validate_cohort

    layout = Layout.of(root)
    results = [
        validate_cohort(t, delta.read_partition(layout.silver_table(t), cohort), cohort, overrides)
        for t in SILVER_TABLES
    ]
    paths = [Path(outputs[t]) if outputs else layout.check_cohort(t, cohort) for t in SILVER_TABLES]
    _write_results(results, paths, Path(markdown) if markdown else layout.check_cohort_md(cohort))
    _enforce(results, policy)
    return {
        "layer": "checks",
        "cohort": cohort,
        "tables": list(SILVER_TABLES),
        "passed": all(r.passed for r in results),
    }


def check_tables_job(
    root: str | Path,
    *,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    policy: str = "warn",
    outputs: Mapping[str, str | Path] | None = None,
    markdown: str | Path | None = None,
) -> dict[str, Any]:
    """Whole-table checks of every Silver table; appends one ``silver.ingest_log`` row each."""
    import polars as pl

    from fhirhouse.checks.validate import (
        columns_needed,
        ingest_log_table,
        merged_rules,
        validate_table,
    )

    layout = Layout.of(root)
    tables = {
        t: pl.from_arrow(
            delta.read_table(layout.silver_table(t), columns_needed(t, merged_rules(t, overrides)))
        )
        for t in SILVER_TABLES
    }
    patient_ids = tables["patient"]["patient_id"]
    encounter_ids = tables["encounter"]["encounter_id"]
    results = [
        validate_table(
            t, tables[t], overrides, patient_ids=patient_ids, encounter_ids=encounter_ids
        )
        for t in SILVER_TABLES
    ]
    paths = [Path(outputs[t]) if outputs else layout.check_table(t) for t in SILVER_TABLES]
    _write_results(results, paths, Path(markdown) if markdown else layout.check_tables_md())
    history.append(
        history.ingest_log_path(root),
        ingest_log_table(results, dt.datetime.now(dt.UTC)),
        history.INGEST_LOG_SCHEMA,
    )
    _enforce(results, policy)
    return {
        "layer": "checks",
        "tables": list(SILVER_TABLES),
        "passed": all(r.passed for r in results),
        "rows_written": len(results),
    }


def check_gold_job(
    root: str | Path,
    cohort: str,
    *,
    policy: str = "warn",
    max_age: int = 130,
    output: str | Path | None = None,
    markdown: str | Path | None = None,
) -> dict[str, Any]:
    """Gold checks for one cohort's rows: count, age range, lists, the contract schema."""
    import polars as pl

    from fhirhouse.checks.validate import validate_gold

    layout = Layout.of(root)
    encounters = delta.read_partition(layout.silver_table("encounter"), cohort)
    ids = encounters.column("encounter_id").to_pylist()
    rows = (
        delta.scan(layout.gold_table).filter(pl.col(gold.KEY).is_in(ids)).collect()
        if ids and delta.is_table(layout.gold_table)
        else pl.from_arrow(gold.GOLD_SCHEMA.empty_table())
    )
    from fhirhouse.gold.contract import row_validator

    result = validate_gold(rows, cohort, len(set(ids)), row_validator(), max_age)
    _write_results(
        [result],
        [Path(output) if output else layout.check_gold(cohort)],
        Path(markdown) if markdown else layout.check_gold_md(cohort),
    )
    _enforce([result], policy)
    return {"layer": "checks", "cohort": cohort, "tables": ["gold"], "passed": result.passed}


# ------------------------------------------------------------ maintenance, time travel

OPS_TABLES = ("run_history", "ingest_log")


def table_names() -> list[str]:
    """Every table ``maintain``, ``history`` and ``rollback`` know: the ten Silver tables,
    ``gold`` (gold.encounter_summary) and the two operations tables."""
    return [*SILVER_TABLES, "gold", *OPS_TABLES]


def table_path(root: str | Path, name: str) -> Path | StorePath:
    layout = Layout.of(root)
    if name in SILVER_TABLES:
        return layout.silver_table(name)
    if name == "gold":
        return layout.gold_table
    if name == "run_history":
        return history.run_history_path(root)
    if name == "ingest_log":
        return history.ingest_log_path(root)
    raise ValueError(f"unknown table {name!r}; one of: {', '.join(table_names())}")


def maintain_job(
    root: str | Path,
    tables: list[str] | None = None,
    *,
    retention_hours: float = 168,
    marker: str | Path | None = None,
) -> dict[str, Any]:
    """Compact, checkpoint and vacuum each table (all of them by default).

    Rows do not change and markers are not touched, so a later build stays incremental.
    Versions older than ``retention_hours`` can no longer be read or restored afterwards.
    """
    done = []
    for name in tables or table_names():
        path = table_path(root, name)
        if not delta.is_table(path):
            log.info("maintain %s: no table yet, skipped", name)
            continue
        result = maintenance.maintain(
            path,
            retention_hours=retention_hours,
            metadata={"run_id": run_id(), "rule": f"maintain_{name}"},
        )
        log.info(
            "maintain %s: %d -> %d files (%d compacted, %d vacuumed), %d rows, "
            "version %d -> %d, %.2f s",
            name,
            result.files_before,
            result.files_after,
            result.files_compacted,
            result.files_vacuumed,
            result.rows,
            result.version_before,
            result.version_after,
            result.seconds,
        )
        done.append({**result.to_dict(), "table": name})
    payload = {"retention_hours": retention_hours, "tables": done}
    if marker is not None:
        write_marker(marker, "maintenance", payload)
    return payload


def maintenance_summary(markers: list[str | Path], out: str | Path) -> dict[str, Any]:
    """One file listing what the last maintenance did to each table."""
    tables = [t for m in markers for t in read_json(m).get("tables", [])]
    summary = {"maintained_at": _now(), "tables": tables}
    write_json_atomic(out, summary)
    log.info("maintenance: %d tables", len(tables))
    return summary


def rollback_job(root: str | Path, name: str, version: int) -> dict[str, Any]:
    """Restore one table to an earlier version, then drop the markers that the restore made
    untrue, so the next build redoes exactly those jobs from the current Bronze.

    A Silver table: the markers of that table's cohorts whose partition changed. Gold: every
    cohort's Gold marker (Gold has no cohort column), and the corpus manifest is rewritten at
    once, so it describes the Gold version consumers now read.
    """
    layout = Layout.of(root)
    path = table_path(root, name)
    if not delta.is_table(path):
        raise FileNotFoundError(f"no table {name!r} under {root}")
    new_version, changed = maintenance.restore(
        path, version, metadata={"run_id": run_id(), "rule": f"rollback_{name}"}
    )
    dropped: list[Path] = []
    if name in SILVER_TABLES:
        dropped = [layout.silver_marker(name, c) for c in changed if c]
    elif name == "gold":
        dropped = sorted((layout.markers / "gold").glob("cohort=*.json"))
    for p in dropped:
        p.unlink(missing_ok=True)
    if name == "gold":
        gold_manifest_job(root)
    log.info(
        "rolled %s back to version %d (now version %d); cohorts changed: %s",
        name,
        version,
        new_version,
        changed,
    )
    return {
        "table": name,
        "restored_version": version,
        "delta_version": new_version,
        "changed_cohorts": [c for c in changed if c],
        "markers_dropped": [str(p.relative_to(layout.root)) for p in dropped],
    }


# -------------------------------------------------------------------------- run history


def _history_fields(marker: Mapping[str, Any]) -> dict[str, Any]:
    """Tables, rows written and Delta versions of a job, from its marker."""
    tables: list[str] = [
        t["table"] if isinstance(t, Mapping) else str(t) for t in marker.get("tables") or []
    ]
    if "table" in marker:
        tables = [marker["table"]]
    elif isinstance(marker.get("rows"), dict):
        tables = list(marker["rows"])
    rows = marker.get("rows_written")
    if rows is None and "inserted" in marker:
        rows = marker["inserted"] + marker.get("updated", 0) + marker.get("deleted", 0)
    elif rows is None and isinstance(marker.get("rows"), dict):
        rows = sum(marker["rows"].values())
    versions: dict[str, Any] = {}
    if "delta_version" in marker:
        versions[marker.get("table", marker.get("layer", ""))] = marker["delta_version"]
    if "gold_delta_version" in marker:
        versions["gold"] = marker["gold_delta_version"]
    for t in marker.get("tables") or []:  # maintenance: the version each table ended at
        if isinstance(t, Mapping) and "version_after" in t:
            versions[t["table"]] = t["version_after"]
    return {"tables": tables, "rows_written": rows, "delta_versions": versions}


class JobRecord:
    """What a rule script hands back: the job's marker (or result) dict."""

    marker: Mapping[str, Any] | None = None


class StorageError(OSError):
    """The storage root cannot be written (full, read-only, no permission)."""


_STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
# delta-rs reports the same conditions as text inside its own exception types
_STORAGE_TEXTS = {
    "No space left on device": "no space left on device",
    "Disk quota exceeded": "disk quota exceeded",
    "Read-only file system": "read-only file system",
    "Permission denied": "permission denied",
}


def storage_problem(exc: BaseException) -> str | None:
    """``"no space left on device"`` and the like when ``exc`` (or what caused it) is the
    storage refusing a write; ``None`` otherwise."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _STORAGE_ERRNOS:
            return _STORAGE_ERRNOS[current.errno]
        text = str(current)
        for needle, problem in _STORAGE_TEXTS.items():
            if needle in text:
                return problem
        current = current.__cause__ or current.__context__
    return None


def storage_error(root: str | Path, problem: str) -> StorageError:
    return StorageError(
        f"cannot write under the storage root {root}: {problem}. Free space or fix "
        "permissions, then run again; this job left no marker, so the next run redoes it"
    )


def safe_message(exc: BaseException) -> str:
    """A failure message for logs and history: our own messages are identifier-free by
    construction; anything else is reduced to its exception type."""
    if isinstance(exc, CheckFailed | StorageError):
        return str(exc)
    return type(exc).__name__


@contextmanager
def recorded(root: str | Path, rule: str, cohort: str | None = None) -> Iterator[JobRecord]:
    """Append one run-history row for the job in the ``with`` block, success or failure."""
    started, t0 = dt.datetime.now(dt.UTC), time.monotonic()
    record = JobRecord()
    common = {
        "run_id": run_id(),
        "rule": rule,
        "cohort": cohort,
        "started_at": started,
        "code_version": __version__,
    }
    try:
        yield record
    except BaseException as exc:
        problem = storage_problem(exc)
        error = (
            storage_error(root, problem) if problem and not isinstance(exc, StorageError) else None
        )
        message = safe_message(error or exc)
        log.error("job %s%s failed: %s", rule, f" cohort {cohort}" if cohort else "", message)
        _record_run(
            root, **common, duration_s=time.monotonic() - t0, status="failed", message=message
        )
        if error is not None:
            raise error from None
        raise
    fields = _history_fields(record.marker or {})
    _record_run(root, **common, duration_s=time.monotonic() - t0, status="success", **fields)


def _record_run(root: str | Path, **row: Any) -> None:
    """Append a run-history row; a history that cannot be written is logged, never raised
    (the job's own outcome stands, and its error is the one the user needs to see)."""
    try:
        history.record_run(root, **row)
    except Exception as exc:
        problem = storage_problem(exc) or type(exc).__name__
        log.warning("could not append to run history (%s)", problem)


def record_invocation(
    root: str | Path, status: str, snakemake_log: str | list[str] | None = None
) -> None:
    """One row per Snakemake invocation (from its ``onsuccess`` / ``onerror`` handlers).

    ``snakemake_log`` is the handler's ``log`` (a path, or a list of paths in Snakemake 9).
    A history write that fails is logged, never raised: it must not fail the run.
    """
    logs_ = [snakemake_log] if isinstance(snakemake_log, str) else list(snakemake_log or [])
    message = ""
    for path in (Path(p) for p in logs_):
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        failed = text.count("Error in rule ")
        done = [ln for ln in text.splitlines() if "steps (" in ln and " done" in ln]
        message = f"{failed} failed jobs" + (f"; {done[-1].strip()}" if done else "")
    try:
        _record_invocation(root, status, message)
    except Exception as exc:
        log.warning("could not record the invocation in run history (%s)", type(exc).__name__)


def _record_invocation(root: str | Path, status: str, message: str) -> None:
    history.record_run(
        root,
        run_id=run_id(),
        rule="(invocation)",
        cohort=None,
        started_at=dt.datetime.now(dt.UTC),
        duration_s=0.0,
        status=status,
        code_version=__version__,
        message=message,
    )
