# Gold: one job per cohort recomputes the Gold rows of the patients whose Silver changed and
# checks them; then one job checks every Silver table whole, writes the corpus manifest and
# the report pages.


rule gold:
    input:
        str(LAYOUT.silver_cohort_marker("{cohort}")),
        damage=damage_state("gold"),
    output:
        marker=str(LAYOUT.gold_marker("{cohort}")),
        checks=str(LAYOUT.check_gold("{cohort}")),
        md=str(LAYOUT.check_gold_md("{cohort}")),
    log:
        str(LAYOUT.log("gold", cohort="{cohort}")),
    benchmark:
        str(LAYOUT.benchmark("gold", cohort="{cohort}"))
    conda:
        "../envs/fhirhouse.yaml"
    params:
        policy=CHECK_POLICY,
        max_age=GOLD_MAX_AGE,
        code=GOLD_CODE,
    script:
        "../scripts/gold.py"


rule gold_manifest:
    input:
        gold_manifest_inputs,
    output:
        **MANIFEST_OUTPUT,
        **REPORT_PAGES,
        marker=str(LAYOUT.gold_manifest_marker()),
        checks=expand(str(LAYOUT.check_table("{table}")), table=TABLES),
        md=str(LAYOUT.check_tables_md()),
    log:
        str(LAYOUT.log("gold", "manifest")),
    benchmark:
        str(LAYOUT.benchmark("gold", "manifest"))
    conda:
        "../envs/fhirhouse.yaml"
    params:
        policy=CHECK_POLICY,
        overrides=SILVER_OVERRIDES,
    script:
        "../scripts/gold_manifest.py"
