# Bronze: land source bundles into cohort folders, then describe each cohort. Both run
# inside the Snakemake process (localrule + run:, with the profile's force-use-threads):
# bookkeeping that starts no interpreter.


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
    localrule: True
    params:
        source=str(SOURCE) if SOURCE else None,
        cohorts=config["cohorts"],
        cohort=LAND_INTO,
    run:
        from fhirhouse.jobs.bronze import land_job

        in_snakemake(
            rule,
            log,
            wildcards,
            land_job,
            config["root"],
            params.source,
            cohorts=params.cohorts,
            cohort=params.cohort,
            marker=output[0],
            state=str(SOURCE_STATE) if params.source else None,
        )


# The landing marker is an input for lineage and ordering only: ancient() keeps a re-landing
# of other cohorts from rerunning this one; the cohort's own files decide.
rule bronze:
    input:
        landing=ancient(str(LAYOUT.landing_marker())),
        state=bronze_state,
    output:
        str(LAYOUT.bronze_marker("{cohort}")),
    log:
        str(LOGS / "bronze" / "cohort={cohort}.log"),
    localrule: True
    threads: 0
    run:
        from fhirhouse.jobs.bronze import bronze_cohort_job

        in_snakemake(
            rule,
            log,
            wildcards,
            bronze_cohort_job,
            config["root"],
            wildcards.cohort,
            output[0],
        )
