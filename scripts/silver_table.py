"""Rule `silver_table`: rewrite one table's cohort partition from the parse cache."""

import fhirhouse.interrupt  # noqa: F401  first: Ctrl-C ends the job with one line
from fhirhouse.jobs.rule import run_rule
from fhirhouse.jobs.silver import silver_table_job

run_rule(snakemake, silver_table_job, snakemake.wildcards.table, snakemake.output[0])
