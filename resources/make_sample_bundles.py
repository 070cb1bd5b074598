"""Write the built-in sample: six small, hand-designed Synthea-style FHIR R4 bundles.

    python resources/make_sample_bundles.py      # rewrites resources/sample_bundles/*.json

Every Silver table is represented: patients with US-Core race/ethnicity, encounters,
conditions (one abated), vitals (heart rate, temperature, SpO2, blood pressure as components)
and labs, medication requests (active and stopped), procedures, SOAP notes (inline Base64 and
one through a Binary), an ECG report with linked observations, a genomic report, an imaging
study, and a Claim that no table reads. All names and ids are invented.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from fhirhouse.synth.builders import (
    DICOM_DCM,
    LOINC,
    RXNORM,
    SNOMED,
    TERMINOLOGY,
    address,
    attachment,
    bundle,
    cc,
    claim,
    claim_item,
    clinical_note,
    coding,
    component,
    condition,
    ecg_report,
    encounter,
    genomic_report,
    hl7,
    imaging_study,
    loinc_observation,
    medication_request,
    money,
    observation,
    patient,
    period,
    procedure,
    quantity,
    study_identifier,
)

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
CONDITIONS = [  # (code, display, onset encounter and year, abatement year or None)
    ("59621000", "Essential hypertension (disorder)", 0, None),
    ("444814009", "Viral sinusitis (disorder)", 1, 2),
    ("15777000", "Prediabetes", 1, None),
]
MEDS = [
    ("314076", "lisinopril 10 MG Oral Tablet", "active"),
    ("308182", "Amoxicillin 250 MG Oral Capsule", "stopped"),
]
VITALS = [  # (name, code, display, unit); SpO2 is left out of each patient's second encounter
    ("hr", "8867-4", "Heart rate", "/min"),
    ("temp", "8310-5", "Body temperature", "Cel"),
    ("spo2", "59408-5", "Oxygen saturation in Arterial blood by Pulse oximetry", "%"),
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


def encounter_resources(i: int, k: int, pid: str, birth: str) -> list[dict]:
    """Patient ``i``'s encounter ``k`` and what it records: vitals, a lab, smoking status, a
    procedure, a note (patient 3's first one through a Binary) and a Claim."""
    eid = uid("encounter", i, k)
    code, display, klass = ENCOUNTER_TYPES[(i + k) % 3]
    start = f"20{18 + k}-0{3 + i % 5}-1{k}T0{8 + k}:15:00-04:00"
    end = start.replace(":15:00", ":45:00")
    npi = f"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|99999{1000 + i}"
    out = [
        encounter(
            eid,
            pid,
            start=start,
            end=end,
            status="finished",
            klass=coding(klass, system=f"{TERMINOLOGY}/v3-ActCode"),
            kind=cc(SNOMED, code, display),
            participant=[{"individual": {"reference": npi, "display": "Dr. Sample"}}],
            reason=cc(SNOMED, "444814009", "Viral sinusitis (disorder)") if k == 2 else None,
        )
    ]

    def obs(name: str, *args, **fields) -> dict:
        return loinc_observation(uid(name, i, k), pid, eid, start, *args, **fields)

    values = {"hr": 62 + i * 3 + k, "temp": 36.6 + k / 10, "spo2": 97 + k % 2}
    for name, vcode, vdisplay, unit in VITALS:
        if name != "spo2" or k != 1:
            out.append(obs(name, vcode, vdisplay, "vital-signs", values[name], unit))
    mmhg = [
        ("8462-4", "Diastolic Blood Pressure", 78 + k),
        ("8480-6", "Systolic Blood Pressure", 121 + i + k),
    ]
    bp = [component(cc(LOINC, c, d), quantity(v, "mm[Hg]")) for c, d, v in mmhg]
    out += [
        obs(
            "bp",
            "85354-9",
            "Blood pressure panel with all children optional",
            "vital-signs",
            components=bp,
        ),
        obs("glucose", "2339-0", "Glucose", "laboratory", 88 + i * 2 + k, "mg/dL"),
        obs(
            "smoke",
            "72166-2",
            "Tobacco smoking status",
            "social-history",
            value_concept=cc(SNOMED, "266919005", "Never smoker"),
        ),
        procedure(
            uid("proc", i, k),
            pid,
            eid,
            status="completed",
            performed=period(start, end),
            code=cc(SNOMED, "430193006", "Medication Reconciliation (procedure)"),
        ),
    ]
    note = NOTE.format(
        date=start[:10],
        complaint="No complaints." if k < 2 else "Facial pain and congestion.",
        age=age_at(birth, start),
        meds=MEDS[0][1] if i % 2 == 0 else "None.",
        assessment="Stable; continue current plan."
        if k < 2
        else "Viral sinusitis; supportive care.",
    )
    out += clinical_note(
        uid("note", i, k),
        note,
        binary_id=uid("binary", i, k) if (i, k) == (3, 0) else None,
        subject=pid,
        encounter=eid,
        status="current",
        date=end,
        context_period=period(start, end),
        kind=cc(LOINC, "34117-2", "History and physical note"),
    )
    item = claim_item(1, cc(SNOMED, code, display), eid)
    out.append(
        claim(uid("claim", i, k), pid, status="active", items=[item], total=money(129.16 + k))
    )
    return out


def bundle_for(i: int) -> tuple[str, dict[str, object]]:
    given, family, gender, birth, race, ethnicity, city = PATIENTS[i]
    pid = uid("patient", i)
    resources = [
        patient(
            pid,
            race=("2106-3", race),
            ethnicity=("2186-5", ethnicity),
            given=f"{given}{200 + i}",
            family=f"{family}{100 + i}",
            gender=gender,
            birth_date=birth,
            home=address(city, f"0{1100 + i * 7}"),
            deceased="2021-02-01T10:00:00-05:00" if i == 1 else None,
        )
    ]
    for k in range(3):
        resources += encounter_resources(i, k, pid, birth)
    encounter_ids = [uid("encounter", i, k) for k in range(3)]
    for n, (code, display, onset_k, abate_k) in enumerate(CONDITIONS):
        if n == 2 and i % 2:
            continue
        onset = f"20{18 + onset_k}-01-0{1 + n}T09:00:00-04:00"
        resources.append(
            condition(
                uid("condition", i, n),
                pid,
                encounter_ids[onset_k],
                clinical=hl7("condition-clinical", "resolved" if abate_k else "active"),
                code=cc(SNOMED, code, display),
                onset=onset,
                recorded=onset,
                abatement=f"20{18 + abate_k}-12-01T09:00:00-04:00" if abate_k is not None else None,
            )
        )
    for n, (code, display, status) in enumerate(MEDS):
        resources.append(
            medication_request(
                uid("med", i, n),
                pid,
                encounter_ids[n],
                status=status,
                intent="order",
                code=cc(RXNORM, code, display),
                authored=f"20{18 + n}-04-01T10:00:00-04:00",
                dosage={"sequence": 1, "text": "Take one daily"},
            )
        )
    last = encounter_ids[2]
    if i in (0, 3):  # ECG with linked observations
        hr_id, rhythm_id = uid("ecg-hr", i), uid("ecg-rhythm", i)
        resources += [
            observation(
                hr_id,
                pid,
                last,
                status="final",
                code=cc(LOINC, "8867-4", "Heart rate"),
                value=quantity(71.0, "/min"),
            ),
            observation(
                rhythm_id,
                pid,
                last,
                status="final",
                code=cc(LOINC, "8893-1", "Heart rate rhythm"),
                value_concept=cc(SNOMED, "251150006", "Normal sinus rhythm"),
            ),
            ecg_report(
                uid("ecg", i),
                pid,
                last,
                status="final",
                category=hl7("v2-0074", "EC", "Electrocardiac"),
                code=cc(LOINC, "11524-6", "EKG study"),
                when="2020-05-12T10:20:00-04:00",
                conclusion="Normal sinus rhythm, no acute changes.",
                results=[hr_id, rhythm_id],
            ),
        ]
    if i in (1, 4):  # genomic report
        resources.append(
            genomic_report(
                uid("genomic", i),
                pid,
                last,
                status="final",
                code=cc(LOINC, "55232-3", "Genetic analysis summary panel"),
                when="2020-06-01T11:00:00-04:00",
                conclusion="No pathogenic variants detected. Family history of hypertension noted."
                if i == 1
                else "Likely pathogenic variant identified in BRCA1.",
                form=attachment(url=f"genomics/sample_{i}_dna.csv", content_type="text/csv"),
            )
        )
    if i in (2, 5):  # imaging study; its series' keys in this sample's own order
        chest = {
            "uid": f"1.2.840.99999999.1.{4000 + i}",
            "number": 1,
            "modality": coding("DX", system=DICOM_DCM),
            "bodySite": coding("51185008", "Chest", SNOMED),
            "numberOfInstances": 2,
        }
        resources.append(
            imaging_study(
                uid("imaging", i),
                pid,
                last,
                identifier=study_identifier(f"1.2.840.99999999.{4000 + i}.{1600000000 + i}"),
                status="available",
                started="2020-05-12T10:40:00-04:00",
                n_series=1,
                n_instances=2,
                series=[chest],
            )
        )
    name = f"{given}{200 + i}_{family}{100 + i}_{pid}.json"
    return name, bundle(resources)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.json"):
        old.unlink()
    for i in range(len(PATIENTS)):
        name, doc = bundle_for(i)
        (OUT / name).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(PATIENTS)} bundles to {OUT}")


if __name__ == "__main__":
    main()
