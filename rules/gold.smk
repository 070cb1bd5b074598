# Gold: gold.encounter_summary recomputed per cohort, then the corpus manifest.


rule gold:
    input:
        silver=str(MARKERS / "silver" / "cohort={cohort}.json"),
        checks=lambda wc: [str(LAYOUT.check_cohort(t, wc.cohort)) for t in TABLES],
    output:
        str(MARKERS / "gold" / "cohort={cohort}.json"),
    log:
        str(LOGS / "gold" / "cohort={cohort}.log"),
    benchmark:
        str(BENCH / "gold" / "cohort={cohort}.tsv")
    retries: 3
    conda:
        "../envs/fhirhouse.yaml"
    resources:
        gold_writer=1,
    script:
        "../scripts/gold_cohort.py"


rule gold_manifest:
    input:
        lambda wc: gold_manifest_inputs(),
    output:
        **MANIFEST_OUTPUT,
        marker=str(LAYOUT.gold_manifest_marker()),
    log:
        str(LOGS / "gold" / "manifest.log"),
    benchmark:
        str(BENCH / "gold" / "manifest.tsv")
    conda:
        "../envs/fhirhouse.yaml"
    script:
        "../scripts/gold_manifest.py"
