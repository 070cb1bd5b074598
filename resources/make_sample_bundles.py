"""Write the built-in sample: six small, hand-designed Synthea-style FHIR R4 bundles.

    python resources/make_sample_bundles.py      # rewrites resources/sample_bundles/*.json

Every Silver table is represented: patients with US-Core race/ethnicity, encounters,
conditions (one abated), vitals (heart rate, temperature, SpO2, blood pressure as components)
and labs, medication requests (active and stopped), procedures, SOAP notes (inline Base64 and
one through a Binary), an ECG report with linked observations, a genomic report, an imaging
study, and a Claim that no table reads. All names and ids are invented.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

OUT = Path(__file__).parent / "sample_bundles"
NS = uuid.UUID("3f1d2c4b-8a9e-4f70-b1c2-d3e4f5a6b7c8")

PATIENTS = [
    ("Ada", "Lovelace", "female", "1961-12-10", "White", "Not Hispanic or Latino", "Boston"),
    ("Bo", "Nakamura", "male", "1948-03-02", "Asian", "Not Hispanic or Latino", "Worcester"),
    (
        "Cleo",
        "Okafor",
        "female",
        "1990-07-21",
        "Black or African American",
        "Not Hispanic or Latino",
        "Springfield",
    ),
    ("Dario", "Reyes", "male", "1975-11-30", "White", "Hispanic or Latino", "Lowell"),
    ("Esme", "Varga", "female", "2012-05-05", "White", "Not Hispanic or Latino", "Cambridge"),
    ("Faisal", "Haddad", "male", "1983-09-14", "Other", "Not Hispanic or Latino", "Quincy"),
]
ENCOUNTER_TYPES = [
    ("162673000", "General examination of patient (procedure)", "AMB"),
    ("185349003", "Encounter for check up (procedure)", "AMB"),
    ("50849002", "Emergency room admission (procedure)", "EMER"),
]
CONDITIONS = [
    ("59621000", "Essential hypertension (disorder)", 0, None),
    ("444814009", "Viral sinusitis (disorder)", 1, 2),
    ("15777000", "Prediabetes", 1, None),
]
MEDS = [
    ("314076", "lisinopril 10 MG Oral Tablet", "active"),
    ("308182", "Amoxicillin 250 MG Oral Capsule", "stopped"),
]
NOTE = """{date}

# Chief Complaint
{complaint}

# History of Present Illness
The patient is a {age} year-old presenting for a scheduled visit.

# Social History
Never smoker.

# Allergies
No Known Allergies.

# Medications
{meds}

