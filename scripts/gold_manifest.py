"""Rule `gold_manifest`: whole-table checks of every Silver table, the corpus manifest, then
the report pages."""

import fhirhouse.interrupt  # noqa: F401  first: Ctrl-C ends the job with one line
from fhirhouse import SILVER_TABLES
from fhirhouse.jobs.corpus import check_tables_job, gold_manifest_job
from fhirhouse.jobs.rule import run_rule
from fhirhouse.report import report_pages_job

out = snakemake.output


def publish(layout):
    check_tables_job(
        layout,
        overrides=snakemake.params.overrides,
        policy=snakemake.params.policy,
        outputs=dict(zip(SILVER_TABLES, out.checks, strict=True)),
        markdown=out.md,
    )
    marker = gold_manifest_job(layout, manifest=getattr(out, "manifest", None), marker=out.marker)
    report_pages_job(layout, {page: out[page] for page in [*SILVER_TABLES, "gold"]})
    return marker


run_rule(snakemake, publish)
