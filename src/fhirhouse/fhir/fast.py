"""Bundle bytes -> :class:`ParseResult` through typed views: the fast path of ``parse_bytes``. Pure.

One msgspec call decodes the whole bundle (:data:`fhirhouse.fhir.structs.BUNDLE`): each resource
of a type the parser reads into its view, each other resource into an empty Struct of its type
(content skipped, as the dict path's loader does). The functions below are the dict parser's
(:mod:`fhirhouse.fhir.parser`) rewritten for the views, rule by rule, with the same drops, the
same issue reasons and the same records.

The fast path only takes bundles that fit the views. Anything else raises :class:`NotFast` and
the caller parses the bundle on the dict path (``load_bundle`` then ``parse_bundle``), which
decides every odd case: an entry that is not an object, a resource without a known string
``resourceType``, a field of another shape, an unknown field, an integer beyond 64 bits where
the parser reads a number, bytes that are not JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from msgspec import UNSET

from fhirhouse.fhir import structs as st
from fhirhouse.fhir.dicom import DICOM_FIELDS
from fhirhouse.fhir.load import UNDECODABLE, check_depth
from fhirhouse.fhir.notes import NoteDecodeError, decode_note, section_flags
from fhirhouse.fhir.parser import (
    DATA_LIMITATION,
    ECG_KEYWORDS,
    ECG_LOINC,
    GENOMIC_KEYWORDS,
    DicomResolver,
    ParseIssue,
    ParseResult,
    Record,
    attach_dicom,
    check_patients,
    has_pathogenic_variant,
    strip_ref,
)

log = logging.getLogger("fhirhouse.fhir.parser")  # the dict path's logger: same messages

_RESOURCE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, IndexError)


class NotFast(Exception):
    """The bundle does not fit the typed views; parse it on the dict path."""


# ---------------------------------------------------------------------------- small readers


def _s(value: str | None) -> str:
    return "" if value is None else value


# References repeat (the patient's in every row, an encounter's in each of its rows), so they
# are stripped once per bundle. A plain dict of strings, emptied after each bundle: an LRU cache
# kept ~10k GC-tracked nodes alive and slowed every later collection (orjson's too) by ~20%.
_stripped: dict[str, str] = {}


def _strip(ref: str) -> str:
    out = _stripped.get(ref)
    if out is None:
        out = _stripped[ref] = strip_ref(ref)
    return out


def _ref(ref: st.Reference | None) -> str:
    if ref is None:
        return ""
    target = ref.reference
    return _strip(target) if target else ""


def _first(items: list[Any] | None) -> Any:
    return items[0] if items else None


def _codeable(cc: st.CodeableConcept | None) -> tuple[str, str]:
    if cc is None:
        return "", ""
    coding = cc.coding
    if coding:
        c = coding[0]
        return _s(c.code), _s(c.display or cc.text)
    return "", _s(cc.text)


def _concept_text(cc: Any) -> str | None:
    if cc is None or cc is UNSET:
        return None
    coding = cc.coding
    display = coding[0].display if coding else None
    return display or cc.text or None


def _number(value: Any) -> Any:
    if not st.fits_orjson(value):
        raise NotFast("integer beyond 64 bits")
    return value


# -------------------------------------------------------------------------------- records


def _us_core_ext(exts: list[st.Extension] | None, suffix: str) -> str | None:
    for ext in exts or ():
        url = ext.url
        if url is None or not url.endswith(suffix):
            continue
        subs = ext.extension or ()
        for sub in subs:
            if sub.url == "text" and sub.valueString:
                return sub.valueString
        for sub in subs:
            if sub.url == "ombCategory":
                display = sub.valueCoding.display if sub.valueCoding is not None else None
                if display:
                    return display
        return None
    return None


def parse_patient(r: st.Patient) -> Record:
    address = _first(r.address)
    deceased_dt = r.deceasedDateTime
    return {
        "patient_id": _s(r.id),
        "birth_date": r.birthDate,
        "gender": r.gender,
        "race": _us_core_ext(r.extension, "us-core-race"),
        "ethnicity": _us_core_ext(r.extension, "us-core-ethnicity"),
        "state": None if address is None else address.state,
        "city": None if address is None else address.city,
        "zip": None if address is None else address.postalCode,
        "deceased": bool(r.deceasedBoolean) or deceased_dt is not None,
        "deceased_date": deceased_dt,
    }


def parse_encounter(r: st.Encounter) -> Record:
    type_code, type_display = _codeable(_first(r.type))
    reason_code, reason_display = _codeable(_first(r.reasonCode))
    provider = ""
    for part in r.participant or ():
        ref = _ref(part.individual)
        if ref:
            provider = ref
            break
    period = r.period
    klass = r.class_
    return {
        "encounter_id": _s(r.id),
        "patient_id": _ref(r.subject),
        "type_code": type_code,
        "type_display": type_display,
        "class_code": "" if klass is None else _s(klass.code),
        "start_date": None if period is None else period.start,
        "end_date": None if period is None else period.end,
        "status": r.status,
        "provider_id": provider,
        "reason_code": reason_code,
        "reason_display": reason_display,
    }


def parse_condition(r: st.Condition) -> Record:
    status = r.clinicalStatus
    coding = _first(status.coding) if status is not None else None
    code, display = _codeable(r.code)
    return {
        "condition_id": _s(r.id),
        "patient_id": _ref(r.subject),
        "encounter_id": _ref(r.encounter),
        "code": code,
        "display": display,
        "clinical_status": "" if coding is None else _s(coding.code),
        "onset_date": r.onsetDateTime,
        "abatement_date": r.abatementDateTime,
        "recorded_date": r.recordedDate,
    }


def parse_observation(r: st.Observation) -> Record:
    # the hottest function of the parse: the small readers are written out
    coding = None
    category = r.category
    if category:
        codings = category[0].coding
        if codings:
            coding = codings[0]
    value = unit = None
    quantity = r.valueQuantity
    if quantity is not None:
        value, unit = quantity.value, quantity.unit
        if type(value) is int and not st.fits_orjson(value):
            raise NotFast("integer beyond 64 bits")
    value_string = r.valueString
    if value_string is None and r.valueCodeableConcept is not UNSET:
        value_string = _concept_text(r.valueCodeableConcept)
    components_json = None
    if r.component:
        components = []
        for comp in r.component:
            c_code, c_display = _codeable(comp.code)
            c_qty = comp.valueQuantity
            components.append(
                {
                    "code": c_code,
                    "display": c_display,
                    "value": None if c_qty is None else _number(c_qty.value),
                    "unit": None if c_qty is None else c_qty.unit,
                }
            )
        components_json = json.dumps(components)
    code = display = ""
    concept = r.code
    if concept is not None:
        codings = concept.coding
        if codings:
            c = codings[0]
            code = c.code or ""
            display = c.display or concept.text or ""
        else:
            display = concept.text or ""
    subject = None if r.subject is None else r.subject.reference
    encounter = None if r.encounter is None else r.encounter.reference
    if subject:
        subject = _stripped.get(subject) or _strip(subject)
    if encounter:
        encounter = _stripped.get(encounter) or _strip(encounter)
    return {
        "observation_id": r.id or "",
        "patient_id": subject or "",
        "encounter_id": encounter or "",
        "code": code,
        "display": display,
        "category": (coding.code or "") if coding is not None else "",
        "value": value,
        "unit": unit,
        "value_string": value_string,
        "components_json": components_json,
        "effective_date": r.effectiveDateTime,
    }


def parse_medication_request(r: st.MedicationRequest) -> Record:
    dosage = _first(r.dosageInstruction)
    code, display = _codeable(r.medicationCodeableConcept)
    return {
        "medication_request_id": _s(r.id),
        "patient_id": _ref(r.subject),
        "encounter_id": _ref(r.encounter),
        "code": code,
        "display": display,
        "status": r.status,
        "intent": r.intent,
        "authored_on": r.authoredOn,
        "dosage_text": None if dosage is None else dosage.text,
    }


def parse_procedure(r: st.Procedure) -> Record:
    period = r.performedPeriod
    code, display = _codeable(r.code)
    return {
        "procedure_id": _s(r.id),
        "patient_id": _ref(r.subject),
        "encounter_id": _ref(r.encounter),
        "code": code,
        "display": display,
        "status": r.status,
        "performed_start": None if period is None else period.start,
        "performed_end": None if period is None else period.end,
    }


def parse_document_reference(r: st.DocumentReference, by_id: dict[str, Any]) -> Record | None:
    content = _first(r.content)
    attachment = None if content is None else content.attachment
    binary_id = ""
    data = None if attachment is None else attachment.data
    url = None if attachment is None else attachment.url
    if not data and url:
        binary_id = strip_ref(url)
        data = getattr(by_id.get(binary_id), "data", None)
        if not data:
            return None
    if not data:
        return None
    text = decode_note(data)
    context = r.context
    encounters = None if context is None else context.encounter
    return {
        "note_id": _s(r.id),
        "patient_id": _ref(r.subject),
        "encounter_id": _ref(_first(encounters)),
        "note_date": r.date,
        "note_text": text,
        **section_flags(text),
        "char_count": len(text),
        "word_count": len(text.split()),
        "binary_id": binary_id,
    }


def classify_report(r: st.DiagnosticReport) -> str | None:
    parts = [_codeable(r.code)[1]]
    for cat in r.category or ():
        for coding in cat.coding or ():
            parts.append(_s(coding.display))
    text = " ".join(parts).lower()
    if any(k in text for k in GENOMIC_KEYWORDS):
        return "genomic"
    if any(k in text for k in ECG_KEYWORDS):
        return "ecg"
    return None


def _report(r: st.DiagnosticReport, id_column: str) -> Record:
    return {
        id_column: _s(r.id),
        "patient_id": _ref(r.subject),
        "encounter_id": _ref(r.encounter),
        "report_date": r.effectiveDateTime,
        "status": r.status,
    }


def _presented_url(r: st.DiagnosticReport) -> str:
    form = _first(r.presentedForm)
    return strip_ref(None if form is None else form.url)


def _as_int(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return value


def parse_ecg(r: st.DiagnosticReport, by_id: dict[str, Any]) -> Record:
    linked: dict[str, Any] = {v: None for v in ECG_LOINC.values()}
    for res in r.result or ():
        obs = by_id.get(_ref(res))
        if obs is None:
            continue
        column = ECG_LOINC.get(_codeable(getattr(obs, "code", None))[0])
        if column == "rhythm":
            linked[column] = _concept_text(getattr(obs, "valueCodeableConcept", None))
        elif column:
            quantity = getattr(obs, "valueQuantity", None)
            linked[column] = _as_int(None if quantity is None else _number(quantity.value))
    return {
        **_report(r, "ecg_id"),
        "conclusion": r.conclusion,
        **linked,
        "has_waveform": bool(r.presentedForm),
        "waveform_binary_id": _presented_url(r),
    }


def parse_genomic(r: st.DiagnosticReport) -> Record:
    conclusion = r.conclusion or None
    family = None
    for ext in r.extension or ():
        if ext.url is not None and "family" in ext.url:
            family = True if ext.valueBoolean is UNSET else bool(ext.valueBoolean)
            break
    if family is None:
        family = "family history" in (conclusion or "").lower()
    return {
        **_report(r, "report_id"),
        "gene_panel_name": _codeable(r.code)[1] or None,
        "result_summary": conclusion,
        "has_pathogenic_variant": has_pathogenic_variant(conclusion),
        "family_history_flag": family,
        "binary_id": _presented_url(r),
        "data_limitation": DATA_LIMITATION,
    }


def _study_uid(r: st.ImagingStudy) -> str | None:
    for ident in r.identifier or ():
        value = ident.value
        if value is not None and value.startswith("urn:oid:"):
            return value[len("urn:oid:") :]
    return None


def parse_imaging(
    r: st.ImagingStudy, resolver: DicomResolver | None, issues: list[ParseIssue]
) -> Record:
    series = _first(r.series)
    body = None if series is None else series.bodySite
    modality = None if series is None else series.modality
    row: Record = {
        "study_id": _s(r.id),
        "patient_id": _ref(r.subject),
        "encounter_id": _ref(r.encounter),
        "started_date": r.started,
        "status": r.status,
        "modality": "" if modality is None else _s(modality.code),
        "body_site": "" if body is None else _s(body.code),
        "body_site_display": "" if body is None else _s(body.display),
        "series_count": _number(r.numberOfSeries),
        "instance_count": _number(r.numberOfInstances),
        **{name: None for name in DICOM_FIELDS},
        "dicom_binary_id": None,
        "dicom_extracted": False,
    }
    attach_dicom(row, _study_uid(r), resolver, issues)
    return row


# --------------------------------------------------------------------------------- bundle


class _Bundle:
    """The fast path's ``BundleIndex``: resources by type (with entry index) and by id."""

    def __init__(self, data: bytes) -> None:
        try:
            bundle = st.BUNDLE.decode(data)
        except UNDECODABLE:
            raise NotFast("the bundle does not fit the views") from None
        if bundle.resourceType != "Bundle" or bundle.entry is None:
            raise NotFast("not a bundle with entries")
        check_depth(data)  # the skipped resources' content is not bounded by any view
        self.by_type: dict[str, list[tuple[int, Any]]] = {}
        self.by_id: dict[str, Any] = {}
        self.skipped: list[ParseIssue] = []
        by_type, by_id, type_of, views = self.by_type, self.by_id, st.TYPE_OF, st.VIEWS
        stripped = _stripped
        for position, entry in enumerate(bundle.entry):
            res = entry.resource
            if res is None:
                self.skipped.append(ParseIssue("?", "entry_without_resource"))
                continue
            rtype = type_of[type(res)]
            located = by_type.get(rtype)
            if located is None:
                by_type[rtype] = [(position, res)]
            else:
                located.append((position, res))
            if rtype in views and res.id:  # a skipped resource has no id, as on the dict path
                by_id[res.id] = res
            full = entry.fullUrl
            if full:
                key = stripped.get(full)
                if key is None:
                    key = stripped[full] = strip_ref(full)
                if key:
                    by_id[key] = res

    def of(self, rtype: str) -> list[tuple[int, Any]]:
        return self.by_type.get(rtype, [])


