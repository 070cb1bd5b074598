"""A deterministic generator of Synthea-Coherent-like FHIR R4 transaction bundles.

    fhirhouse synth --patients N --seed S --out DIR

One bundle per patient, ``<Given><n>_<Family><n>_<uuid>.json`` in ``DIR``, plus header-only
DICOM files in ``DIR/dicom/`` for some imaging studies (Coherent naming:
``<Given><n>_<Family><n>_<patientUUID><StudyInstanceUID>.dcm``). Every reference in a bundle
resolves inside it (``urn:uuid:``). Patient *i* depends only on (seed, i), so corpora of
different sizes share their first patients, and regenerating gives identical bytes.

Proportions default to Coherent's per-patient averages (144k encounters, 670k observations,
209k medication requests, 56k procedures, 16k conditions, one note per encounter, about 3.6 MB
per bundle over 1,278 patients). Unlike Coherent, some encounters carry ECG reports.
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson

from fhirhouse.synth.builders import (
    CPT,
    DICOM_DCM,
    LOINC,
    RFC3986,
    RXNORM,
    SNOMED,
    TERMINOLOGY,
    address,
    attachment,
    bundle,
    care_plan,
    cc,
    claim,
    claim_item,
    clinical_note,
    coding,
    component,
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
    quantity,
    ref,
    study_identifier,
)


@dataclass(frozen=True)
class SynthProfile:
    """Per-patient averages and shares. The defaults follow Synthea Coherent."""

    encounters: float = 112.6
    conditions: float = 12.5
    medication_requests: float = 163.8
    procedures: float = 43.9
    vitals_share: float = 0.14  # encounters with a vital-signs panel
    labs_share: float = 0.18  # encounters with a lab panel
    other_observations: float = 3.2  # survey / social-history observations per encounter
    imaging_studies: float = 2.9
    dicom_share: float = 0.08  # imaging studies with a DICOM file
    genomic_reports: float = 0.33
    ecg_share: float = 0.02  # encounters with an ECG report (Coherent has none)
    binary_note_share: float = 0.05  # notes stored as Binary + attachment.url
    claim_items: int = 19  # line items per Claim / ExplanationOfBenefit: ~3.4 MiB bundles
    immunizations: float = 14.0
    careplans: float = 3.0


SYNTH_FIELDS: tuple[str, ...] = tuple(SynthProfile.__dataclass_fields__)

GIVEN = [
    "Ada",
    "Bo",
    "Cleo",
    "Dario",
    "Esme",
    "Faisal",
    "Greta",
    "Hiro",
    "Ines",
    "Jonah",
    "Kaia",
    "Luis",
    "Mara",
    "Nils",
    "Oona",
    "Pavel",
    "Quinn",
    "Rosa",
    "Sami",
    "Tess",
]
FAMILY = [
    "Lovelace",
    "Nakamura",
    "Okafor",
    "Reyes",
    "Varga",
    "Haddad",
    "Berg",
    "Ito",
    "Costa",
    "Weiss",
    "Moreau",
    "Singh",
    "Kowalski",
    "Novak",
    "Silva",
    "Dubois",
]
CITIES = ["Boston", "Worcester", "Springfield", "Lowell", "Cambridge", "Quincy", "Lynn"]
RACES = [
    ("2106-3", "White", 0.7),
    ("2054-5", "Black or African American", 0.12),
    ("2028-9", "Asian", 0.1),
    ("2131-1", "Other", 0.08),
]
ENCOUNTERS = [  # (code, display, class, reason?)
    ("162673000", "General examination of patient (procedure)", "AMB"),
    ("410620009", "Well child visit (procedure)", "AMB"),
    ("185349003", "Encounter for check up (procedure)", "AMB"),
    ("185345009", "Encounter for symptom", "AMB"),
    ("390906007", "Follow-up encounter", "AMB"),
    ("50849002", "Emergency room admission (procedure)", "EMER"),
    ("183452005", "Emergency hospital admission (procedure)", "IMP"),
    ("371883000", "Outpatient procedure", "AMB"),
]
CONDITIONS = [  # (code, display, chronic)
    ("59621000", "Essential hypertension (disorder)", True),
    ("15777000", "Prediabetes", True),
    ("44054006", "Diabetes mellitus type 2 (disorder)", True),
    ("55822004", "Hyperlipidemia", True),
    ("162864005", "Body mass index 30+ - obesity (finding)", True),
    ("444814009", "Viral sinusitis (disorder)", False),
    ("195662009", "Acute viral pharyngitis (disorder)", False),
    ("10509002", "Acute bronchitis (disorder)", False),
    ("160903007", "Full-time employment (finding)", True),
    ("73595000", "Stress (finding)", False),
    ("271737000", "Anemia (disorder)", True),
    ("239873007", "Osteoarthritis of knee", True),
]
MEDS = [
    ("314076", "lisinopril 10 MG Oral Tablet"),
    ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ("308182", "Amoxicillin 250 MG Oral Capsule"),
    ("313782", "Acetaminophen 325 MG Oral Tablet"),
    ("849574", "Naproxen sodium 220 MG Oral Tablet"),
    ("314231", "Simvastatin 10 MG Oral Tablet"),
    ("310965", "Ibuprofen 200 MG Oral Tablet"),
]
PROCEDURES = [
    ("430193006", "Medication Reconciliation (procedure)"),
    ("710824005", "Assessment of health and social care needs (procedure)"),
    ("428191000124101", "Documentation of current medications (procedure)"),
    ("171207006", "Depression screening (procedure)"),
    ("5880005", "Blood pressure taking (procedure)"),
]
LABS = [
    ("2339-0", "Glucose", "mg/dL", 70, 140),
    ("38483-4", "Creatinine", "mg/dL", 0.6, 1.3),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 150, 260),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4.5, 8.0),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 11, 17),
]
BODY_SITES = [
    ("51185008", "Chest", "DX"),
    ("12738006", "Brain structure", "MR"),
    ("8205005", "Wrist", "DX"),
    ("72696002", "Knee", "DX"),
]
VACCINES = [("140", "Influenza, seasonal, injectable, preservative free"), ("113", "Td (adult)")]
NOTE = """{date}

