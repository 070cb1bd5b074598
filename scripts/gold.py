"""Rule `gold`: recompute one cohort's changed Gold rows and check them."""

import fhirhouse.interrupt  # noqa: F401  first: Ctrl-C ends the job with one line
from fhirhouse.jobs.gold import gold_job
from fhirhouse.jobs.rule import run_rule

run_rule(
    snakemake,
    gold_job,
    policy=snakemake.params.policy,
    max_age=snakemake.params.max_age,
    check_output=snakemake.output.checks,
    check_markdown=snakemake.output.md,
    marker=snakemake.output.marker,
    damage=snakemake.input.damage,
)
