"""Rule `maintain`: gather the per-table maintenance results into _ops/maintenance.json."""

import fhirhouse.interrupt  # noqa: F401  first: Ctrl-C ends the job with one line
from fhirhouse import logs
from fhirhouse.jobs.ops import maintenance_summary

logs.configure(snakemake.log[0])
maintenance_summary(list(snakemake.input), snakemake.params.summary)
