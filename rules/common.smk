# Helpers only: paths, cohort discovery and target lists. No rules here.
from pathlib import Path

from fhirhouse import SILVER_TABLES
from fhirhouse.bronze.landing import cohort_inputs, list_cohorts, sync_state_file
from fhirhouse.jobs import Layout, record_invocation, resolve_source
from fhirhouse.store.objects import export_state_dir, is_uri

# `root` is a local folder, or an s3:// URI for the data (Bronze, Silver, Gold) with local
# state (markers, staging, logs, checks) in `state_dir`. The variable is exported so that
# every job, also one submitted to a cluster, resolves the same state folder.
ROOT = config["root"] if is_uri(config["root"]) else Path(config["root"])
export_state_dir(ROOT, config.get("state_dir"))
LAYOUT = Layout.of(ROOT)
STATE = LAYOUT.root
MARKERS = LAYOUT.markers
STAGING = STATE / "_staging" / "silver"
LOGS = STATE / "_logs"
BENCH = STATE / "_benchmarks"
# Declared only for a local root: an s3:// object is no Snakemake output (the marker is).
MANIFEST_OUTPUT = {} if is_uri(ROOT) else {"manifest": str(LAYOUT.corpus_manifest)}
TABLES = list(SILVER_TABLES)
CHECKS = LAYOUT.checks
_checks = config.get("checks") or {}
CHECK_POLICY = _checks.get("on_failure", "warn")
SILVER_OVERRIDES = _checks.get("silver") or {}
GOLD_MAX_AGE = (_checks.get("gold") or {}).get("max_age", 130)
COHORT_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]*"


wildcard_constraints:
    cohort=COHORT_PATTERN,


SYNTH_DIR = LAYOUT.synth_dir
SYNTH_MARKER = LAYOUT.synth_marker
# With `source: null`: the generated corpus on a fresh root, else the Bronze tree as it is.
SOURCE = resolve_source(ROOT, config.get("source"))
SYNTHETIC = SOURCE == SYNTH_DIR

# Bundle files are never declared as inputs: their names embed patient names and ids, and
# Snakemake prints inputs in job listings and its logs. A state file per folder stands in for
# them (file count, bytes, a fingerprint of names/sizes/mtimes), rewritten only on a change.
SOURCE_STATE = MARKERS / "bronze" / "_state" / "source.json"


def source_state(wildcards):
    """The source folder's state: the landing job reruns when a bundle is added or changed."""
    if SOURCE is None:
        return []
    if SYNTHETIC:
        return str(SYNTH_MARKER)
    if not SOURCE.is_dir():
        raise WorkflowError(f"config source={str(SOURCE)!r} is not a folder")
    files = sorted(SOURCE.glob("*.json")) + sorted(SOURCE.glob("dicom/*.dcm"))
    return str(sync_state_file(SOURCE_STATE, files))


def cohorts():
    """Cohort labels present in Bronze, read after landing has run."""
    checkpoints.land.get()
    return list_cohorts(ROOT)


def bronze_state(wildcards):
    """One cohort's Bronze state (its bundles and their DICOM files), read after landing.
    DICOM files of other cohorts' patients do not touch it."""
    checkpoints.land.get()
    files = cohort_inputs(ROOT, wildcards.cohort)
    return str(sync_state_file(LAYOUT.bronze_state(wildcards.cohort), files))


def silver_markers(cohort):
    return [str(LAYOUT.silver_marker(t, cohort)) for t in TABLES]


def gold_manifest_inputs():
    """Every cohort's Gold marker and Gold checks, and the whole-table Silver checks."""
    cs = cohorts()
    return (
        [str(LAYOUT.gold_marker(c)) for c in cs]
        + [str(LAYOUT.check_gold(c)) for c in cs]
        + [str(LAYOUT.check_table(t)) for t in TABLES]
    )


def all_targets(wildcards):
    silver = [str(LAYOUT.silver_cohort_marker(c)) for c in cohorts()]
    return silver + [
        str(LAYOUT.gold_manifest_marker()),
        str(STATE / "_report" / "gold_encounter_summary.html"),
    ]


# Maintenance (rules/maintain.smk): every Delta table, each under its writer resource.
MAINTAIN = MARKERS / "maintain"
RETENTION_HOURS = (config.get("maintenance") or {}).get("retention_hours", 168)
MAINTAINED = [*TABLES, "gold", "run_history", "ingest_log"]


def maintain_resources(table):
    if table in TABLES:
        return {f"silver_{table}_writer": 1}
    return {"gold_writer": 1} if table == "gold" else {}
