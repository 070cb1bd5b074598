"""Rule `gold`: recompute Gold for one cohort's patients."""

from fhirhouse import jobs, logs

logs.configure(snakemake.log[0])
jobs.gold_cohort_job(snakemake.config["root"], snakemake.wildcards.cohort, snakemake.output[0])
