"""Rules `silver_<table>`: write one staged table of one cohort into its Delta partition."""

from fhirhouse import jobs, logs

root, cohort = snakemake.config["root"], snakemake.wildcards.cohort
logs.configure(snakemake.log[0])
with jobs.recorded(root, snakemake.rule, cohort) as record:
    record.marker = jobs.write_silver_job(
        root,
        cohort,
        snakemake.params.table,
        staged=snakemake.input.staged,
        marker=snakemake.output[0],
    )