def parse(data: bytes, resolver: DicomResolver | None = None) -> ParseResult:
    """Parse bundle bytes through the typed views; raises :class:`NotFast` when they don't fit.

    Raises ``RejectedBundleError`` exactly as ``parse_bundle`` does for a bundle of this shape.
    """
    try:
        return _parse(data, resolver)
    finally:
        _stripped.clear()


def _parse(data: bytes, resolver: DicomResolver | None) -> ParseResult:
    index = _Bundle(data)
    patients = index.of("Patient")
    check_patients(len(patients), patients[0][1].id if patients else None)
    out = ParseResult()
    issues = out.issues
    issues.extend(index.skipped)
    patient_entry, patient = patients[0]
    try:
        patient_row = parse_patient(patient)
    except _RESOURCE_ERRORS as exc:  # the views rule these out; the dict path decides
        raise NotFast(f"{type(exc).__name__} on a typed view") from None
    patient_row["source_entry"] = patient_entry
    patient_id = patient_row["patient_id"]
    by_id = index.by_id
    encounters: set[str] = set()

    def rows(
        rtype: str,
        located: list[tuple[int, Any]],
        parse: Callable[..., Record | None],
        *args: Any,
        kept_resources: list[Any] | None = None,
    ) -> list[Record]:
        """The dict path's ``_Checked.row``, resource by resource, for ``located``."""
        kept: list[Record] = []
        for pos, r in located:
            rid = r.id
            if not rid or rid.isspace():
                issues.append(ParseIssue(rtype, "missing_id"))
                continue
            try:
                rec = parse(r, *args)
            except NoteDecodeError as exc:  # only a note's attachment raises it
                log.warning("clinical note dropped: attachment does not decode (%s)", exc)
                issues.append(ParseIssue(rtype, f"note_undecodable:{exc}"))
                continue
            except NotFast:
                raise
            except _RESOURCE_ERRORS as exc:  # the views rule these out; the dict path decides
                raise NotFast(f"{type(exc).__name__} on a typed view") from None
            if rec is None:
                continue
            subject = rec["patient_id"]
            if subject and subject != patient_id:
                issues.append(ParseIssue(rtype, "dangling_reference:subject"))
                continue
            if rtype != "Encounter":
                encounter = rec["encounter_id"]
                if encounter and encounter not in encounters:
                    issues.append(ParseIssue(rtype, "dangling_reference:encounter"))
                    continue
            rec["source_entry"] = pos
            kept.append(rec)
            if kept_resources is not None:
                kept_resources.append(r)
        return kept

    rec = out.records
    rec["patient"] = [patient_row]
    kept_encounters: list[Any] = []
    rec["encounter"] = rows(
        "Encounter", index.of("Encounter"), parse_encounter, kept_resources=kept_encounters
    )
    # references resolve to the Encounters kept, by id or by fullUrl
    kept = {id(r) for r in kept_encounters}
    encounters.update(key for key, res in by_id.items() if id(res) in kept)
    rec["condition"] = rows("Condition", index.of("Condition"), parse_condition)
    rec["observation"] = rows("Observation", index.of("Observation"), parse_observation)
    rec["medication_request"] = rows(
        "MedicationRequest", index.of("MedicationRequest"), parse_medication_request
    )
    rec["procedure"] = rows("Procedure", index.of("Procedure"), parse_procedure)
    rec["soap_note"] = rows(
        "DocumentReference", index.of("DocumentReference"), parse_document_reference, by_id
    )
    for located in index.of("DiagnosticReport"):
        try:
            kind = classify_report(located[1])
        except _RESOURCE_ERRORS as exc:
            raise NotFast(f"{type(exc).__name__} on a typed view") from None
        if kind == "genomic":
            rec["genomic_report"] += rows("DiagnosticReport", [located], parse_genomic)
        elif kind == "ecg":
            rec["ecg_metadata"] += rows("DiagnosticReport", [located], parse_ecg, by_id)
    rec["imaging_study"] = rows(
        "ImagingStudy", index.of("ImagingStudy"), parse_imaging, resolver, issues
    )
    log.debug("bundle parsed: %s", {k: len(v) for k, v in rec.items()})
    return out
