"""Rule `parse`: parse a cohort once into ten staged Arrow tables."""

from fhirhouse import jobs, logs

logs.configure(snakemake.log[0])
jobs.parse_cohort_job(
    snakemake.config["root"],
    snakemake.wildcards.cohort,
    staged=dict(zip(snakemake.params.tables, snakemake.output.staged, strict=True)),
    marker=snakemake.output.marker,
)
