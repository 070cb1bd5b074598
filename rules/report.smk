# Report pages for `snakemake --report report.html`: one per Silver table and one for Gold.


rule report_pages:
    input:
        manifest=str(LAYOUT.gold_manifest_marker()),
    output:
        **{
            t: report(
                str(LAYOUT.report_dir / f"silver_{t}.html"),
                caption="../report/silver_table.rst",
                category="Silver",
                subcategory=t,
                labels={"table": f"silver.{t}"},
            )
            for t in TABLES
        },
        gold=report(
            str(LAYOUT.report_dir / "gold_encounter_summary.html"),
            caption="../report/gold.rst",
            category="Gold",
            labels={"table": "gold.encounter_summary"},
        ),
    log:
        str(LOGS / "report.log"),
    conda:
        "../envs/fhirhouse.yaml"
    script:
        "../scripts/report_pages.py"
