"""Rule `report_pages`: the Silver and Gold pages of `snakemake --report`."""

from fhirhouse import logs
from fhirhouse.jobs import recorded
from fhirhouse.report import report_pages_job

root = snakemake.config["root"]
logs.configure(snakemake.log[0])
with recorded(root, snakemake.rule) as record:
    record.marker = report_pages_job(root, dict(snakemake.output.items()))
