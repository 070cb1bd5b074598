"""fhirhouse: Bronze -> Silver -> Gold for Synthea FHIR R4 bundles.

snakemake                                             land and build everything
snakemake --dag | dot -Tsvg > dag.svg                 the job graph
snakemake data/_markers/gold/cohort=B.json --forcerun silver   backfill cohort B
snakemake maintain                                    compact, checkpoint, vacuum (on demand)

The workflow profile (profiles/default) sets the core count; --cores N uses fewer.
"""

import atexit
import gc
import os
import sys
import uuid

from snakemake.utils import min_version, validate

from fhirhouse import preflight
from fhirhouse.config import config_problem, read_schema

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# `--config source=null` arrives as the string "null": read it as YAML's null.
preflight.nulls_to_none(config, ("source", "land_into", *preflight.DEPRECATED_KEYS))
try:
    for _warning in preflight.rename_deprecated(config):
        print(f"warning: {_warning}", file=sys.stderr)
except ValueError as _exc:
    preflight.stop(str(_exc))
# One line naming the key and what it accepts (Snakemake's validate would print the schema
# and the whole config); validate then fills in the defaults.
_problem = config_problem(
    config, read_schema(os.path.join(workflow.basedir, "schemas", "config.schema.yaml"))
)
if _problem:
    preflight.stop(_problem)
validate(config, "schemas/config.schema.yaml")

# Ctrl-C stops the run every time, and a job just starting prints no traceback.
_job_prefix = preflight.catch_ctrl_c()
if _job_prefix:
    shell.prefix(_job_prefix)

# Only when this process is the `snakemake` command, not a program that runs the workflow
# through Snakemake's API (`fhirhouse watch`, tests), whose memory must stay collectable:
# exit without the interpreter's last full garbage collection over Snakemake's ~120k objects
# (0.3-0.5 s on every invocation, a no-op one too); objects are still freed as usual.
OWN_PROCESS = "snakemake" in sys.argv[0]
if OWN_PROCESS:
    atexit.register(gc.freeze)

# One id for every job of this invocation; the rule scripts stamp it on their markers.
os.environ.setdefault("FHIRHOUSE_RUN_ID", uuid.uuid4().hex[:12])


include: "rules/common.smk"
include: "rules/bronze.smk"
include: "rules/silver.smk"
include: "rules/gold.smk"
include: "rules/maintain.smk"


report: "report/workflow.rst"


# One run-history row per invocation, next to the rows each job writes for itself.
onsuccess:
    finish("success", log)


onerror:
    finish("failed", log)


rule all:
    default_target: True
    input:
        all_targets,


# Bronze and Silver of every cohort, no Gold: the target of `fhirhouse watch`.
rule all_silver:
    input:
        lambda wc: silver_markers(),


# What the Snakefile loaded (Snakemake, the rules, fhirhouse's modules) lives as long as the
# `snakemake` process: out of the garbage collector's sight, so that the full collections
# while the build runs do not walk it again each time (0.3-0.5 s of a build otherwise).
if OWN_PROCESS:
    gc.freeze()
