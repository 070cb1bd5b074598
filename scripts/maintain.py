"""Rules `maintain_<table>`: compact, checkpoint and vacuum one Delta table."""

from fhirhouse import jobs, logs

root = snakemake.config["root"]
logs.configure(snakemake.log[0])
with jobs.recorded(root, snakemake.rule) as record:
    record.marker = jobs.maintain_job(
        root,
        [snakemake.params.table],
        retention_hours=snakemake.params.retention_hours,
        marker=snakemake.output[0],
    )
