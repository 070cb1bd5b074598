"""Rule `gold`: recompute Gold for one cohort's patients."""

from fhirhouse import jobs, logs

root, cohort = snakemake.config["root"], snakemake.wildcards.cohort
logs.configure(snakemake.log[0])
with jobs.recorded(root, snakemake.rule, cohort) as record:
    record.marker = jobs.gold_cohort_job(root, cohort, snakemake.output[0])
