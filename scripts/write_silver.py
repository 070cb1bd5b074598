"""Rules `silver_<table>`: write one staged table of one cohort into its Delta partition."""

from fhirhouse import jobs, logs

logs.configure(snakemake.log[0])
jobs.write_silver_job(
    snakemake.config["root"],
    snakemake.wildcards.cohort,
    snakemake.params.table,
    staged=snakemake.input.staged,
    marker=snakemake.output[0],
)
