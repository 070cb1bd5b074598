"""Rule `gold_manifest`: write the corpus manifest from the current Gold and Silver."""

from fhirhouse import jobs, logs

logs.configure(snakemake.log[0])
jobs.gold_manifest_job(
    snakemake.config["root"],
    manifest=snakemake.output.manifest,
    marker=snakemake.output.marker,
)
