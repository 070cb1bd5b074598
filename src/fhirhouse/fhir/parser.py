"""Bundle -> flat records for the ten Silver tables. Pure: no file I/O.

Every field is read with a default from plain dicts (no FHIR model classes). DICOM bytes come in
through a resolver callback. Problems that drop a resource (an undecodable note, an unreadable
DICOM header) are reported as :class:`ParseIssue` values that carry no identifiers.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhirhouse import SILVER_TABLES
from fhirhouse.fhir import dicom as dicom_mod
from fhirhouse.fhir.notes import NoteDecodeError, decode_note, section_flags

log = logging.getLogger(__name__)

DicomResolver = Callable[[str], "bytes | None"]
Record = dict[str, Any]

GENOMIC_KEYWORDS = ("genetic", "genomic", "gene panel", "dna", "sequencing", "variant")
ECG_KEYWORDS = ("ecg", "ekg", "electrocardiogram", "electrocardiographic")
PATHOGENIC_NEGATIONS = (
    "no pathogenic",
    "non-pathogenic",
    "nonpathogenic",
    "negative for pathogenic",
    "without pathogenic",
    "no clinically significant",
)
DATA_LIMITATION = "Synthea simulated inheritance — not clinical variants"
ECG_LOINC = {
    "8893-1": "rhythm",
    "8867-4": "heart_rate_bpm",
    "8625-6": "pr_interval_ms",
    "8625-2": "qrs_duration_ms",
}


_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{0,39}$")


class RejectedBundleError(ValueError):
    """The whole file is quarantined; the message is the reason and carries no identifiers."""


class NotABundleError(RejectedBundleError):
    """The document is not a FHIR Bundle object."""


@dataclass
class ParseIssue:
    """Something dropped while parsing; identifier-free by construction."""

    resource_type: str
    reason: str


@dataclass
class ParseResult:
    records: dict[str, list[Record]] = field(
        default_factory=lambda: {name: [] for name in SILVER_TABLES}
    )
    issues: list[ParseIssue] = field(default_factory=list)


def strip_ref(ref: Any) -> str:
    """``urn:uuid:X``, ``Type/X`` and ``X`` all become ``X``; empty or missing becomes ``""``."""
    if not ref or not isinstance(ref, str):
        return ""
    if "/" in ref:
        return ref.rsplit("/", 1)[1]
    if ":" in ref:
        return ref.rsplit(":", 1)[1]
    return ref


def _ref(obj: Any) -> str:
    return strip_ref(obj.get("reference")) if isinstance(obj, dict) else ""


def _first(value: Any) -> Any:
    if isinstance(value, list) and value:
        return value[0]
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def codeable(cc: Any) -> tuple[str, str]:
    """(code, display) from ``coding[0]``; display falls back to ``text``; ``""`` if missing."""
    cc = _dict(cc)
    coding = _dict(_first(cc.get("coding")))
    display = coding.get("display") or cc.get("text")
    return _str(coding.get("code")), _str(display)


def _concept_text(cc: Any) -> str | None:
    """The display (or text) of a CodeableConcept, ``None`` when it has neither."""
    cc = _dict(cc)
    coding = _dict(_first(cc.get("coding")))
    return coding.get("display") or cc.get("text") or None


def _valid_id(value: Any) -> bool:
    """A usable resource id: a non-empty string (or an integer, read as its digits)."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, str) and value.strip() != "") or isinstance(value, int)


class BundleIndex:
    """Resources of one bundle by type and by id (``resource.id`` and stripped ``fullUrl``).

    Entries that are not objects, or whose resource has no ``resourceType``, are skipped and
    counted in ``skipped``.
    """

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.by_type: dict[str, list[dict[str, Any]]] = {}
        self.by_id: dict[str, dict[str, Any]] = {}
        self.skipped: list[ParseIssue] = []
        # entry index (0-based, in Bundle.entry) of each resource of by_type, position by position
        self.positions: dict[str, list[int]] = {}
        entries = bundle.get("entry")
        if entries is None:
            entries = []
        if not isinstance(entries, list):
            raise RejectedBundleError(f"Bundle.entry is {type(entries).__name__}, not a list")
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict):
                self.skipped.append(ParseIssue("?", "entry_not_an_object"))
                continue
            res = entry.get("resource")
            if not isinstance(res, dict):
                self.skipped.append(ParseIssue("?", "entry_without_resource"))
                continue
            rtype = res.get("resourceType")
            if not rtype or not isinstance(rtype, str):
                self.skipped.append(ParseIssue("?", "entry_without_resourceType"))
                continue
            self.by_type.setdefault(rtype, []).append(res)
            self.positions.setdefault(rtype, []).append(position)
            rid = res.get("id")
            if rid:
                self.by_id[str(rid)] = res
            full = strip_ref(entry.get("fullUrl"))
            if full:
                self.by_id[full] = res

    def of(self, rtype: str) -> list[dict[str, Any]]:
        return self.by_type.get(rtype, [])

    def located(self, rtype: str) -> list[tuple[int, dict[str, Any]]]:
        """``(entry index, resource)`` for each resource of ``rtype``, in bundle order."""
        return list(zip(self.positions.get(rtype, []), self.of(rtype), strict=True))


