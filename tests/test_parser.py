"""The pure bundle parser: references, concepts, every record kind, notes, reports, DICOM."""

from __future__ import annotations

import json
from io import BytesIO

import pytest
from conftest import b64, make_bundle

from fhirhouse import SILVER_TABLES
from fhirhouse.fhir import dicom as dicom_mod
from fhirhouse.fhir.notes import NoteDecodeError, decode_note, section_flags
from fhirhouse.fhir.parser import (
    DATA_LIMITATION,
    NotABundleError,
    RejectedBundleError,
    classify_report,
    codeable,
    has_pathogenic_variant,
    parse_bundle,
    strip_ref,
)
from fhirhouse.synth.builders import (
    attachment,
    binary,
    coding,
    component,
    concept,
    document_reference,
    ecg_report,
    genomic_report,
    imaging_series,
    imaging_study,
    observation,
    quantity,
)


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("urn:uuid:abc-1", "abc-1"),
        ("Patient/abc-1", "abc-1"),
        ("abc-1", "abc-1"),
        ("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|999", "us-npi|999"),
        ("", ""),
        (None, ""),
    ],
)
def test_strip_ref(ref, expected):
    assert strip_ref(ref) == expected


def test_codeable_rules():
    assert codeable({"coding": [{"code": 123, "display": "X"}]}) == ("123", "X")
    assert codeable({"coding": [{"code": "a"}], "text": "T"}) == ("a", "T")
    assert codeable(None) == ("", "")


def test_a_bundle_of_only_a_patient_has_ten_lists():
    out = parse_bundle(make_bundle(n_enc=0))
    assert list(out.records) == list(SILVER_TABLES)
    assert len(out.records["patient"]) == 1
    assert all(v == [] for k, v in out.records.items() if k != "patient")


@pytest.mark.parametrize("doc", [[1, 2], "text", 3, {"resourceType": "Patient", "id": "x"}])
def test_not_a_bundle_raises(doc):
    with pytest.raises(NotABundleError):
        parse_bundle(doc)


def _without_patient(bundle: dict) -> dict:
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    return bundle


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: {"resourceType": "Bundle", "entry": []}, "Bundle has no Patient resource"),
        (_without_patient, "Bundle has no Patient resource"),
        (
            lambda b: {**b, "entry": b["entry"] + make_bundle("p-2", n_enc=0)["entry"]},
            "Bundle has 2 Patient resources; one patient per bundle expected",
        ),
        (lambda b: {**b, "entry": {"not": "a list"}}, "Bundle.entry is dict, not a list"),
    ],
)
def test_bundles_that_cannot_be_one_patient_are_rejected(mutate, reason):
    with pytest.raises(RejectedBundleError, match=f"^{reason}$"):
        parse_bundle(mutate(make_bundle("p-001", n_enc=2)))


def test_patient_without_id_rejects_the_bundle():
    bundle = make_bundle()
    del bundle["entry"][0]["resource"]["id"]
    with pytest.raises(RejectedBundleError, match="Patient resource has no id"):
        parse_bundle(bundle)


def test_entries_without_resource_type_are_skipped_and_reported():
    bundle = make_bundle()
    bundle["entry"].append({"resource": {"id": "no-type"}})
    bundle["entry"].append("not an entry")
    bundle["entry"].append({"fullUrl": "urn:uuid:x"})
    out = parse_bundle(bundle)
    assert len(out.records["patient"]) == 1 and len(out.records["encounter"]) == 1
    assert sorted(i.reason for i in out.issues) == [
        "entry_not_an_object",
        "entry_without_resource",
        "entry_without_resourceType",
    ]


def test_resources_without_id_are_dropped_not_collapsed():
    bundle = make_bundle(n_enc=3)
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Observation":
            e["resource"]["id"] = ""
    out = parse_bundle(bundle)
    assert out.records["observation"] == []
    assert [i.reason for i in out.issues] == ["missing_id"] * 3
    assert {i.resource_type for i in out.issues} == {"Observation"}
    assert len(out.records["encounter"]) == 3


