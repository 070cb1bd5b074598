"""Rule `silver_cohort`: gather a cohort's ten table markers into one."""

from fhirhouse import jobs, logs

root, cohort = snakemake.config["root"], snakemake.wildcards.cohort
logs.configure(snakemake.log[0])
with jobs.recorded(root, snakemake.rule, cohort) as record:
    record.marker = jobs.silver_cohort_summary(
        root,
        cohort,
        dict(zip(snakemake.params.tables, snakemake.input, strict=True)),
        marker=snakemake.output[0],
    )
