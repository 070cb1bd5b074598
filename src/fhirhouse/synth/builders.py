"""FHIR R4 resource builders: one small function per resource type, and the bundle around them.

A builder writes the fields it is given (``None`` leaves a field out; ``**extra`` fields go
last), always in the same order, so the same arguments give the same JSON bytes; the builders
only the generator uses (Immunization, CarePlan, ExplanationOfBenefit...) also write the
fields that never vary there. Arguments
named after a resource (``subject``, ``encounter``, ``author``...) take its id and become
``urn:uuid:`` references; coded fields take the concept or coding whole (``cc`` for the
Synthea form with system and text, ``concept`` and ``coding`` for any other), so a caller
decides how much of a coding to write.
"""

from __future__ import annotations

import base64
from typing import Any

LOINC, SNOMED = "http://loinc.org", "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CPT = "http://www.ama-assn.org/go/cpt"
UCUM = "http://unitsofmeasure.org"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"
DICOM_DCM = "http://dicom.nema.org/resources/ontology/DCM"
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition"
OMB = "urn:oid:2.16.840.1.113883.6.238"
RFC3986 = "urn:ietf:rfc:3986"

# ------------------------------------------------------------------------------ datatypes


def coding(
    code: str | None = None, display: str | None = None, system: str | None = None
) -> dict[str, str]:
    """A Coding with the parts given, in FHIR order (system, code, display)."""
    return _present(system=system, code=code, display=display)


def concept(
    code: str | None = None,
    display: str | None = None,
    *,
    system: str | None = None,
    text: str | None = None,
) -> dict[str, Any]:
    """A CodeableConcept of one coding with the parts given (none: no ``coding``), and
    ``text`` when given."""
    one = coding(code, display, system)
    return _present(coding=[one] if one else None, text=text)


def cc(system: str, code: str, display: str) -> dict[str, Any]:
    """A CodeableConcept as Synthea writes it: one full coding, its display as the text."""
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def hl7(kind: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A concept of one code of the HL7 terminology code system ``kind`` (no text)."""
    return concept(code, display, system=f"{TERMINOLOGY}/{kind}")


def ref(rid: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{rid}"}


def period(start: str, end: str | None = None) -> dict[str, str]:
    return _present(start=start, end=end)


def quantity(value: Any, unit: str | None = None, *, ucum: bool = False) -> dict[str, Any]:
    """A Quantity; ``ucum`` adds the UCUM system and the unit as its code."""
    if ucum:
        return {"value": value, "unit": unit, "system": UCUM, "code": unit}
    return _present(value=value, unit=unit)


def money(value: float) -> dict[str, Any]:
    return {"value": value, "currency": "USD"}


def b64(text: str) -> str:
    """UTF-8 text as the Base64 of an attachment's or a Binary's ``data``."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def attachment(
    data: str | None = None, url: str | None = None, content_type: str | None = None
) -> dict[str, str]:
    return _present(contentType=content_type, data=data, url=url)


def address(
    city: str, postal_code: str, state: str = "MA", country: str | None = "US"
) -> dict[str, str]:
    return _present(city=city, state=state, postalCode=postal_code, country=country)


