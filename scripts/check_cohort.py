"""Rule `check_cohort`: row-level checks of one cohort's Silver slices."""

import sys

from fhirhouse import jobs, logs

root, cohort = snakemake.config["root"], snakemake.wildcards.cohort
logs.configure(snakemake.log[0])
try:
    with jobs.recorded(root, snakemake.rule, cohort) as record:
        record.marker = jobs.check_cohort_job(
            root,
            cohort,
            overrides=snakemake.params.overrides,
            policy=snakemake.params.policy,
            outputs=dict(zip(snakemake.params.tables, snakemake.output.json, strict=True)),
            markdown=snakemake.output.md,
        )
except jobs.CheckFailed:
    sys.exit(1)  # the failing rule and numbers are already logged