# ---------------------------------------------------------------------------------- patient


def _us_core_ext(patient: dict[str, Any], suffix: str) -> str | None:
    for ext in patient.get("extension") or []:
        if not isinstance(ext, dict) or not str(ext.get("url", "")).endswith(suffix):
            continue
        subs = [s for s in ext.get("extension") or [] if isinstance(s, dict)]
        for sub in subs:
            if sub.get("url") == "text" and sub.get("valueString"):
                return sub["valueString"]
        for sub in subs:
            if sub.get("url") == "ombCategory":
                display = _dict(sub.get("valueCoding")).get("display")
                if display:
                    return display
        return None
    return None


def parse_patient(r: dict[str, Any]) -> Record:
    address = _dict(_first(r.get("address")))
    deceased_dt = r.get("deceasedDateTime")
    return {
        "patient_id": _str(r.get("id")),
        "birth_date": r.get("birthDate"),
        "gender": r.get("gender"),
        "race": _us_core_ext(r, "us-core-race"),
        "ethnicity": _us_core_ext(r, "us-core-ethnicity"),
        "state": address.get("state"),
        "city": address.get("city"),
        "zip": address.get("postalCode"),
        "deceased": bool(r.get("deceasedBoolean")) or deceased_dt is not None,
        "deceased_date": deceased_dt,
    }


def parse_encounter(r: dict[str, Any]) -> Record:
    type_code, type_display = codeable(_first(r.get("type")))
    reason_code, reason_display = codeable(_first(r.get("reasonCode")))
    provider = ""
    for part in r.get("participant") or []:
        ref = _ref(_dict(part).get("individual"))
        if ref:
            provider = ref
            break
    period = _dict(r.get("period"))
    return {
        "encounter_id": _str(r.get("id")),
        "patient_id": _ref(r.get("subject")),
        "type_code": type_code,
        "type_display": type_display,
        "class_code": _str(_dict(r.get("class")).get("code")),
        "start_date": period.get("start"),
        "end_date": period.get("end"),
        "status": r.get("status"),
        "provider_id": provider,
        "reason_code": reason_code,
        "reason_display": reason_display,
    }


def _clinical(r: dict[str, Any], id_column: str, concept: str = "code") -> Record:
    """The columns every clinical record starts with: id, patient, encounter, code, display."""
    code, display = codeable(r.get(concept))
    return {
        id_column: _str(r.get("id")),
        "patient_id": _ref(r.get("subject")),
        "encounter_id": _ref(r.get("encounter")),
        "code": code,
        "display": display,
    }


def parse_condition(r: dict[str, Any]) -> Record:
    status = _dict(_first(_dict(r.get("clinicalStatus")).get("coding"))).get("code")
    return {
        **_clinical(r, "condition_id"),
        "clinical_status": _str(status),
        "onset_date": r.get("onsetDateTime"),
        "abatement_date": r.get("abatementDateTime"),
        "recorded_date": r.get("recordedDate"),
    }


def parse_observation(r: dict[str, Any]) -> Record:
    category = _dict(_first(_dict(_first(r.get("category"))).get("coding"))).get("code")
    quantity = _dict(r.get("valueQuantity"))
    value_string = r.get("valueString")
    if value_string is None and "valueCodeableConcept" in r:
        value_string = _concept_text(r.get("valueCodeableConcept"))
    components = []
    for comp in r.get("component") or []:
        comp = _dict(comp)
        c_code, c_display = codeable(comp.get("code"))
        c_qty = _dict(comp.get("valueQuantity"))
        components.append(
            {
                "code": c_code,
                "display": c_display,
                "value": c_qty.get("value"),
                "unit": c_qty.get("unit"),
            }
        )
    return {
        **_clinical(r, "observation_id"),
        "category": _str(category),
        "value": quantity.get("value"),
        "unit": quantity.get("unit"),
        "value_string": value_string,
        "components_json": json.dumps(components) if components else None,
        "effective_date": r.get("effectiveDateTime"),
    }


