"""Rule `gold_manifest`: write the corpus manifest from the current Gold and Silver."""

from fhirhouse import jobs, logs

root = snakemake.config["root"]
logs.configure(snakemake.log[0])
with jobs.recorded(root, snakemake.rule) as record:
    record.marker = jobs.gold_manifest_job(
        root, manifest=getattr(snakemake.output, "manifest", None), marker=snakemake.output.marker
    )