def test_dangling_references_drop_the_resource():
    bundle = make_bundle("p-001", n_enc=2)
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    obs[0]["encounter"] = {"reference": "urn:uuid:no-such-encounter"}
    obs[1]["subject"] = {"reference": "Patient/someone-else"}
    out = parse_bundle(bundle)
    assert out.records["observation"] == []
    assert sorted(i.reason for i in out.issues) == [
        "dangling_reference:encounter",
        "dangling_reference:subject",
    ]
    # a reference by resource id (not fullUrl) resolves too
    bundle = make_bundle("p-001", n_enc=1)
    bundle["entry"][1]["fullUrl"] = "urn:uuid:other-url"
    assert len(parse_bundle(bundle).records["observation"]) == 1


def test_a_malformed_resource_is_dropped_and_the_rest_parsed():
    bundle = make_bundle("p-001", n_enc=2)
    bundle["entry"][1]["resource"]["participant"] = 5  # not iterable
    out = parse_bundle(bundle)
    assert len(out.records["encounter"]) == 1
    # the dropped encounter's observation and note now dangle, and are dropped with it
    assert sorted(i.reason for i in out.issues) == [
        "dangling_reference:encounter",
        "dangling_reference:encounter",
        "malformed_resource:TypeError",
    ]
    assert len(out.records["observation"]) == len(out.records["soap_note"]) == 1


def _full_bundle() -> dict:
    pid = "pat-1"
    race = {
        "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
        "extension": [
            {"url": "ombCategory", "valueCoding": {"display": "White"}},
            {"url": "text", "valueString": "White text"},
        ],
    }
    eth = {
        "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
        "extension": [{"url": "ombCategory", "valueCoding": {"display": "Hispanic or Latino"}}],
    }
    extra = [
        {
            **observation(
                "bp",
                code=concept("85354-9", "BP"),
                components=[
                    component(concept("8480-6", "Systolic"), quantity(154, "mm[Hg]")),
                    component(concept("8462-4", "Diastolic"), quantity(85.5, "mm[Hg]")),
                ],
            ),
            "subject": {"reference": f"Patient/{pid}"},  # by type and id, not by fullUrl
        },
        observation(
            "smoke", code=concept("72166-2"), value_concept=concept("1", text="Never smoker")
        ),
        {  # a medication by reference, not by concept
            "resourceType": "MedicationRequest",
            "id": "med-ref",
            "status": "active",
            "medicationReference": {"reference": "urn:uuid:m1"},
        },
        document_reference("note-bin", content=attachment(url="urn:uuid:bin-1")),
        binary("bin-1", b64("SUBJECTIVE: ok\nPlan: rest")),
        document_reference("note-missing-bin", content=attachment(url="urn:uuid:nowhere")),
        ecg_report(
            "ecg-1",
            code=concept("11524-6", "EKG study"),
            conclusion="Normal sinus rhythm.",
            results=["ecg-hr", "ecg-rhythm"],
            waveform="urn:uuid:wave-1",
        ),
        observation("ecg-hr", code=concept("8867-4"), value=quantity(78.0)),
        observation(
            "ecg-rhythm",
            code=concept("8893-1"),
            value_concept=concept(display="Normal sinus rhythm"),
        ),
        genomic_report(
            "gen-1",
            code=concept(display="Genetic analysis master panel"),
            conclusion="No pathogenic variants detected. Family history of diabetes noted.",
            form=attachment(url="urn:uuid:binary-vcf-001"),
        ),
        imaging_study(
            "img-1",
            n_series=1,
            n_instances=2,
            series=[imaging_series(coding("MR"), coding("12738006", "Brain structure"))],
            identifier={"value": "urn:oid:1.2.840.99.1"},
        ),
    ]
    bundle = make_bundle(pid, extra=extra)
    patient = bundle["entry"][0]["resource"]
    patient["extension"] = [race, eth]
    patient["deceasedDateTime"] = "2020-01-01T00:00:00Z"
    return bundle