def component(code: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    """An Observation component: a concept and its Quantity."""
    return {"code": code, "valueQuantity": value}


# ---------------------------------------------------------------------------- the bundle


def resource(rtype: str, rid: str, **fields: Any) -> dict[str, Any]:
    """``resourceType``, ``id``, then ``fields`` in their order, the ``None`` ones left out."""
    return {"resourceType": rtype, "id": rid, **_present(**fields)}


def entry(res: dict[str, Any], *, request: bool = True) -> dict[str, Any]:
    """A bundle entry by ``urn:uuid:`` fullUrl; ``request`` adds the transaction's POST."""
    out: dict[str, Any] = {"fullUrl": f"urn:uuid:{res['id']}", "resource": res}
    if request:
        out["request"] = {"method": "POST", "url": res["resourceType"]}
    return out


def bundle(
    resources: list[dict[str, Any]], kind: str | None = "transaction", *, request: bool = True
) -> dict[str, Any]:
    """A Bundle of ``kind`` (``None``: no type), one ``entry`` a resource."""
    entries = [entry(r, request=request) for r in resources]
    return _present(resourceType="Bundle", type=kind, entry=entries)


# ------------------------------------------------------------------------ administrative


def organization(rid: str, *, name: str, kind: dict[str, Any]) -> dict[str, Any]:
    return resource("Organization", rid, name=name, type=[kind])


def practitioner(rid: str, *, given: str, family: str, npi: str) -> dict[str, Any]:
    return resource(
        "Practitioner",
        rid,
        name=[{"family": family, "given": [given]}],
        identifier=[{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}],
    )


def _us_core(kind: str, code: str, display: str) -> dict[str, Any]:
    """A US Core race or ethnicity extension: its OMB category and its text."""
    return {
        "url": f"{US_CORE}/us-core-{kind}",
        "extension": [
            {"url": "ombCategory", "valueCoding": coding(code, display, OMB)},
            {"url": "text", "valueString": display},
        ],
    }


def patient(
    rid: str,
    *,
    given: str | None = None,
    family: str | None = None,
    gender: str | None = None,
    birth_date: str | None = None,
    race: tuple[str, str] | None = None,
    ethnicity: tuple[str, str] | None = None,
    synthea_id: bool = False,
    home: dict[str, str] | None = None,
    deceased: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Patient; ``race`` and ``ethnicity`` are (OMB code, display), ``synthea_id`` adds
    Synthea's identifier (the id itself), ``home`` is an ``address``."""
    extension = [_us_core(k, *v) for k, v in (("race", race), ("ethnicity", ethnicity)) if v]
    return resource(
        "Patient",
        rid,
        extension=extension or None,
        identifier=[{"system": "https://github.com/synthetichealth/synthea", "value": rid}]
        if synthea_id
        else None,
        name=[{"use": "official", "family": family, "given": [given]}] if given else None,
        gender=gender,
        birthDate=birth_date,
        address=[home] if home else None,
        deceasedDateTime=deceased,
        **extra,
    )


def provenance(
    rid: str, *, targets: list[str], recorded: str, who: str, on_behalf_of: str
) -> dict[str, Any]:
    return resource(
        "Provenance",
        rid,
        target=[ref(t) for t in targets],
        recorded=recorded,
        agent=[{"who": ref(who), "onBehalfOf": ref(on_behalf_of)}],
    )


# ------------------------------------------------------------------------------ clinical


def encounter(
    rid: str,
    subject: str | None = None,
    *,
    start: str | None = None,
    end: str | None = None,
    status: str | None = None,
    klass: dict[str, str] | None = None,
    kind: dict[str, Any] | None = None,
    participant: list[dict[str, Any]] | None = None,
    provider: str | None = None,
    reason: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An Encounter; ``klass`` is its class (a coding), ``kind`` its type (a concept)."""
    return resource(
        "Encounter",
        rid,
        status=status,
        **{"class": klass},
        type=[kind] if kind else None,
        subject=_ref(subject),
        participant=participant,
        period=period(start, end) if start else None,
        serviceProvider=_ref(provider),
        reasonCode=[reason] if reason else None,
        **extra,
    )


def condition(
    rid: str,
    subject: str | None = None,
    encounter: str | None = None,
    *,
    code: dict[str, Any],
    clinical: dict[str, Any] | None = None,
    verification: dict[str, Any] | None = None,
    category: dict[str, Any] | None = None,
    onset: str | None = None,
    recorded: str | None = None,
    abatement: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Condition; ``clinical`` and ``verification`` are its status concepts."""
    return resource(
        "Condition",
        rid,
        clinicalStatus=clinical,
        verificationStatus=verification,
        category=[category] if category else None,
        code=code,
        subject=_ref(subject),
        encounter=_ref(encounter),
        onsetDateTime=onset,
        recordedDate=recorded,
        abatementDateTime=abatement,
        **extra,
    )


def observation(
    rid: str,
    subject: str | None = None,
    encounter: str | None = None,
    *,
    code: dict[str, Any],
    status: str | None = None,
    category: dict[str, Any] | None = None,
    when: str | None = None,
    issued: str | None = None,
    value: dict[str, Any] | None = None,
    value_concept: dict[str, Any] | None = None,
    components: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An Observation; ``value`` is a ``quantity``, ``components`` are ``component``s."""
    return resource(
        "Observation",
        rid,
        status=status,
        category=[category] if category else None,
        code=code,
        subject=_ref(subject),
        encounter=_ref(encounter),
        effectiveDateTime=when,
        issued=issued,
        valueQuantity=value,
        valueCodeableConcept=value_concept,
        component=components,
        **extra,
    )


def loinc_observation(
    rid: str,
    subject: str,
    encounter: str,
    when: str,
    code: str,
    display: str,
    category: str,
    value: float | None = None,
    unit: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An Observation as Synthea writes it: final, LOINC-coded, in an HL7 observation
    category, issued when effective, its value (if any) a UCUM quantity. ``fields`` go to
    ``observation``."""
    return observation(
        rid,
        subject,
        encounter,
        status="final",
        category=hl7("observation-category", category, category),
        code=cc(LOINC, code, display),
        when=when,
        issued=when,
        value=quantity(value, unit, ucum=True) if value is not None else None,
        **fields,
    )


def medication_request(
    rid: str,
    subject: str | None = None,
    encounter: str | None = None,
    *,
    code: dict[str, Any],
    status: str | None = None,
    intent: str | None = None,
    authored: str | None = None,
    requester: str | None = None,
    dosage: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return resource(
        "MedicationRequest",
        rid,
        status=status,
        intent=intent,
        medicationCodeableConcept=code,
        subject=_ref(subject),
        encounter=_ref(encounter),
        authoredOn=authored,
        requester=_ref(requester),
        dosageInstruction=[dosage] if dosage else None,
        **extra,
    )


def procedure(
    rid: str,
    subject: str | None = None,
    encounter: str | None = None,
    *,
    code: dict[str, Any],
    status: str | None = None,
    performed: dict[str, str] | None = None,
    location: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Procedure; ``performed`` is a ``period``."""
    return resource(
        "Procedure",
        rid,
        status=status,
        code=code,
        subject=_ref(subject),
        encounter=_ref(encounter),
        performedPeriod=performed,
        location=_ref(location),
        **extra,
    )


def immunization(
    rid: str, patient: str, encounter: str, *, code: dict[str, Any], when: str
) -> dict[str, Any]:
    return resource(
        "Immunization",
        rid,
        status="completed",
        vaccineCode=code,
        patient=ref(patient),
        encounter=ref(encounter),
        occurrenceDateTime=when,
        primarySource=True,
    )


def care_plan(
    rid: str,
    subject: str,
    encounter: str,
    *,
    category: dict[str, Any],
    start: str,
    activity: dict[str, Any],
) -> dict[str, Any]:
    """An active CarePlan with one activity (a concept) in progress."""
    return resource(
        "CarePlan",
        rid,
        status="active",
        intent="order",
        category=[category],
        subject=ref(subject),
        encounter=ref(encounter),
        period=period(start),
        activity=[{"detail": {"code": activity, "status": "in-progress"}}],
    )


# ------------------------------------------------------------------------- notes, reports


def binary(rid: str, data: str, content_type: str | None = None) -> dict[str, Any]:
    return resource("Binary", rid, contentType=content_type, data=data)


def document_reference(
    rid: str,
    subject: str | None = None,
    encounter: str | None = None,
    *,
    content: dict[str, str],
    status: str | None = None,
    kind: dict[str, Any] | None = None,
    category: dict[str, Any] | None = None,
    date: str | None = None,
    author: str | None = None,
    custodian: str | None = None,
    context_period: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A DocumentReference; ``content`` is its one ``attachment``, ``kind`` its type."""
    context = _present(encounter=[ref(encounter)] if encounter else None, period=context_period)
    return resource(
        "DocumentReference",
        rid,
        status=status,
        type=kind,
        category=[category] if category else None,
        subject=_ref(subject),
        date=date,
        author=[ref(author)] if author else None,
        custodian=_ref(custodian),
        context=context or None,
        content=[{"attachment": content}],
        **extra,
    )


def clinical_note(
    rid: str, text: str, *, binary_id: str | None = None, **fields: Any
) -> list[dict[str, Any]]:
    """A plain-text note as Synthea writes it: Base64 inline in a DocumentReference, or, with
    ``binary_id``, in a Binary that the DocumentReference's attachment points at (the Binary
    first). ``fields`` go to ``document_reference``."""
    data = b64(text)
    if binary_id is None:
        inline = attachment(data, content_type="text/plain; charset=utf-8")
        return [document_reference(rid, content=inline, **fields)]
    by_url = attachment(url=f"urn:uuid:{binary_id}", content_type="text/plain")
    return [
        binary(binary_id, data, "text/plain"),
        document_reference(rid, content=by_url, **fields),
    ]


def ecg_report(
    rid: str,
    subject: str | None = None,
    encounter: str | None = None,
    *,
    code: dict[str, Any],
    status: str | None = None,
    category: dict[str, Any] | None = None,
    when: str | None = None,
    issued: str | None = None,
    conclusion: str | None = None,
    results: list[str] | None = None,
    waveform: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An ECG DiagnosticReport; ``results`` are the ids of its observations, ``waveform`` the
    url of its presented form."""
    return resource(
        "DiagnosticReport",
        rid,
        status=status,
        category=[category] if category else None,
        code=code,
        subject=_ref(subject),
        encounter=_ref(encounter),
        effectiveDateTime=when,
        issued=issued,
        conclusion=conclusion,
        result=[ref(r) for r in results] if results else None,
        presentedForm=[{"url": waveform}] if waveform else None,
        **extra,
    )


def genomic_report(
    rid: str,
    subject: str | None = None,
    encounter: str | None = None,
    *,
    code: dict[str, Any],
    conclusion: str | None,
    status: str | None = None,
    when: str | None = None,
    issued: str | None = None,
    form: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A genomic DiagnosticReport. Its ``conclusion`` is always written, a JSON null when
    ``None``; ``form`` is the ``attachment`` of its presented form."""
    head = resource(
        "DiagnosticReport",
        rid,
        status=status,
        code=code,
        subject=_ref(subject),
        encounter=_ref(encounter),
        effectiveDateTime=when,
        issued=issued,
    )
    tail = _present(presentedForm=[form] if form else None, **extra)
    return {**head, "conclusion": conclusion, **tail}


def study_identifier(study_uid: str) -> dict[str, str]:
    """An ImagingStudy's official identifier: its DICOM Study Instance UID as a urn:oid."""
    return {"use": "official", "system": RFC3986, "value": f"urn:oid:{study_uid}"}


def imaging_series(
    modality: dict[str, str],
    body_site: dict[str, str],
    *,
    uid: str | None = None,
    number: int | None = None,
    instances: int | None = None,
    instance: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An ImagingStudy series; ``modality`` and ``body_site`` are codings."""
    return _present(
        uid=uid,
        number=number,
        modality=modality,
        numberOfInstances=instances,
        bodySite=body_site,
        instance=instance,
    )


def imaging_study(
    rid: str,
    subject: str | None = None,
    encounter: str | None = None,
    *,
    identifier: dict[str, str] | None = None,
    status: str | None = None,
    started: str | None = None,
    n_series: int | None = None,
    n_instances: int | None = None,
    procedure: dict[str, Any] | None = None,
    series: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """An ImagingStudy; ``identifier`` is its one identifier (``study_identifier``)."""
    return resource(
        "ImagingStudy",
        rid,
        identifier=[identifier] if identifier else None,
        status=status,
        subject=_ref(subject),
        encounter=_ref(encounter),
        started=started,
        numberOfSeries=n_series,
        numberOfInstances=n_instances,
        procedureCode=[procedure] if procedure else None,
        series=series,
        **extra,
    )


# -------------------------------------------------------------------------------- claims


def claim_item(
    sequence: int,
    product: dict[str, Any] | None = None,
    encounter: str | None = None,
    *,
    serviced: dict[str, str] | None = None,
    net: dict[str, Any] | None = None,
    adjudication: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A Claim or ExplanationOfBenefit line item; ``serviced`` is a ``period``, ``net`` a
    ``money``."""
    return _present(
        sequence=sequence,
        productOrService=product,
        encounter=[ref(encounter)] if encounter else None,
        servicedPeriod=serviced,
        net=net,
        adjudication=adjudication,
    )


def claim(
    rid: str,
    patient: str | None = None,
    *,
    items: list[dict[str, Any]],
    status: str | None = None,
    kind: dict[str, Any] | None = None,
    use: str | None = None,
    billable: dict[str, str] | None = None,
    created: str | None = None,
    provider: str | None = None,
    priority: dict[str, Any] | None = None,
    insurance: list[dict[str, Any]] | None = None,
    total: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Claim; ``kind`` is its type, ``billable`` its billable ``period``."""
    return resource(
        "Claim",
        rid,
        status=status,
        type=kind,
        use=use,
        patient=_ref(patient),
        billablePeriod=billable,
        created=created,
        provider=_ref(provider),
        priority=priority,
        insurance=insurance,
        item=items,
        total=total,
    )


def explanation_of_benefit(
    rid: str,
    patient: str,
    *,
    claim: str,
    items: list[dict[str, Any]],
    status: str,
    kind: dict[str, Any],
    use: str,
    billable: dict[str, str],
    created: str,
    insurer: str,
    provider: str,
    care_team: list[dict[str, Any]],
    total: list[dict[str, Any]],
    payment: dict[str, Any],
) -> dict[str, Any]:
    """A completed ExplanationOfBenefit of ``claim`` (an id); ``insurer`` is its display."""
    return resource(
        "ExplanationOfBenefit",
        rid,
        status=status,
        type=kind,
        use=use,
        patient=ref(patient),
        billablePeriod=billable,
        created=created,
        insurer={"display": insurer},
        provider=ref(provider),
        claim=ref(claim),
        outcome="complete",
        careTeam=care_team,
        insurance=[{"focal": True, "coverage": {"display": insurer}}],
        item=items,
        total=total,
        payment=payment,
    )


# --------------------------------------------------------------------------------- helpers


def _ref(rid: str | None) -> dict[str, str] | None:
    return ref(rid) if rid is not None else None


def _present(**fields: Any) -> dict[str, Any]:
    """``fields`` without the ``None`` ones."""
    return {k: v for k, v in fields.items() if v is not None}