def parse_medication_request(r: dict[str, Any]) -> Record:
    return {
        **_clinical(r, "medication_request_id", concept="medicationCodeableConcept"),
        "status": r.get("status"),
        "intent": r.get("intent"),
        "authored_on": r.get("authoredOn"),
        "dosage_text": _dict(_first(r.get("dosageInstruction"))).get("text"),
    }


def parse_procedure(r: dict[str, Any]) -> Record:
    period = _dict(r.get("performedPeriod"))
    return {
        **_clinical(r, "procedure_id"),
        "status": r.get("status"),
        "performed_start": period.get("start"),
        "performed_end": period.get("end"),
    }


def parse_document_reference(r: dict[str, Any], index: BundleIndex) -> Record | None:
    """A SOAP note row, or ``None`` when the attachment carries no data.

    Raises :class:`NoteDecodeError` when the data does not decode.
    """
    attachment = _dict(_dict(_first(r.get("content"))).get("attachment"))
    binary_id = ""
    data = attachment.get("data")
    if not data and attachment.get("url"):
        binary_id = strip_ref(attachment["url"])
        data = _dict(index.by_id.get(binary_id)).get("data")
        if not data:
            return None
    if not data:
        return None
    text = decode_note(data)
    context = _dict(r.get("context"))
    return {
        "note_id": _str(r.get("id")),
        "patient_id": _ref(r.get("subject")),
        "encounter_id": _ref(_first(context.get("encounter"))),
        "note_date": r.get("date"),
        "note_text": text,
        **section_flags(text),
        "char_count": len(text),
        "word_count": len(text.split()),
        "binary_id": binary_id,
    }


def _report_text(r: dict[str, Any]) -> str:
    parts = [codeable(r.get("code"))[1]]
    for cat in r.get("category") or []:
        for coding in _dict(cat).get("coding") or []:
            parts.append(_str(_dict(coding).get("display")))
    return " ".join(parts).lower()


def classify_report(r: dict[str, Any]) -> str | None:
    """``"genomic"``, ``"ecg"`` or ``None``; the genomic test runs first."""
    text = _report_text(r)
    if any(k in text for k in GENOMIC_KEYWORDS):
        return "genomic"
    if any(k in text for k in ECG_KEYWORDS):
        return "ecg"
    return None


def _report(r: dict[str, Any], id_column: str) -> Record:
    """The columns both DiagnosticReport tables start with."""
    return {
        id_column: _str(r.get("id")),
        "patient_id": _ref(r.get("subject")),
        "encounter_id": _ref(r.get("encounter")),
        "report_date": r.get("effectiveDateTime"),
        "status": r.get("status"),
    }


def _presented_url(r: dict[str, Any]) -> str:
    return strip_ref(_dict(_first(r.get("presentedForm"))).get("url"))


