"""Rules `maintain_<table>`: compact, checkpoint and vacuum one Delta table."""

import fhirhouse.interrupt  # noqa: F401  first: Ctrl-C ends the job with one line
from fhirhouse.jobs.ops import maintain_job
from fhirhouse.jobs.rule import run_rule

run_rule(
    snakemake,
    maintain_job,
    [snakemake.params.table],
    retention_hours=snakemake.params.retention_hours,
    marker=snakemake.output[0],
)