def test_full_bundle_fields():
    out = parse_bundle(_full_bundle())
    r = out.records
    pat = r["patient"][0]
    assert (pat["race"], pat["ethnicity"]) == ("White text", "Hispanic or Latino")
    assert pat["deceased"] is True and pat["deceased_date"] == "2020-01-01T00:00:00Z"
    assert pat["zip"] == "02118"
    enc = r["encounter"][0]
    assert enc["type_code"] == "" and enc["provider_id"] == "" and enc["class_code"] == "AMB"
    bp = next(o for o in r["observation"] if o["observation_id"] == "bp")
    assert bp["value"] is None
    assert json.loads(bp["components_json"]) == [
        {"code": "8480-6", "display": "Systolic", "value": 154, "unit": "mm[Hg]"},
        {"code": "8462-4", "display": "Diastolic", "value": 85.5, "unit": "mm[Hg]"},
    ]
    hr = next(o for o in r["observation"] if o["observation_id"].endswith("-hr"))
    assert hr["components_json"] is None and hr["category"] == "vital-signs"
    smoke = next(o for o in r["observation"] if o["observation_id"] == "smoke")
    assert smoke["value_string"] == "Never smoker" and smoke["category"] == ""
    med = r["medication_request"][0]
    assert (med["code"], med["display"]) == ("", "")
    notes = {n["note_id"]: n for n in r["soap_note"]}
    assert set(notes) == {"pat-1-enc-0-note", "note-bin"}  # the missing Binary gives no row
    assert notes["note-bin"]["binary_id"] == "bin-1"
    assert notes["note-bin"]["has_subjective"] and notes["note-bin"]["has_plan"]
    assert notes["pat-1-enc-0-note"]["binary_id"] == ""
    ecg = r["ecg_metadata"][0]
    assert ecg["heart_rate_bpm"] == 78 and isinstance(ecg["heart_rate_bpm"], int)
    assert ecg["rhythm"] == "Normal sinus rhythm" and ecg["pr_interval_ms"] is None
    assert ecg["has_waveform"] and ecg["waveform_binary_id"] == "wave-1"
    gen = r["genomic_report"][0]
    assert gen["gene_panel_name"] == "Genetic analysis master panel"
    assert gen["has_pathogenic_variant"] is False and gen["family_history_flag"] is True
    assert gen["binary_id"] == "binary-vcf-001" and gen["data_limitation"] == DATA_LIMITATION
    img = r["imaging_study"][0]
    assert (img["modality"], img["body_site"], img["series_count"]) == ("MR", "12738006", 1)
    assert img["dicom_extracted"] is False and img["dicom_binary_id"] is None
    assert out.issues == []


def test_undecodable_note_is_dropped_and_reported():
    bad = {
        "resourceType": "DocumentReference",
        "id": "bad",
        "content": [{"attachment": {"data": "abc"}}],  # bad padding
    }
    latin1 = {
        "resourceType": "DocumentReference",
        "id": "latin1",
        "content": [{"attachment": {"data": "6Q=="}}],  # b"\xe9": not UTF-8
    }
    out = parse_bundle(make_bundle(extra=[bad, latin1]))
    assert {n["note_id"] for n in out.records["soap_note"]} == {"p-001-enc-0-note"}
    assert [i.resource_type for i in out.issues] == ["DocumentReference"] * 2
    assert all(i.reason.startswith("note_undecodable") for i in out.issues)


def test_decode_is_lenient_about_non_alphabet_characters():
    assert decode_note("aGVs\nbG8=") == "hello"
    with pytest.raises(NoteDecodeError):
        decode_note("aGVsbG8")


def test_section_flags():
    coherent = "2020-01-01\n\n# Chief Complaint\nx\n# Assessment and Plan\ny\n"
    assert section_flags(coherent) == {
        "has_subjective": True,
        "has_objective": False,
        "has_assessment": True,
        "has_plan": True,
    }
    classic = "Subjective: a\nOBJECTIVE: b\nassessment: c\nPlan: d"
    assert all(section_flags(classic).values())
    assert not any(section_flags("no headers at all").values())


