# Bronze: land source bundles into cohort folders, then describe each cohort. Both run
# inside the Snakemake process (localrule + run:, with the profile's force-use-threads):
# bookkeeping that starts no interpreter.


rule synth:
    output:
        str(LAYOUT.synth_marker),
    log:
        str(LAYOUT.log("synth")),
    benchmark:
        str(LAYOUT.benchmark("synth"))
    conda:
        "../envs/fhirhouse.yaml"
    params:
        out=str(LAYOUT.synth_dir),
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
        str(LAYOUT.log("land")),
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
            LAYOUT,
            params.source,
            cohorts=params.cohorts,
            cohort=params.cohort,
            marker=output[0],
            state=str(LAYOUT.source_state) if params.source else None,
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
        str(LAYOUT.log("bronze", cohort="{cohort}")),
    localrule: True
    threads: 0
    run:
        from fhirhouse.jobs.bronze import bronze_cohort_job

        in_snakemake(
            rule,
            log,
            wildcards,
            bronze_cohort_job,
            LAYOUT,
            wildcards.cohort,
            output[0],
        )
