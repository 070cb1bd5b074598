# Helpers only: paths, cohort discovery, input functions and target lists. No rules here.
# Only light modules are imported: this file is read on every invocation, also a no-op one.
import os
import sys
from pathlib import Path

from fhirhouse import SILVER_TABLES
from fhirhouse.digest import GOLD_PACKAGES, PARSER_PACKAGES, source_digest
from fhirhouse.bronze.landing import (
    cohort_files,
    cohort_inputs,
    list_cohorts,
    sync_state_file,
)
from fhirhouse.jobs import parse_workers
from fhirhouse.jobs.bronze import resolve_source
from fhirhouse.jobs.ops import table_names
from fhirhouse.jobs.runlog import record_invocation
from fhirhouse.layout import COHORT_LABEL, Layout
from fhirhouse import preflight
from fhirhouse.store.objects import export_state_dir, is_uri

# `root` is a local folder, or an s3:// URI for the data (Bronze, Silver, Gold) with local
# state (markers, staging, logs, checks) in `state_dir`. The variable is exported so that
# every job, also one submitted to a cluster, resolves the same state folder.
ROOT = config["root"] if is_uri(config["root"]) else Path(config["root"])
export_state_dir(ROOT, config.get("state_dir"))
LAYOUT = Layout.of(ROOT)
STATE = LAYOUT.root
MARKERS = LAYOUT.markers
LOGS = LAYOUT.logs
BENCH = LAYOUT.benchmarks
# Declared only for a local root: an s3:// object is no Snakemake output (the marker is).
MANIFEST_OUTPUT = {} if is_uri(ROOT) else {"manifest": str(LAYOUT.corpus_manifest)}
TABLES = list(SILVER_TABLES)
CHECKS = LAYOUT.checks
_checks = config.get("checks") or {}
CHECK_POLICY = _checks.get("on_failure", "warn")
SILVER_OVERRIDES = _checks.get("silver") or {}
GOLD_MAX_AGE = (_checks.get("gold") or {}).get("max_age", 130)
# The code the Silver and Gold rows depend on. Passed to the silver and gold rules as a
# parameter, so that Snakemake, which reruns jobs whose parameters changed, rebuilds Silver
# after an upgraded parser (and Gold after a changed Gold transform) by itself.
PARSER_CODE = source_digest(*PARSER_PACKAGES)
GOLD_CODE = source_digest(*GOLD_PACKAGES)


wildcard_constraints:
    cohort=COHORT_LABEL.pattern.strip("^$"),
    table="|".join(TABLES),


SYNTH_DIR = LAYOUT.synth_dir
SYNTH_MARKER = LAYOUT.synth_marker
# With `source: null`: the generated corpus on a fresh root, else the Bronze tree as it is.
SOURCE = resolve_source(ROOT, config.get("source"))
SYNTHETIC = SOURCE == SYNTH_DIR
LAND_INTO = config.get("land_into")
if not SYNTHETIC and preflight.source_problem(SOURCE):
    preflight.stop(preflight.source_problem(SOURCE))
if workflow.is_main_process:
    # where the data goes, also when run from another folder with -s
    print(
        preflight.start_line(ROOT, SOURCE, SYNTHETIC, config, list_cohorts(ROOT)),
        file=sys.stderr,
    )

# Bundle files are never declared as inputs: their names embed patient names and ids, and
# Snakemake prints inputs in job listings and its logs. A state file per folder stands in for
# them (file count, bytes, a fingerprint of names/sizes/mtimes), rewritten only on a change.
SOURCE_STATE = MARKERS / "bronze" / "_state" / "source.json"


_CHECKED = []


def check_invocation():
    """Checks of the command line, run once while the DAG is built (Snakemake hands the
    settings over only after the Snakefile is read)."""
    if _CHECKED or workflow.dag_settings is None:
        return
    _CHECKED.append(True)
    problem = preflight.forcerun_problem(
        workflow.dag_settings.forcerun, workflow.is_rule
    )
    if problem:
        preflight.stop(problem)


def source_state(wildcards):
    """The source folder's state: the landing job reruns when a bundle is added or changed."""
    check_invocation()
    if SOURCE is None:
        return []
    if SYNTHETIC:
        return str(SYNTH_MARKER)
    files = sorted(SOURCE.glob("*.json")) + sorted(SOURCE.glob("dicom/*.dcm"))
    return str(sync_state_file(SOURCE_STATE, files))


def cohorts():
    """Cohort labels present in Bronze, read after landing has run."""
    check_invocation()
    checkpoints.land.get()
    return list_cohorts(ROOT)


def bronze_state(wildcards):
    """One cohort's Bronze state (its bundles and their DICOM files), read after landing.
    DICOM files of other cohorts' patients do not touch it."""
    check_invocation()
    checkpoints.land.get()
    files = cohort_inputs(ROOT, wildcards.cohort)
    return str(sync_state_file(LAYOUT.bronze_state(wildcards.cohort), files))


def silver_threads(wildcards):
    """Cores for a cohort's Silver job: one per share of bundle bytes worth a worker (up to
    --cores; on a cluster, where --cores is not set, up to this machine's count)."""
    size = sum(p.stat().st_size for p in cohort_files(ROOT, wildcards.cohort))
    try:
        cores = workflow.cores
    except WorkflowError:
        cores = os.cpu_count() or 1
    return parse_workers(size, cores)


def silver_markers():
    return [str(LAYOUT.silver_cohort_marker(c)) for c in cohorts()]


def gold_manifest_inputs(wildcards):
    """Every cohort's Silver and Gold marker."""
    return silver_markers() + [str(LAYOUT.gold_marker(c)) for c in cohorts()]


# The pages `snakemake --report` embeds, written by the gold_manifest job with the manifest.
REPORT_PAGES = {
    **{
        t: report(
            str(LAYOUT.report_dir / f"silver_{t}.html"),
            caption="../report/silver_table.rst",
            category="Silver",
            subcategory=t,
            labels={"table": f"silver.{t}"},
        )
        for t in TABLES
    },
    "gold": report(
        str(LAYOUT.report_dir / "gold_encounter_summary.html"),
        caption="../report/gold.rst",
        category="Gold",
        labels={"table": "gold.encounter_summary"},
    ),
}


def all_targets(wildcards):
    return silver_markers() + [
        str(LAYOUT.gold_manifest_marker()),
        str(LAYOUT.report_dir / "gold_encounter_summary.html"),
    ]


def in_snakemake(rule, log, wildcards, job, *args, **kwargs):
    """Run a bookkeeping job inside this process (see the profile's `force-use-threads`)."""
    from fhirhouse.jobs.rule import run_in_snakemake

    cohort = getattr(wildcards, "cohort", None)
    run_in_snakemake(log[0], config["root"], rule, cohort, job, *args, **kwargs)


def finish(status, log):
    """The invocation's run-history row and, after a successful build, the summary
    `fhirhouse run` prints; then end Snakemake's pending rate-limit timers, which would
    otherwise keep the finished process alive for up to a second."""
    import threading

    record_invocation(config["root"], status, log)
    if status == "success":
        from snakemake.logging import logger

        from fhirhouse.jobs.runlog import run_id
        from fhirhouse.summary import build_summary

        text = build_summary(config["root"], run_id())
        if text:
            logger.info(f"\n{text}")
    for thread in threading.enumerate():
        if isinstance(thread, threading.Timer):
            thread.cancel()


# Maintenance (rules/maintain.smk): every Delta table.
MAINTAIN = MARKERS / "maintain"
RETENTION_HOURS = (config.get("maintenance") or {}).get("retention_hours", 168)
MAINTAINED = table_names()
