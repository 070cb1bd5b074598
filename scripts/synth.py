"""Rule `synth`: generate the default synthetic corpus."""

from fhirhouse import jobs, logs

root = snakemake.config["root"]
logs.configure(snakemake.log[0])
with jobs.recorded(root, snakemake.rule) as record:
    record.marker = jobs.synth_job(
        snakemake.params.out,
        snakemake.params.patients,
        snakemake.params.seed,
        marker=snakemake.output[0],
    )
