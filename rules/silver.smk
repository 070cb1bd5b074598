# Silver: one job per cohort parses the bundles that changed (on `threads` processes when
# there is enough to parse), writes its slice of all ten tables and checks the slice.


rule silver:
    input:
        str(LAYOUT.bronze_marker("{cohort}")),
        damage=damage_state("silver"),
    output:
        marker=str(LAYOUT.silver_cohort_marker("{cohort}")),
        checks=expand(str(LAYOUT.check_cohort("{table}", "{{cohort}}")), table=TABLES),
        md=str(LAYOUT.check_cohort_md("{cohort}")),
    log:
        str(LAYOUT.log("silver", cohort="{cohort}")),
    benchmark:
        str(LAYOUT.benchmark("silver", cohort="{cohort}"))
    # every cohort's Silver before any Gold: Gold jobs are short, and a Silver job left for
    # last would keep one core busy while the other waits
    priority: 1
    conda:
        "../envs/fhirhouse.yaml"
    threads: silver_threads
    params:
        policy=CHECK_POLICY,
        overrides=SILVER_OVERRIDES,
        code=PARSER_CODE,
    script:
        "../scripts/silver.py"


# On demand only (nothing depends on it): rewrite one table's cohort partition from the
# parse cache, without reading a bundle, e.g.
#   snakemake data/_markers/silver/observation/cohort=B.json --forcerun silver_table
rule silver_table:
    input:
        str(LAYOUT.silver_cohort_marker("{cohort}")),
    output:
        str(LAYOUT.silver_marker("{table}", "{cohort}")),
    log:
        str(LAYOUT.log("silver", "{table}", cohort="{cohort}")),
    conda:
        "../envs/fhirhouse.yaml"
    script:
        "../scripts/silver_table.py"
