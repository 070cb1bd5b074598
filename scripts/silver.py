"""Rule `silver`: parse what changed in one cohort, write its ten tables, check the slices."""

import fhirhouse.interrupt  # noqa: F401  first: Ctrl-C ends the job with one line
from fhirhouse import SILVER_TABLES
from fhirhouse.jobs.rule import run_rule
from fhirhouse.jobs.silver import silver_job

# The parse may start worker processes (spawn), and each imports this script again as
# `__mp_main__`: only the job's own process may run the job.
if __name__ == "__main__":
    run_rule(
        snakemake,
        silver_job,
        workers=snakemake.threads,
        policy=snakemake.params.policy,
        overrides=snakemake.params.overrides,
        check_outputs=dict(zip(SILVER_TABLES, snakemake.output.checks, strict=True)),
        check_markdown=snakemake.output.md,
        marker=snakemake.output.marker,
        damage=snakemake.input.damage,
    )
