# Bronze: land source bundles into cohort folders, then describe each cohort.


rule synth:
    output:
        str(SYNTH_MARKER),
    log:
        str(LOGS / "synth.log"),
    benchmark:
        str(BENCH / "synth.tsv")
    conda:
        "../envs/fhirhouse.yaml"
    params:
        out=str(SYNTH_DIR),
        patients=config["synth"]["patients"],
        seed=config["synth"]["seed"],
    script:
        "../scripts/synth.py"


checkpoint land:
    input:
        source_state,
    output:
        str(LAYOUT.landing_marker()),
    log:
        str(LOGS / "land.log"),
    benchmark:
        str(BENCH / "land.tsv")
    conda:
        "../envs/fhirhouse.yaml"
    params:
        source=str(SOURCE) if SOURCE else None,
        cohorts=config["cohorts"],
        cohort=config.get("cohort"),
    script:
        "../scripts/land.py"


# The landing marker is an input for lineage and ordering only: ancient() keeps a re-landing
# of other cohorts from rerunning this one; the cohort's own files decide.
rule bronze:
    input:
        landing=ancient(str(LAYOUT.landing_marker())),
        state=bronze_state,
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
