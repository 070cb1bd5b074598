"""Rule `check_gold`: Gold checks of one cohort's rows."""

import sys

from fhirhouse import jobs, logs

root, cohort = snakemake.config["root"], snakemake.wildcards.cohort
logs.configure(snakemake.log[0])
try:
    with jobs.recorded(root, snakemake.rule, cohort) as record:
        record.marker = jobs.check_gold_job(
            root,
            cohort,
            policy=snakemake.params.policy,
            max_age=snakemake.params.max_age,
            output=snakemake.output.json,
            markdown=snakemake.output.md,
        )
except jobs.CheckFailed:
    sys.exit(1)  # the failing rule and numbers are already logged
