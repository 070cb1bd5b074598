"""Rule `silver_cohort`: gather a cohort's ten table markers into one."""

from fhirhouse import jobs, logs

logs.configure(snakemake.log[0])
jobs.silver_cohort_summary(
    snakemake.config["root"],
    snakemake.wildcards.cohort,
    dict(zip(snakemake.params.tables, snakemake.input, strict=True)),
    marker=snakemake.output[0],
)
