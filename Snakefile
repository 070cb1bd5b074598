"""fhirhouse: Bronze -> Silver -> Gold for Synthea FHIR R4 bundles.

snakemake --cores 4                                   land and build everything
snakemake --dag | dot -Tsvg > dag.svg                 the job graph
snakemake data/_markers/gold/cohort=B.json --forcerun silver --cores 2   backfill cohort B
snakemake maintain --cores 2                          compact, checkpoint, vacuum (on demand)
"""

import os
import uuid

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# `--config source=null` arrives as the string "null": read it as YAML's null.
for _key in ("source", "cohort"):
    if str(config.get(_key)).strip().lower() in ("null", "none", "~", ""):
        config[_key] = None

validate(config, "schemas/config.schema.yaml")

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
