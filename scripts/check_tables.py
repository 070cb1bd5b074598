"""Rule `check_tables`: whole-table checks of every Silver table; appends silver.ingest_log."""

import sys

from fhirhouse import jobs, logs

root = snakemake.config["root"]
logs.configure(snakemake.log[0])
try:
    with jobs.recorded(root, snakemake.rule) as record:
        record.marker = jobs.check_tables_job(
            root,
            overrides=snakemake.params.overrides,
            policy=snakemake.params.policy,
            outputs=dict(zip(snakemake.params.tables, snakemake.output.json, strict=True)),
            markdown=snakemake.output.md,
        )
except jobs.CheckFailed:
    sys.exit(1)  # the failing rule and numbers are already logged
