"""Rule `bronze`: describe one cohort's Bronze files in its marker."""

from fhirhouse import jobs, logs

root, cohort = snakemake.config["root"], snakemake.wildcards.cohort
logs.configure(snakemake.log[0])
with jobs.recorded(root, snakemake.rule, cohort) as record:
    record.marker = jobs.bronze_cohort_job(root, cohort, snakemake.output[0])
