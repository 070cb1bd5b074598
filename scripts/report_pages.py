"""Rule `report_pages`: the Silver and Gold pages of `snakemake --report`."""

from fhirhouse.jobs.rule import run_rule
from fhirhouse.report import report_pages_job

run_rule(snakemake, report_pages_job, dict(snakemake.output.items()))
