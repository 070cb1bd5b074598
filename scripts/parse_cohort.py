"""Rule `parse`: parse a cohort once into ten staged Arrow tables."""

from fhirhouse import jobs, logs

root, cohort = snakemake.config["root"], snakemake.wildcards.cohort
logs.configure(snakemake.log[0])
with jobs.recorded(root, snakemake.rule, cohort) as record:
    record.marker = jobs.parse_cohort_job(
        root,
        cohort,
        staged=dict(zip(snakemake.params.tables, snakemake.output.staged, strict=True)),
        marker=snakemake.output.marker,
    )
