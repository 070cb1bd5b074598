# Silver: parse each cohort once into ten staged Arrow tables, then one write job per table.


rule parse:
    input:
        bronze=str(MARKERS / "bronze" / "cohort={cohort}.json"),
    output:
        marker=str(MARKERS / "parse" / "cohort={cohort}.json"),
        staged=expand(
            str(STAGING / "cohort={{cohort}}" / "{table}.arrow"), table=TABLES
        ),
    log:
        str(LOGS / "parse" / "cohort={cohort}.log"),
    benchmark:
        str(BENCH / "parse" / "cohort={cohort}.tsv")
    conda:
        "../envs/fhirhouse.yaml"
    params:
        tables=TABLES,
    script:
        "../scripts/parse_cohort.py"


# One rule per table, so the rule graph shows ten Silver nodes and one table can be rebuilt
# alone (`--forcerun silver_observation`). Each holds its table's writer resource.
for _table in TABLES:

    rule:
        name:
            f"silver_{_table}"
        input:
            staged=str(STAGING / "cohort={cohort}" / f"{_table}.arrow"),
        output:
            str(MARKERS / "silver" / _table / "cohort={cohort}.json"),
        log:
            str(LOGS / "silver" / _table / "cohort={cohort}.log"),
        benchmark:
            str(BENCH / "silver" / _table / "cohort={cohort}.tsv")
        retries: 3
        conda:
            "../envs/fhirhouse.yaml"
        resources:
            **{f"silver_{_table}_writer": 1},
        params:
            table=_table,
        script:
            "../scripts/write_silver.py"


rule silver_cohort:
    input:
        lambda wc: silver_markers(wc.cohort),
    output:
        str(MARKERS / "silver" / "cohort={cohort}.json"),
    log:
        str(LOGS / "silver" / "cohort={cohort}.log"),
    conda:
        "../envs/fhirhouse.yaml"
    params:
        tables=TABLES,
    script:
        "../scripts/silver_cohort.py"
