# Maintenance, on demand only (`snakemake maintain`; never part of `all`): compact,
# checkpoint and vacuum each Delta table (a compaction that loses a commit race with a
# concurrent write is retried). Markers are temp(), so the target runs again whenever it is
# asked for; builds are not invalidated.
for _table in MAINTAINED:

    rule:
        name:
            f"maintain_{_table}"
        output:
            temp(str(LAYOUT.maintain_marker(_table))),
        log:
            str(LAYOUT.log("maintain", _table)),
        conda:
            "../envs/fhirhouse.yaml"
        params:
            table=_table,
            retention_hours=RETENTION_HOURS,
        script:
            "../scripts/maintain.py"


# No output: a target rule runs every time it is asked for. It writes the summary
# _ops/maintenance.json (undeclared, so it never makes the target look done).
rule maintain:
    input:
        [str(LAYOUT.maintain_marker(t)) for t in MAINTAINED],
    log:
        str(LAYOUT.log("maintain", "summary")),
    conda:
        "../envs/fhirhouse.yaml"
    params:
        summary=str(LAYOUT.maintenance_summary),
    script:
        "../scripts/maintain_summary.py"
