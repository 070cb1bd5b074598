"""The FHIR resource builders: each lands in its Silver table, through both parser paths."""

from __future__ import annotations

import orjson

from fhirhouse import SILVER_TABLES
from fhirhouse.fhir import fast as fast_path
from fhirhouse.fhir.parser import parse_bundle
from fhirhouse.synth.builders import (
    LOINC,
    RXNORM,
    SNOMED,
    bundle,
    care_plan,
    cc,
    claim,
    claim_item,
    clinical_note,
    coding,
    concept,
    condition,
    ecg_report,
    encounter,
    explanation_of_benefit,
    genomic_report,
    hl7,
    imaging_series,
    imaging_study,
    immunization,
    loinc_observation,
    medication_request,
    money,
    organization,
    patient,
    period,
    practitioner,
    procedure,
    provenance,
    resource,
    study_identifier,
)

P, E, WHEN = "p-1", "e-1", "2021-03-15T09:00:00-05:00"


def _every_kind() -> list[dict]:
    """One resource of every kind the builders make; a resource's id names the Silver table
    it lands in (the second note's excepted)."""
    pt, enc = "patient", "encounter"
    bill = {"kind": cc(SNOMED, "1", "Claim"), "use": "claim", "billable": period(WHEN)}
    bill |= {"status": "active", "created": WHEN}
    return [
        organization("org", name="Clinic", kind=cc(SNOMED, "prov", "Provider")),
        practitioner("prac", given="Sam", family="Clinician", npi="9999900000"),
        patient(pt, given="Ada", family="Lovelace", race=("2106-3", "White"), synthea_id=True),
        encounter(enc, pt, start=WHEN, status="finished", provider="org"),
        condition("condition", pt, enc, code=cc(SNOMED, "1", "X"), clinical=hl7("cs", "active")),
        loinc_observation("observation", pt, enc, WHEN, "8867-4", "HR", "vital-signs", 72, "/min"),
        medication_request("medication_request", pt, enc, code=cc(RXNORM, "1", "X")),
        procedure("procedure", pt, enc, code=cc(SNOMED, "1", "X"), performed=period(WHEN)),
        *clinical_note("soap_note", "# Plan\nrest\n", subject=pt, encounter=enc),
        *clinical_note("note-2", "# Plan\n", binary_id="bin", subject=pt, encounter=enc),
        ecg_report(
            "ecg_metadata", pt, enc, code=cc(LOINC, "11524-6", "EKG"), results=["observation"]
        ),
        genomic_report(
            "genomic_report", pt, enc, code=concept(display="Genetic panel"), conclusion=None
        ),
        imaging_study(
            "imaging_study",
            pt,
            enc,
            identifier=study_identifier("1.2.3"),
            series=[imaging_series(coding("DX"), coding("51185008", "Chest"))],
        ),
        claim("claim", pt, items=[claim_item(1, encounter=enc)], **bill),
        explanation_of_benefit(
            "eob",
            pt,
            claim="claim",
            items=[],
            insurer="Medicaid",
            provider="org",
            care_team=[],
            total=[],
            payment={},
            **bill,
        ),
        immunization("immunization", pt, enc, code=concept("140"), when=WHEN),
        care_plan("plan", pt, enc, category=concept("1"), start=WHEN, activity=concept("2")),
        provenance("provenance", targets=[pt], recorded=WHEN, who="prac", on_behalf_of="org"),
    ]


def test_every_builder_lands_in_its_silver_table_by_both_paths():
    doc = bundle(_every_kind())
    out = parse_bundle(doc)
    assert out.issues == []
    found = {
        table: {doc["entry"][rec["source_entry"]]["resource"]["id"] for rec in recs}
        for table, recs in out.records.items()
    }
    assert found == {t: {t} for t in SILVER_TABLES} | {"soap_note": {"soap_note", "note-2"}}
    fast = fast_path.parse(orjson.dumps(doc))  # NotFast would mean a shape the views miss
    assert fast.records == out.records


def test_a_builder_writes_only_what_it_is_given_in_one_order():
    assert resource("Observation", "o", code=None, status="final") == {
        "resourceType": "Observation",
        "id": "o",
        "status": "final",
    }
    # The builder's order, not the arguments'.
    assert list(encounter("e", start=WHEN, status="finished")) == [
        "resourceType",
        "id",
        "status",
        "period",
    ]
    assert concept(text="Free text") == {"text": "Free text"}
    assert money(1.5) == {"value": 1.5, "currency": "USD"}
    # A genomic report always carries its conclusion, null when there is none.
    assert genomic_report("g", code=concept("x"), conclusion=None)["conclusion"] is None
