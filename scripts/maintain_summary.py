"""Rule `maintain`: gather the per-table maintenance results into _ops/maintenance.json."""

from fhirhouse import jobs, logs

logs.configure(snakemake.log[0])
jobs.maintenance_summary(list(snakemake.input), snakemake.params.summary)