def test_report_classification_genomic_first():
    both = {"code": {"coding": [{"display": "ECG gene panel"}]}}
    assert classify_report(both) == "genomic"
    cat = {
        "code": {"coding": [{"display": "Study"}]},
        "category": [{"coding": [{"display": "Electrocardiogram"}]}],
    }
    assert classify_report(cat) == "ecg"
    dna = {"code": {"coding": [{"display": "Respiratory pathogens DNA and RNA panel"}]}}
    assert classify_report(dna) == "genomic"  # the reference's kept quirk
    assert classify_report({"code": {"coding": [{"display": "Lipid panel"}]}}) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Likely pathogenic variant identified in BRCA1", True),
        ("No pathogenic variants detected.", False),
        ("non-pathogenic variant", False),
        ("no clinically significant pathogenic findings", False),
        (None, False),
        ("benign", False),
    ],
)
def test_pathogenic_rule(text, expected):
    assert has_pathogenic_variant(text) is expected


def test_genomic_extension_family_flag():
    report = {
        "resourceType": "DiagnosticReport",
        "id": "g",
        "code": {"text": "Genomic report"},
        "extension": [{"url": "http://x/family-history"}],
    }
    gen = parse_bundle(make_bundle(extra=[report])).records["genomic_report"][0]
    assert gen["family_history_flag"] is True  # valueBoolean defaults to true
    assert gen["result_summary"] is None and gen["binary_id"] == ""


def _dicom_bytes(uid: str) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.StudyInstanceUID = uid
    ds.Modality = "OT"
    ds.StudyDescription = "UNKNOWN"
    ds.SeriesDescription = " Axial T1 "
    ds.Manufacturer = "Anonymized"
    ds.StudyDate = "19940115"
    ds.SliceThickness = "1.0"
    ds.MagneticFieldStrength = "1.5"
    ds.Rows = 256
    ds.Columns = 256
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_dicom_enrichment_headers_only():
    uid = "1.2.840.99.1"
    data = _dicom_bytes(uid)
    out = parse_bundle(_full_bundle(), {uid: data}.get)
    img = out.records["imaging_study"][0]
    assert img["dicom_extracted"] is True and img["dicom_binary_id"] == uid
    assert img["modality"] == "MR"  # FHIR stays authoritative
    assert img["study_description"] is None and img["manufacturer"] is None
    assert img["series_description"] == "Axial T1"
    assert img["study_date"] == "1994-01-15"
    assert (img["rows"], img["columns"], img["slice_thickness_mm"]) == (256, 256, 1.0)
    assert img["magnetic_field_strength"] == 1.5


def test_malformed_dicom_keeps_fhir_row():
    out = parse_bundle(_full_bundle(), lambda uid: b"definitely not dicom")
    img = out.records["imaging_study"][0]
    assert img["dicom_extracted"] is False and img["dicom_binary_id"] is None
    assert img["modality"] == "MR"
    assert out.issues and out.issues[0].resource_type == "ImagingStudy"


def test_dicom_uid_from_filename():
    name = "Ada1_Lo2_0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f01.2.840.99.1.dcm"
    assert dicom_mod.uid_from_filename(name) == "1.2.840.99.1"
    assert dicom_mod.uid_from_filename("garbage.dcm") is None


def test_entry_index_resolves_full_url():
    bundle = make_bundle(
        extra=[
            {
                "resourceType": "DocumentReference",
                "id": "n2",
                "content": [{"attachment": {"url": "Binary/b-2"}}],
            }
        ]
    )
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:b-2",
            "resource": {"resourceType": "Binary", "data": b64("# Plan\nx")},
        }
    )
    notes = parse_bundle(bundle).records["soap_note"]
    assert any(n["note_id"] == "n2" and n["binary_id"] == "b-2" for n in notes)