def _as_int(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return int(value)
    return value


def parse_ecg(r: dict[str, Any], index: BundleIndex) -> Record:
    linked: dict[str, Any] = {v: None for v in ECG_LOINC.values()}
    for res in r.get("result") or []:
        obs = index.by_id.get(_ref(res))
        if not isinstance(obs, dict):
            continue
        loinc = codeable(obs.get("code"))[0]
        column = ECG_LOINC.get(loinc)
        if column == "rhythm":
            linked[column] = _concept_text(obs.get("valueCodeableConcept"))
        elif column:
            linked[column] = _as_int(_dict(obs.get("valueQuantity")).get("value"))
    return {
        **_report(r, "ecg_id"),
        "conclusion": r.get("conclusion"),
        **linked,
        "has_waveform": bool(r.get("presentedForm")),
        "waveform_binary_id": _presented_url(r),
    }


def has_pathogenic_variant(conclusion: str | None) -> bool:
    text = (conclusion or "").lower()
    if "pathogenic" not in text:
        return False
    return not any(neg in text for neg in PATHOGENIC_NEGATIONS)


def parse_genomic(r: dict[str, Any]) -> Record:
    conclusion = r.get("conclusion") or None
    family = None
    for ext in r.get("extension") or []:
        if isinstance(ext, dict) and "family" in str(ext.get("url", "")):
            family = bool(ext.get("valueBoolean", True))
            break
    if family is None:
        family = "family history" in (conclusion or "").lower()
    return {
        **_report(r, "report_id"),
        "gene_panel_name": codeable(r.get("code"))[1] or None,
        "result_summary": conclusion,
        "has_pathogenic_variant": has_pathogenic_variant(conclusion),
        "family_history_flag": family,
        "binary_id": _presented_url(r),
        "data_limitation": DATA_LIMITATION,
    }


def study_uid(r: dict[str, Any]) -> str | None:
    for ident in r.get("identifier") or []:
        value = _dict(ident).get("value")
        if isinstance(value, str) and value.startswith("urn:oid:"):
            return value[len("urn:oid:") :]
    return None


def parse_imaging(
    r: dict[str, Any], resolver: DicomResolver | None, issues: list[ParseIssue]
) -> Record:
    series = _dict(_first(r.get("series")))
    body = _dict(series.get("bodySite"))
    row: Record = {
        "study_id": _str(r.get("id")),
        "patient_id": _ref(r.get("subject")),
        "encounter_id": _ref(r.get("encounter")),
        "started_date": r.get("started"),
        "status": r.get("status"),
        "modality": _str(_dict(series.get("modality")).get("code")),
        "body_site": _str(body.get("code")),
        "body_site_display": _str(body.get("display")),
        "series_count": r.get("numberOfSeries"),
        "instance_count": r.get("numberOfInstances"),
        **{name: None for name in dicom_mod.DICOM_FIELDS},
        "dicom_binary_id": None,
        "dicom_extracted": False,
    }
    attach_dicom(row, study_uid(r), resolver, issues)
    return row


def attach_dicom(
    row: Record, uid: str | None, resolver: DicomResolver | None, issues: list[ParseIssue]
) -> None:
    """Fill the DICOM columns of an imaging row from the study's file, when there is one."""
    data = resolver(uid) if (resolver is not None and uid) else None
    if data is not None:
        try:
            row.update(dicom_mod.read_headers(data))
            row["dicom_binary_id"] = uid
            row["dicom_extracted"] = True
        except dicom_mod.DicomHeaderError as exc:
            log.warning("DICOM header unreadable (%s); imaging row kept FHIR-only", exc)
            issues.append(ParseIssue("ImagingStudy", f"dicom_unreadable:{exc}"))


_RESOURCE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError)


class _Checked:
    """Parses resources one at a time, dropping (and reporting) the ones that cannot stand.

    A row resource is dropped when it has no usable id, when its subject is not the bundle's
    Patient, when its encounter reference names no Encounter of the bundle, or when its shape
    breaks the parser (a list where an object belongs, and so on).
    """

    def __init__(self, index: BundleIndex, patient_id: str, out: ParseResult) -> None:
        self.index = index
        self.patient_id = patient_id
        self.encounters: set[str] = set()  # filled by keep_encounters once they are parsed
        self.out = out

    def keep_encounters(self, kept: list[dict[str, Any]]) -> None:
        """References resolve to the Encounters kept, by ``id`` or by ``fullUrl``."""
        ids = {id(res) for res in kept}
        self.encounters = {key for key, res in self.index.by_id.items() if id(res) in ids}

    def drop(self, rtype: str, reason: str) -> None:
        self.out.issues.append(ParseIssue(rtype, reason))

    def row(
        self, rtype: str, r: dict[str, Any], parse: Callable[[], Record | None], position: int
    ) -> Record | None:
        """The record of ``r`` (from entry ``position``), or ``None`` when it is dropped."""
        if not _valid_id(r.get("id")):
            self.drop(rtype, "missing_id")
            return None
        try:
            rec = parse()
        except NoteDecodeError:
            raise
        except _RESOURCE_ERRORS as exc:
            self.drop(rtype, f"malformed_resource:{type(exc).__name__}")
            return None
        if rec is None:
            return None
        subject = rec.get("patient_id")
        if subject and subject != self.patient_id:
            self.drop(rtype, "dangling_reference:subject")
            return None
        encounter = rec.get("encounter_id")
        if rtype != "Encounter" and encounter and encounter not in self.encounters:
            self.drop(rtype, "dangling_reference:encounter")
            return None
        rec["source_entry"] = position
        return rec


