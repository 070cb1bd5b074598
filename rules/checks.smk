# Checks: per-cohort row checks gate that cohort's Gold; whole-table checks append
# silver.ingest_log; Gold checks validate each cohort's rows against the contract.


rule check_cohort:
    input:
        str(MARKERS / "silver" / "cohort={cohort}.json"),
    output:
        json=expand(
            str(CHECKS / "silver" / "{table}" / "cohort={{cohort}}.json"), table=TABLES
        ),
        md=str(CHECKS / "silver" / "cohort={cohort}.md"),
    log:
        str(LOGS / "checks" / "cohort={cohort}.log"),
    benchmark:
        str(BENCH / "checks" / "cohort={cohort}.tsv")
    conda:
        "../envs/fhirhouse.yaml"
    params:
        tables=TABLES,
        policy=CHECK_POLICY,
        overrides=SILVER_OVERRIDES,
    script:
        "../scripts/check_cohort.py"


rule check_tables:
    input:
        lambda wc: [str(LAYOUT.silver_cohort_marker(c)) for c in cohorts()],
    output:
        json=expand(str(CHECKS / "silver" / "{table}" / "table.json"), table=TABLES),
        md=str(CHECKS / "silver" / "tables.md"),
    log:
        str(LOGS / "checks" / "tables.log"),
    benchmark:
        str(BENCH / "checks" / "tables.tsv")
    conda:
        "../envs/fhirhouse.yaml"
    params:
        tables=TABLES,
        policy=CHECK_POLICY,
        overrides=SILVER_OVERRIDES,
    script:
        "../scripts/check_tables.py"


rule check_gold:
    input:
        str(MARKERS / "gold" / "cohort={cohort}.json"),
    output:
        json=str(CHECKS / "gold" / "cohort={cohort}.json"),
        md=str(CHECKS / "gold" / "cohort={cohort}.md"),
    log:
        str(LOGS / "checks" / "gold" / "cohort={cohort}.log"),
    conda:
        "../envs/fhirhouse.yaml"
    params:
        policy=CHECK_POLICY,
        max_age=GOLD_MAX_AGE,
    script:
        "../scripts/check_gold.py"