# Assessment and Plan
{assessment}
"""


def uid(*parts: object) -> str:
    return str(uuid.uuid5(NS, "/".join(str(p) for p in parts)))


def age_at(birth: str, when: str) -> int:
    """Whole years from a YYYY-MM-DD birth date to an ISO date-time (anniversary rule)."""
    by, bm, bd = (int(x) for x in birth.split("-"))
    y, m, d = int(when[0:4]), int(when[5:7]), int(when[8:10])
    return y - by - ((m, d) < (bm, bd))


def ref(resource_id: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource_id}"}


def cc(system: str, code: str, display: str) -> dict[str, object]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


SNOMED, LOINC, RXNORM = (
    "http://snomed.info/sct",
    "http://loinc.org",
    "http://www.nlm.nih.gov/research/umls/rxnorm",
)


def entry(resource: dict[str, object]) -> dict[str, object]:
    return {
        "fullUrl": f"urn:uuid:{resource['id']}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def observation(pid, eid, oid, when, code, display, category, value=None, unit=None, **extra):
    obs = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": category,
                        "display": category,
                    }
                ]
            }
        ],
        "code": cc(LOINC, code, display),
        "subject": ref(pid),
        "encounter": ref(eid),
        "effectiveDateTime": when,
        "issued": when,
    }
    if value is not None:
        obs["valueQuantity"] = {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        }
    obs.update(extra)
    return obs


def bundle_for(i: int) -> tuple[str, dict[str, object]]:
    given, family, gender, birth, race, ethnicity, city = PATIENTS[i]
    pid = uid("patient", i)
    entries = []
    entries.append(
        entry(
            {
                "resourceType": "Patient",
                "id": pid,
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
                        "extension": [
                            {
                                "url": "ombCategory",
                                "valueCoding": {
                                    "system": "urn:oid:2.16.840.1.113883.6.238",
                                    "code": "2106-3",
                                    "display": race,
                                },
                            },
                            {"url": "text", "valueString": race},
                        ],
                    },
                    {
                        "url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity",
                        "extension": [
                            {
                                "url": "ombCategory",
                                "valueCoding": {
                                    "system": "urn:oid:2.16.840.1.113883.6.238",
                                    "code": "2186-5",
                                    "display": ethnicity,
                                },
                            },
                            {"url": "text", "valueString": ethnicity},
                        ],
                    },
                ],
                "name": [
                    {
                        "use": "official",
                        "family": f"{family}{100 + i}",
                        "given": [f"{given}{200 + i}"],
                    }
                ],
                "gender": gender,
                "birthDate": birth,
                "address": [
                    {"city": city, "state": "MA", "postalCode": f"0{1100 + i * 7}", "country": "US"}
                ],
                **({"deceasedDateTime": "2021-02-01T10:00:00-05:00"} if i == 1 else {}),
            }
        )
    )
    encounter_ids = []
    for k in range(3):
        eid = uid("encounter", i, k)
        encounter_ids.append(eid)
        code, display, klass = ENCOUNTER_TYPES[(i + k) % 3]
        start = f"20{18 + k}-0{3 + i % 5}-1{k}T0{8 + k}:15:00-04:00"
        end = start.replace(":15:00", ":45:00")
        enc = {
            "resourceType": "Encounter",
            "id": eid,
            "status": "finished",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": klass},
            "type": [cc(SNOMED, code, display)],
            "subject": ref(pid),
            "participant": [
                {
                    "individual": {
                        "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|99999"
                        + str(1000 + i),
                        "display": "Dr. Sample",
                    }
                }
            ],
            "period": {"start": start, "end": end},
        }
        if k == 2:
            enc["reasonCode"] = [cc(SNOMED, "444814009", "Viral sinusitis (disorder)")]
        entries.append(entry(enc))
        hr = 62 + i * 3 + k
        entries.append(
            entry(
                observation(
                    pid,
                    eid,
                    uid("hr", i, k),
                    start,
                    "8867-4",
                    "Heart rate",
                    "vital-signs",
                    hr,
                    "/min",
                )
            )
        )
        entries.append(
            entry(
                observation(
                    pid,
                    eid,
                    uid("temp", i, k),
                    start,
                    "8310-5",
                    "Body temperature",
                    "vital-signs",
                    36.6 + k / 10,
                    "Cel",
                )
            )
        )
        if k != 1:
            entries.append(
                entry(
                    observation(
                        pid,
                        eid,
                        uid("spo2", i, k),
                        start,
                        "59408-5",
                        "Oxygen saturation in Arterial blood by Pulse oximetry",
                        "vital-signs",
                        97 + k % 2,
                        "%",
                    )
                )
            )
        bp = observation(
            pid,
            eid,
            uid("bp", i, k),
            start,
            "85354-9",
            "Blood pressure panel with all children optional",
            "vital-signs",
        )
        bp["component"] = [
            {
                "code": cc(LOINC, "8462-4", "Diastolic Blood Pressure"),
                "valueQuantity": {"value": 78 + k, "unit": "mm[Hg]"},
            },
            {
                "code": cc(LOINC, "8480-6", "Systolic Blood Pressure"),
                "valueQuantity": {"value": 121 + i + k, "unit": "mm[Hg]"},
            },
        ]
        entries.append(entry(bp))
        entries.append(
            entry(
                observation(
                    pid,
                    eid,
                    uid("glucose", i, k),
                    start,
                    "2339-0",
                    "Glucose",
                    "laboratory",
                    88 + i * 2 + k,
                    "mg/dL",
                )
            )
        )
        entries.append(
            entry(
                observation(
                    pid,
                    eid,
                    uid("smoke", i, k),
                    start,
                    "72166-2",
                    "Tobacco smoking status",
                    "social-history",
                    valueCodeableConcept=cc(SNOMED, "266919005", "Never smoker"),
                )
            )
        )
        entries.append(
            entry(
                {
                    "resourceType": "Procedure",
                    "id": uid("proc", i, k),
                    "status": "completed",
                    "code": cc(SNOMED, "430193006", "Medication Reconciliation (procedure)"),
                    "subject": ref(pid),
                    "encounter": ref(eid),
                    "performedPeriod": {"start": start, "end": end},
                }
            )
        )
        note = NOTE.format(
            date=start[:10],
            complaint="No complaints." if k < 2 else "Facial pain and congestion.",
            age=age_at(birth, start),
            meds=MEDS[0][1] if i % 2 == 0 else "None.",
            assessment="Stable; continue current plan."
            if k < 2
            else "Viral sinusitis; supportive care.",
        )
        data = base64.b64encode(note.encode("utf-8")).decode("ascii")
        doc = {
            "resourceType": "DocumentReference",
            "id": uid("note", i, k),
            "status": "current",
            "type": cc(LOINC, "34117-2", "History and physical note"),
            "subject": ref(pid),
            "date": end,
            "context": {"encounter": [ref(eid)], "period": {"start": start, "end": end}},
        }
        if i == 3 and k == 0:  # one note through a Binary resource
            bin_id = uid("binary", i, k)
            entries.append(
                entry(
                    {
                        "resourceType": "Binary",
                        "id": bin_id,
                        "contentType": "text/plain",
                        "data": data,
                    }
                )
            )
            doc["content"] = [
                {"attachment": {"contentType": "text/plain", "url": f"urn:uuid:{bin_id}"}}
            ]
        else:
            doc["content"] = [
                {"attachment": {"contentType": "text/plain; charset=utf-8", "data": data}}
            ]
        entries.append(entry(doc))
        entries.append(
            entry(
                {
                    "resourceType": "Claim",
                    "id": uid("claim", i, k),
                    "status": "active",
                    "patient": ref(pid),
                    "item": [
                        {
                            "sequence": 1,
                            "productOrService": cc(SNOMED, code, display),
                            "encounter": [ref(eid)],
                        }
                    ],
                    "total": {"value": 129.16 + k, "currency": "USD"},
                }
            )
        )
    for n, (code, display, onset_k, abate_k) in enumerate(CONDITIONS):
        if n == 2 and i % 2:
            continue
        onset = f"20{18 + onset_k}-01-0{1 + n}T09:00:00-04:00"
        cond = {
            "resourceType": "Condition",
            "id": uid("condition", i, n),
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "resolved" if abate_k else "active",
                    }
                ]
            },
            "code": cc(SNOMED, code, display),
            "subject": ref(pid),
            "encounter": ref(encounter_ids[onset_k]),
            "onsetDateTime": onset,
            "recordedDate": onset,
        }
        if abate_k is not None:
            cond["abatementDateTime"] = f"20{18 + abate_k}-12-01T09:00:00-04:00"
        entries.append(entry(cond))
    for n, (code, display, status) in enumerate(MEDS):
        entries.append(
            entry(
                {
                    "resourceType": "MedicationRequest",
                    "id": uid("med", i, n),
                    "status": status,
                    "intent": "order",
                    "medicationCodeableConcept": cc(RXNORM, code, display),
                    "subject": ref(pid),
                    "encounter": ref(encounter_ids[n]),
                    "authoredOn": f"20{18 + n}-04-01T10:00:00-04:00",
                    "dosageInstruction": [{"sequence": 1, "text": "Take one daily"}],
                }
            )
        )
    last = encounter_ids[2]
    if i in (0, 3):  # ECG with linked observations
        hr_id, rhythm_id = uid("ecg-hr", i), uid("ecg-rhythm", i)
        entries.append(
            entry(
                {
                    "resourceType": "Observation",
                    "id": hr_id,
                    "status": "final",
                    "code": cc(LOINC, "8867-4", "Heart rate"),
                    "subject": ref(pid),
                    "encounter": ref(last),
                    "valueQuantity": {"value": 71.0, "unit": "/min"},
                }
            )
        )
        entries.append(
            entry(
                {
                    "resourceType": "Observation",
                    "id": rhythm_id,
                    "status": "final",
                    "code": cc(LOINC, "8893-1", "Heart rate rhythm"),
                    "subject": ref(pid),
                    "encounter": ref(last),
                    "valueCodeableConcept": cc(SNOMED, "251150006", "Normal sinus rhythm"),
                }
            )
        )
        entries.append(
            entry(
                {
                    "resourceType": "DiagnosticReport",
                    "id": uid("ecg", i),
                    "status": "final",
                    "category": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
                                    "code": "EC",
                                    "display": "Electrocardiac",
                                }
                            ]
                        }
                    ],
                    "code": cc(LOINC, "11524-6", "EKG study"),
                    "subject": ref(pid),
                    "encounter": ref(last),
                    "effectiveDateTime": "2020-05-12T10:20:00-04:00",
                    "conclusion": "Normal sinus rhythm, no acute changes.",
                    "result": [ref(hr_id), ref(rhythm_id)],
                }
            )
        )
    if i in (1, 4):  # genomic report
        entries.append(
            entry(
                {
                    "resourceType": "DiagnosticReport",
                    "id": uid("genomic", i),
                    "status": "final",
                    "code": cc(LOINC, "55232-3", "Genetic analysis summary panel"),
                    "subject": ref(pid),
                    "encounter": ref(last),
                    "effectiveDateTime": "2020-06-01T11:00:00-04:00",
                    "conclusion": "No pathogenic variants detected. Family history of hypertension noted."
                    if i == 1
                    else "Likely pathogenic variant identified in BRCA1.",
                    "presentedForm": [
                        {"contentType": "text/csv", "url": f"genomics/sample_{i}_dna.csv"}
                    ],
                }
            )
        )
    if i in (2, 5):  # imaging study
        entries.append(
            entry(
                {
                    "resourceType": "ImagingStudy",
                    "id": uid("imaging", i),
                    "identifier": [
                        {
                            "use": "official",
                            "system": "urn:ietf:rfc:3986",
                            "value": f"urn:oid:1.2.840.99999999.{4000 + i}.{1600000000 + i}",
                        }
                    ],
                    "status": "available",
                    "subject": ref(pid),
                    "encounter": ref(last),
                    "started": "2020-05-12T10:40:00-04:00",
                    "numberOfSeries": 1,
                    "numberOfInstances": 2,
                    "series": [
                        {
                            "uid": f"1.2.840.99999999.1.{4000 + i}",
                            "number": 1,
                            "modality": {
                                "system": "http://dicom.nema.org/resources/ontology/DCM",
                                "code": "DX",
                            },
                            "bodySite": {"system": SNOMED, "code": "51185008", "display": "Chest"},
                            "numberOfInstances": 2,
                        }
                    ],
                }
            )
        )
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    return f"{given}{200 + i}_{family}{100 + i}_{pid}.json", bundle


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    for i in range(len(PATIENTS)):
        name, bundle = bundle_for(i)
        (OUT / name).write_text(json.dumps(bundle, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(PATIENTS)} bundles to {OUT}")


if __name__ == "__main__":
    main()
