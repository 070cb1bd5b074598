"""Rule `bronze`: describe one cohort's Bronze files in its marker."""

from fhirhouse import jobs, logs

logs.configure(snakemake.log[0])
jobs.bronze_cohort_job(snakemake.config["root"], snakemake.wildcards.cohort, snakemake.output[0])
