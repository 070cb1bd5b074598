"""Rule `gold_manifest`: whole-table checks of every Silver table, then the corpus manifest."""

from fhirhouse import SILVER_TABLES
from fhirhouse.jobs.corpus import check_tables_job, gold_manifest_job
from fhirhouse.jobs.rule import run_rule


def check_then_write(root, **kwargs):
    check_tables_job(
        root,
        overrides=snakemake.params.overrides,
        policy=snakemake.params.policy,
        outputs=dict(zip(SILVER_TABLES, snakemake.output.checks, strict=True)),
        markdown=snakemake.output.md,
    )
    return gold_manifest_job(root, **kwargs)


run_rule(
    snakemake,
    check_then_write,
    manifest=getattr(snakemake.output, "manifest", None),
    marker=snakemake.output.marker,
)
