"""Rule `synth`: generate the default synthetic corpus."""

import fhirhouse.interrupt  # noqa: F401  first: Ctrl-C ends the job with one line
from fhirhouse.jobs.bronze import synth_job
from fhirhouse.jobs.rule import run_rule

run_rule(
    snakemake,
    lambda layout: synth_job(
        snakemake.params.out,
        snakemake.params.patients,
        snakemake.params.seed,
        marker=snakemake.output[0],
    ),
)