def check_patients(count: int, first_id: Any) -> None:
    """Raise :class:`RejectedBundleError` unless the bundle has exactly one Patient with an id."""
    if not count:
        raise RejectedBundleError("Bundle has no Patient resource")
    if count > 1:
        raise RejectedBundleError(
            f"Bundle has {count} Patient resources; one patient per bundle expected"
        )
    if not _valid_id(first_id):
        raise RejectedBundleError("the Patient resource has no id")


def _the_patient(index: BundleIndex) -> tuple[int, dict[str, Any]]:
    patients = index.located("Patient")
    check_patients(len(patients), patients[0][1].get("id") if patients else None)
    return patients[0]


def parse_bundle(bundle: Any, dicom_resolver: DicomResolver | None = None) -> ParseResult:
    """Parse one bundle into records for all ten tables.

    Raises :class:`RejectedBundleError` (or its subclass :class:`NotABundleError`) when the
    file as a whole cannot be used: not a Bundle object, ``entry`` not a list, no Patient, more
    than one Patient, or a Patient without id or of an unreadable shape. Single resources that
    cannot be used are dropped and reported in ``ParseResult.issues``.
    """
    if not isinstance(bundle, dict):
        raise NotABundleError(f"top-level JSON is {type(bundle).__name__}, not an object")
    if bundle.get("resourceType") != "Bundle":
        rtype = bundle.get("resourceType")
        if rtype is None:
            raise NotABundleError("resourceType is missing")
        # a FHIR type name is shown; anything else might be data, and is not
        shown = repr(rtype) if isinstance(rtype, str) and _TYPE_NAME.match(rtype) else "not a name"
        raise NotABundleError(f"resourceType is {shown}, not 'Bundle'")
    index = BundleIndex(bundle)
    patient_entry, patient = _the_patient(index)
    out = ParseResult()
    out.issues.extend(index.skipped)
    try:
        patient_row = parse_patient(patient)
    except _RESOURCE_ERRORS as exc:
        raise RejectedBundleError(
            f"the Patient resource is malformed ({type(exc).__name__})"
        ) from None
    patient_row["source_entry"] = patient_entry
    rec = out.records
    rec["patient"] = [patient_row]
    check = _Checked(index, patient_row["patient_id"], out)

    def rows(rtype: str, parse: Callable[[dict[str, Any]], Record | None]) -> list[Record]:
        kept = []
        for pos, r in index.located(rtype):
            row = check.row(rtype, r, lambda r=r: parse(r), pos)
            if row is not None:
                kept.append((r, row))
        if rtype == "Encounter":
            check.keep_encounters([r for r, _ in kept])
        return [row for _, row in kept]

    rec["encounter"] = rows("Encounter", parse_encounter)
    rec["condition"] = rows("Condition", parse_condition)
    rec["observation"] = rows("Observation", parse_observation)
    rec["medication_request"] = rows("MedicationRequest", parse_medication_request)
    rec["procedure"] = rows("Procedure", parse_procedure)
    for pos, r in index.located("DocumentReference"):
        try:
            note = check.row(
                "DocumentReference", r, lambda r=r: parse_document_reference(r, index), pos
            )
        except NoteDecodeError as exc:
            log.warning("clinical note dropped: attachment does not decode (%s)", exc)
            out.issues.append(ParseIssue("DocumentReference", f"note_undecodable:{exc}"))
            continue
        if note is not None:
            rec["soap_note"].append(note)
    for pos, r in index.located("DiagnosticReport"):
        try:
            kind = classify_report(r)
        except _RESOURCE_ERRORS as exc:
            check.drop("DiagnosticReport", f"malformed_resource:{type(exc).__name__}")
            continue
        if kind == "genomic":
            row = check.row("DiagnosticReport", r, lambda r=r: parse_genomic(r), pos)
            if row is not None:
                rec["genomic_report"].append(row)
        elif kind == "ecg":
            row = check.row("DiagnosticReport", r, lambda r=r: parse_ecg(r, index), pos)
            if row is not None:
                rec["ecg_metadata"].append(row)
    rec["imaging_study"] = rows(
        "ImagingStudy", lambda r: parse_imaging(r, dicom_resolver, out.issues)
    )
    log.debug("bundle parsed: %s", {k: len(v) for k, v in rec.items()})
    return out
