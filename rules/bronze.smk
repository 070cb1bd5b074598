# Bronze: land source bundles into cohort folders, then describe each cohort.


checkpoint land:
    input:
        source_files,
    output:
        str(LAYOUT.landing_marker()),
    log:
        str(LOGS / "land.log"),
    benchmark:
        str(BENCH / "land.tsv")
    conda:
        "../envs/fhirhouse.yaml"
    params:
        source=config.get("source"),
        cohorts=config["cohorts"],
        cohort=config.get("cohort"),
    script:
        "../scripts/land.py"


rule bronze:
    input:
        bronze_files,
    output:
        str(MARKERS / "bronze" / "cohort={cohort}.json"),
    log:
        str(LOGS / "bronze" / "cohort={cohort}.log"),
    benchmark:
        str(BENCH / "bronze" / "cohort={cohort}.tsv")
    conda:
        "../envs/fhirhouse.yaml"
    script:
        "../scripts/bronze_cohort.py"