# Chief Complaint
{complaint}

# History of Present Illness
{given}
 is a {age} year-old {race} {gender}.

# Social History
{social}

# Allergies
No Known Allergies.

# Medications
{meds}

# Assessment and Plan
{assessment}

## Plan
{plan}
"""


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S-05:00")


def _count(rng: random.Random, mean: float) -> int:
    """A non-negative integer with the given mean (Poisson-like, cheap)."""
    whole = int(mean)
    return whole + (1 if rng.random() < mean - whole else 0)


class _Patient:
    def __init__(self, seed: int, index: int, profile: SynthProfile, today: dt.date) -> None:
        self.rng = random.Random(seed * 1_000_003 + index)
        self.p = profile
        self.index = index
        self.today = today
        self.resources: list[dict[str, Any]] = []
        self.dicom: list[tuple[str, bytes]] = []

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add(self, *resources: dict[str, Any]) -> str:
        """Add resources to the bundle; return the last one's id."""
        self.resources += resources
        return resources[-1]["id"]

    # ---------------------------------------------------------------------------- build

    def build(self) -> tuple[str, dict[str, Any], list[tuple[str, bytes]]]:
        rng, p = self.rng, self.p
        self.pid = self.uid()
        self.given = f"{rng.choice(GIVEN)}{rng.randint(100, 999)}"
        self.family = f"{rng.choice(FAMILY)}{rng.randint(100, 999)}"
        age_years = rng.randint(1, 90)
        self.birth = self.today - dt.timedelta(days=age_years * 365 + rng.randint(0, 364))
        self.gender = rng.choice(["male", "female"])
        race = rng.choices(RACES, weights=[r[2] for r in RACES])[0]
        self.race = race[1]
        deceased = rng.random() < 0.08
        self.end = self.today - dt.timedelta(days=rng.randint(30, 3000)) if deceased else self.today
        self.org, self.prac = self.uid(), self.uid()
        provider = cc(f"{TERMINOLOGY}/organization-type", "prov", "Healthcare Provider")
        npi = str(9999900000 + self.index)
        self.add(
            organization(self.org, name="SYNTHETIC HEALTH CENTER", kind=provider),
            practitioner(self.prac, given="Sam", family="Clinician", npi=npi),
            patient(
                self.pid,
                race=race[:2],
                ethnicity=("2186-5", "Not Hispanic or Latino"),
                synthea_id=True,
                given=self.given,
                family=self.family,
                gender=self.gender,
                birth_date=self.birth.isoformat(),
                home=address(rng.choice(CITIES), f"0{rng.randint(1000, 2799)}"),
                deceased=_iso(dt.datetime.combine(self.end, dt.time(3, 0))) if deceased else None,
            ),
        )
        n_enc = max(1, _count(rng, p.encounters))
        span = max((self.end - self.birth).days, 1)
        starts = sorted(
            dt.datetime.combine(self.birth, dt.time(0))
            + dt.timedelta(minutes=rng.randint(0, span * 1440))
            for _ in range(n_enc)
        )
        self.encounters = [self.encounter(t) for t in starts]
        for mean, make in (
            (p.conditions, self.condition),
            (p.medication_requests, self.medication),
            (p.procedures, self.procedure),
            (p.imaging_studies, self.imaging),
            (p.genomic_reports, self.genomic),
            (p.immunizations, self.immunization),
            (p.careplans, self.careplan),
        ):
            for _ in range(_count(rng, mean)):
                make()
        self.add(
            provenance(
                self.uid(),
                targets=[r["id"] for r in self.resources[:3]],
                recorded=_iso(dt.datetime.combine(self.end, dt.time(12))),
                who=self.prac,
                on_behalf_of=self.org,
            )
        )
        name = f"{self.given}_{self.family}_{self.pid}.json"
        return name, bundle(self.resources), self.dicom

    # ------------------------------------------------------------------------ resources

    def encounter(self, start: dt.datetime) -> tuple[str, dt.datetime]:
        rng, p = self.rng, self.p
        code, display, klass = rng.choice(ENCOUNTERS)
        end = start + dt.timedelta(minutes=rng.choice([15, 30, 45, 60, 240]))
        eid = self.uid()
        span = period(_iso(start), _iso(end))
        performer = cc(f"{TERMINOLOGY}/v3-ParticipationType", "PPRF", "primary performer")
        reason = None
        if rng.random() < 0.3:
            c = rng.choice(CONDITIONS)
            reason = cc(SNOMED, c[0], c[1])
        self.add(
            encounter(
                eid,
                self.pid,
                start=span["start"],
                end=span["end"],
                status="finished",
                klass=coding(klass, system=f"{TERMINOLOGY}/v3-ActCode"),
                kind=cc(SNOMED, code, display),
                participant=[{"type": [performer], "period": span, "individual": ref(self.prac)}],
                provider=self.org,
                reason=reason,
            )
        )
        when = _iso(start + dt.timedelta(minutes=5))
        if rng.random() < p.vitals_share:
            self.vitals(eid, when)
        if rng.random() < p.labs_share:
            for lab in rng.sample(LABS, rng.randint(2, len(LABS))):
                value = round(rng.uniform(lab[3], lab[4]), 1)
                self.observation(eid, when, lab[0], lab[1], "laboratory", value, lab[2])
        for _ in range(_count(rng, p.other_observations)):
            never = cc(SNOMED, "266919005", "Never smoker")
            self.observation(
                eid,
                when,
                "72166-2",
                "Tobacco smoking status",
                "social-history",
                value_concept=never,
            )
        if rng.random() < p.ecg_share:
            self.ecg(eid, when)
        self.note(eid, start, end, display)
        self.claim(eid, start, end, display)
        return eid, start

    def observation(self, eid: str, *args: Any, **fields: Any) -> str:
        """Add a ``loinc_observation`` in encounter ``eid`` (``args``: when, code, display,
        category, value, unit); return its id."""
        return self.add(loinc_observation(self.uid(), self.pid, eid, *args, **fields))

    def vitals(self, eid: str, when: str) -> None:
        rng = self.rng
        self.observation(
            eid, when, "8867-4", "Heart rate", "vital-signs", rng.randint(55, 110), "/min"
        )
        temperature = round(rng.uniform(36.2, 38.4), 1)
        self.observation(eid, when, "8310-5", "Body temperature", "vital-signs", temperature, "Cel")
        spo2 = rng.randint(92, 100)
        self.observation(
            eid, when, "2708-6", "Oxygen saturation in Arterial blood", "vital-signs", spo2, "%"
        )
        diastolic = quantity(rng.randint(60, 95), "mm[Hg]")
        systolic = quantity(rng.randint(100, 165), "mm[Hg]")
        self.observation(
            eid,
            when,
            "85354-9",
            "Blood pressure panel with all children optional",
            "vital-signs",
            components=[
                component(cc(LOINC, "8462-4", "Diastolic Blood Pressure"), diastolic),
                component(cc(LOINC, "8480-6", "Systolic Blood Pressure"), systolic),
            ],
        )

    def ecg(self, eid: str, when: str) -> None:
        rng = self.rng
        results = [
            self.observation(eid, when, code, display, "procedure", rng.randint(low, high), unit)
            for code, display, low, high, unit in (
                ("8867-4", "Heart rate", 50, 120, "/min"),
                ("8625-6", "P-R Interval", 120, 200, "ms"),
                ("8625-2", "QRS duration", 70, 110, "ms"),
            )
        ]
        rhythm = cc(SNOMED, "251150006", "Normal sinus rhythm")
        results.append(
            self.observation(
                eid, when, "8893-1", "Heart rate rhythm", "procedure", value_concept=rhythm
            )
        )
        self.add(
            ecg_report(
                self.uid(),
                self.pid,
                eid,
                status="final",
                category=hl7("v2-0074", "EC", "Electrocardiac"),
                code=cc(LOINC, "11524-6", "EKG study"),
                when=when,
                issued=when,
                conclusion=rng.choice(
                    [
                        "Normal sinus rhythm, no acute changes.",
                        "Sinus rhythm with borderline first degree AV block.",
                    ]
                ),
                results=results,
            )
        )

    def note(self, eid: str, start: dt.datetime, end: dt.datetime, reason: str) -> None:
        rng, p = self.rng, self.p
        age = (
            start.year
            - self.birth.year
            - ((start.month, start.day) < (self.birth.month, self.birth.day))
        )
        text = NOTE.format(
            date=start.date().isoformat(),
            complaint=rng.choice(
                ["No complaints.", "Cough and congestion.", "Knee pain.", "Fatigue."]
            ),
            given=self.given,
            age=max(age, 0),
            race=self.race.lower(),
            gender=self.gender,
            social=rng.choice(
                ["Patient has never smoked.", "Patient is an active smoker.", "Patient is married."]
            ),
            meds=rng.choice([m[1] for m in MEDS] + ["No Active Medications."]),
            assessment=f"Patient is presenting with {reason.lower()}.",
            plan="Patient was given the following immunizations: influenza, seasonal, "
            "injectable, preservative free.",
        )
        did = self.uid()
        self.add(
            *clinical_note(
                did,
                text,
                binary_id=self.uid() if rng.random() < p.binary_note_share else None,
                subject=self.pid,
                encounter=eid,
                status="superseded",
                kind=concept("34117-2", "History and physical note", system=LOINC),
                category=concept(
                    "clinical-note",
                    "Clinical Note",
                    system="http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                ),
                date=_iso(end),
                author=self.prac,
                custodian=self.org,
                context_period=period(_iso(start), _iso(end)),
            )
        )

    def claim(self, eid: str, start: dt.datetime, end: dt.datetime, display: str) -> None:
        rng, p = self.rng, self.p
        coinsurance = cc(
            "https://bluebutton.cms.gov/resources/codesystem/adjudication",
            "https://bluebutton.cms.gov/resources/variables/line_coinsrnc_amt",
            "Line Beneficiary Coinsurance Amount",
        )
        items = [
            claim_item(
                k + 1,
                cc(CPT, str(99200 + k), f"{display} item {k + 1}"),
                eid,
                serviced=period(_iso(start), _iso(end)),
                net=money(round(rng.uniform(20, 400), 2)),
                adjudication=[
                    {"category": coinsurance, "amount": money(round(rng.uniform(1, 80), 2))}
                ],
            )
            for k in range(p.claim_items)
        ]
        total = money(round(sum(it["net"]["value"] for it in items), 2))
        billed = {
            "status": "active",
            "kind": cc(f"{TERMINOLOGY}/claim-type", "institutional", "Institutional"),
            "use": "claim",
            "billable": period(_iso(start), _iso(end)),
            "created": _iso(end),
        }
        cid = self.add(
            claim(
                self.uid(),
                self.pid,
                **billed,
                provider=self.org,
                priority=cc(f"{TERMINOLOGY}/processpriority", "normal", "Normal"),
                insurance=[{"sequence": 1, "focal": True, "coverage": {"display": "Medicaid"}}],
                items=[{k: v for k, v in it.items() if k != "adjudication"} for it in items],
                total=total,
            )
        )
        submitted = cc(f"{TERMINOLOGY}/adjudication", "submitted", "Submitted Amount")
        primary = cc(f"{TERMINOLOGY}/claimcareteamrole", "primary", "Primary Care Practitioner")
        self.add(
            explanation_of_benefit(
                self.uid(),
                self.pid,
                **billed,
                insurer="Medicaid",
                provider=self.org,
                claim=cid,
                care_team=[{"sequence": 1, "provider": ref(self.prac), "role": primary}],
                items=items,
                total=[{"category": submitted, "amount": total}],
                payment={"amount": money(round(rng.uniform(10, 500), 2))},
            )
        )

    def _pick_encounter(self) -> tuple[str, dt.datetime]:
        return self.rng.choice(self.encounters)

    def condition(self) -> None:
        rng = self.rng
        code, display, chronic = rng.choice(CONDITIONS)
        eid, start = self._pick_encounter()
        cid = self.uid()
        resolved = not chronic or rng.random() < 0.1
        self.add(
            condition(
                cid,
                self.pid,
                eid,
                clinical=hl7("condition-clinical", "resolved" if resolved else "active"),
                verification=hl7("condition-ver-status", "confirmed"),
                category=hl7("condition-category", "encounter-diagnosis"),
                code=cc(SNOMED, code, display),
                onset=_iso(start),
                recorded=_iso(start),
                abatement=_iso(start + dt.timedelta(days=rng.randint(7, 400)))
                if resolved
                else None,
            )
        )

    def medication(self) -> None:
        rng = self.rng
        code, display = rng.choice(MEDS)
        eid, start = self._pick_encounter()
        self.add(
            medication_request(
                self.uid(),
                self.pid,
                eid,
                status="active" if rng.random() < 0.25 else "stopped",
                intent="order",
                code=cc(RXNORM, code, display),
                authored=_iso(start),
                requester=self.prac,
                dosage={"sequence": 1, "text": "Take as directed", "asNeededBoolean": False},
            )
        )

    def procedure(self) -> None:
        code, display = self.rng.choice(PROCEDURES)
        eid, start = self._pick_encounter()
        self.add(
            procedure(
                self.uid(),
                self.pid,
                eid,
                status="completed",
                code=cc(SNOMED, code, display),
                performed=period(_iso(start), _iso(start + dt.timedelta(minutes=15))),
                location=self.org,
            )
        )

    def imaging(self) -> None:
        rng = self.rng
        code, display, modality = rng.choice(BODY_SITES)
        eid, start = self._pick_encounter()
        study_uid = (
            f"1.2.840.99999999.{rng.randint(10**7, 10**8 - 1)}.{rng.randint(10**12, 10**13 - 1)}"
        )
        instance = {
            "uid": f"{study_uid}.1.1",
            "sopClass": coding("urn:oid:1.2.840.10008.5.1.4.1.1.1.1", system=RFC3986),
            "number": 1,
        }
        self.add(
            imaging_study(
                self.uid(),
                self.pid,
                eid,
                identifier=study_identifier(study_uid),
                status="available",
                started=_iso(start),
                n_series=1,
                n_instances=1,
                procedure=cc(SNOMED, "363680008", f"{display} imaging"),
                series=[
                    imaging_series(
                        coding(modality, system=DICOM_DCM),
                        coding(code, display, SNOMED),
                        uid=f"{study_uid}.1",
                        number=1,
                        instances=1,
                        instance=[instance],
                    )
                ],
            )
        )
        if rng.random() < self.p.dicom_share:
            name = f"{self.given}_{self.family}_{self.pid}{study_uid}.dcm"
            # Coherent's headers are placeholders; half of ours describe the study, so the
            # DICOM enrichment and Gold's imaging.study_description get exercised too.
            described = f"{display} {modality}" if rng.random() < 0.5 else None
            self.dicom.append((name, dicom_header(study_uid, start.date(), modality, described)))

    def genomic(self) -> None:
        rng = self.rng
        eid, start = self._pick_encounter()
        self.add(
            genomic_report(
                self.uid(),
                self.pid,
                eid,
                status="final",
                code=cc(LOINC, "55232-3", "Genetic analysis summary panel"),
                when=_iso(start),
                issued=_iso(start),
                conclusion=rng.choice(
                    [
                        None,
                        "No pathogenic variants detected.",
                        "Family history of hypertension noted.",
                    ]
                ),
                form=attachment(url=f"genomics/{self.pid}_dna.csv", content_type="text/csv"),
            )
        )

    def immunization(self) -> None:
        code, display = self.rng.choice(VACCINES)
        eid, start = self._pick_encounter()
        vaccine = cc("http://hl7.org/fhir/sid/cvx", code, display)
        self.add(immunization(self.uid(), self.pid, eid, code=vaccine, when=_iso(start)))

    def careplan(self) -> None:
        eid, start = self._pick_encounter()
        self.add(
            care_plan(
                self.uid(),
                self.pid,
                eid,
                category=cc(SNOMED, "734163000", "Care plan"),
                start=_iso(start),
                activity=cc(SNOMED, "229065009", "Exercise therapy"),
            )
        )


def dicom_header(
    study_uid: str, study_date: dt.date, modality: str, description: str | None = None
) -> bytes:
    """A small header-only DICOM file (no pixel data). Without ``description`` the
    descriptive tags are Coherent's placeholders."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = f"{study_uid}.1.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("synthetic.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = f"{study_uid}.1"
    ds.SOPInstanceUID = f"{study_uid}.1.1"
    ds.Modality = modality
    ds.StudyDescription = description or "UNKNOWN"
    ds.SeriesDescription = f"{description} series 1" if description else "UNKNOWN"
    ds.Manufacturer = "Synthetic Imaging Systems" if description else "ANONYMIZED"
    ds.StudyDate = study_date.strftime("%Y%m%d")
    ds.SliceThickness = "1.0"
    ds.MagneticFieldStrength = "1.5" if modality == "MR" else ""
    ds.Rows = 256
    ds.Columns = 256
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def generate(
    patients: int,
    seed: int = 42,
    profile: SynthProfile | None = None,
    today: dt.date = dt.date(2024, 1, 1),
) -> Iterator[tuple[str, bytes, list[tuple[str, bytes]]]]:
    """Yield (file name, bundle JSON bytes, DICOM files) for patients 0 .. ``patients``-1."""
    profile = profile or SynthProfile()
    for i in range(patients):
        name, bundle, dicom = _Patient(seed, i, profile, today).build()
        yield name, orjson.dumps(bundle), dicom


def write_corpus(
    out: str | Path,
    patients: int,
    seed: int = 42,
    profile: SynthProfile | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Write a corpus to ``out`` (bundles) and ``out/dicom`` (DICOM); return a summary.

    Files are written under a temporary name and renamed. Existing files with the same name
    and bytes are left untouched, so regenerating keeps modification times.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    total_bytes = n_dicom = 0
    for i, (name, data, dicom) in enumerate(generate(patients, seed, profile), 1):
        _write_if_changed(out / name, data)
        total_bytes += len(data)
        for dname, dbytes in dicom:
            _write_if_changed(out / "dicom" / dname, dbytes)
            n_dicom += 1
        if progress and (i % 10 == 0 or i == patients):
            rate = total_bytes / 2**20 / max(time.monotonic() - started, 1e-9)
            bar = "#" * int(30 * i / patients)
            print(
                f"\rsynth [{bar:<30}] {i}/{patients} patients, {total_bytes / 2**20:,.0f} MiB "
                f"({rate:,.0f} MiB/s)",
                end="" if i < patients else "\n",
                file=sys.stderr,
                flush=True,
            )
    return {
        "patients": patients,
        "seed": seed,
        "bundle_bytes": total_bytes,
        "dicom_files": n_dicom,
        "profile": asdict(profile or SynthProfile()),
        "seconds": round(time.monotonic() - started, 2),
    }


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
