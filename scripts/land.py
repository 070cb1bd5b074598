"""Rule `land`: land source bundles into Bronze cohorts."""

from fhirhouse import jobs, logs

logs.configure(snakemake.log[0])
with jobs.recorded(snakemake.config["root"], snakemake.rule) as record:
    record.marker = jobs.land_job(
        snakemake.config["root"],
        snakemake.params.source,
        cohorts=snakemake.params.cohorts,
        cohort=snakemake.params.cohort,
        marker=snakemake.output[0],
    )
