"""Typed views (msgspec Structs) of the resources the parser reads, for the fast path. Pure.

Each Struct lists the fields a Synthea resource of its type carries, every one with a strict
type, and forbids unknown fields. So a resource that decodes into its Struct was decoded
completely, with nothing skipped: every string was checked as UTF-8 and every number was checked
to fit a double, as a full orjson decode does. Numbers the parser reads are ``int | float``
(an integer stays an integer, as with orjson); ``int`` beyond 64 bits must still be checked by
the caller (:func:`fits_orjson`), because orjson turns those into floats. Numbers nobody reads
are ``float``, which fails on the same out-of-range literals orjson fails on.

Anything else (an unknown field, a value of another type, an extension nested three deep)
fails to decode, and the bundle is parsed on the dict path instead, exactly as before. Nesting is
bounded by the types themselves: no Struct refers to itself.

``msgspec.UNSET`` marks the two fields where the parser tells a missing key from ``null``:
``Observation.valueCodeableConcept`` and ``Extension.valueBoolean``.

The whole bundle decodes in one call (:data:`BUNDLE`): ``entry[].resource`` is a union tagged by
``resourceType`` of the ten views and of an empty Struct for every other R4 resource type, whose
content msgspec skips, as the dict path's loader does (and as it skips the keys of the bundle
and of its entries other than ``entry``, ``fullUrl`` and ``resource``). msgspec rejects a
``resourceType`` it does not know, and a second ``resourceType`` that differs from the first,
so a resource is never typed differently from the dict path (where the last key wins).
"""

from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import UNSET, UnsetType

_UINT64_MAX = 2**64 - 1
_INT64_MIN = -(2**63)


def fits_orjson(value: Any) -> bool:
    """False for an integer orjson would have decoded as a float (beyond 64 bits)."""
    return type(value) is not int or _INT64_MIN <= value <= _UINT64_MAX


class _S(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Base of every view: unknown fields fail the decode; instances are not GC-tracked."""


Str = str | None
Num = float | None  # a number nobody reads: validated, never compared


# ------------------------------------------------------------------------------ data types


class Coding(_S):
    system: Str = None
    version: Str = None
    code: Str = None
    display: Str = None
    userSelected: bool | None = None


class CodeableConcept(_S):
    coding: list[Coding] | None = None
    text: Str = None


class Reference(_S):
    reference: Str = None
    type: Str = None
    display: Str = None


class Period(_S):
    start: Str = None
    end: Str = None


class Quantity(_S):
    """A quantity the parser reads: ``value`` keeps int or float as written."""

    value: int | float | None = None
    comparator: Str = None
    unit: Str = None
    system: Str = None
    code: Str = None


class SimpleQuantity(_S):
    """A quantity nobody reads."""

    value: Num = None
    comparator: Str = None
    unit: Str = None
    system: Str = None
    code: Str = None


class Identifier(_S):
    use: Str = None
    type: CodeableConcept | None = None
    system: Str = None
    value: Str = None
    period: Period | None = None
    assigner: Reference | None = None


class Meta(_S):
    versionId: Str = None
    lastUpdated: Str = None
    source: Str = None
    profile: list[str] | None = None
    security: list[Coding] | None = None
    tag: list[Coding] | None = None


class Narrative(_S):
    status: Str = None
    div: Str = None


class _AddressFields(_S):
    use: Str = None
    type: Str = None
    text: Str = None
    line: list[str] | None = None
    city: Str = None
    district: Str = None
    state: Str = None
    postalCode: Str = None
    country: Str = None
    period: Period | None = None


class InnerAddress(_AddressFields):
    """An address inside an extension (no extensions of its own)."""


class InnerExtension(_S):
    """An extension inside an extension (no further nesting)."""

    url: Str = None
    valueString: Str = None
    valueCode: Str = None
    valueUri: Str = None
    valueDate: Str = None
    valueDateTime: Str = None
    valueDecimal: Num = None
    valueInteger: Num = None
    valueBoolean: bool | UnsetType | None = UNSET
    valueCoding: Coding | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueReference: Reference | None = None
    valueQuantity: SimpleQuantity | None = None
    valuePeriod: Period | None = None
    valueAddress: InnerAddress | None = None


class Extension(InnerExtension):
    extension: list[InnerExtension] | None = None


class Address(_AddressFields):
    extension: list[Extension] | None = None


class HumanName(_S):
    use: Str = None
    text: Str = None
    family: Str = None
    given: list[str] | None = None
    prefix: list[str] | None = None
    suffix: list[str] | None = None
    period: Period | None = None


class ContactPoint(_S):
    system: Str = None
    value: Str = None
    use: Str = None
    rank: Num = None
    period: Period | None = None


class Attachment(_S):
    contentType: Str = None
    language: Str = None
    data: Str = None
    url: Str = None
    size: Num = None
    hash: Str = None
    title: Str = None
    creation: Str = None


class _Resource(_S, tag_field="resourceType"):
    """The fields every resource may carry; a subclass is tagged by its class name."""

    id: Str = None
    meta: Meta | None = None
    implicitRules: Str = None
    language: Str = None
    text: Narrative | None = None
    extension: list[Extension] | None = None
    identifier: list[Identifier] | None = None


# ------------------------------------------------------------------------------- resources


class PatientCommunication(_S):
    language: CodeableConcept | None = None
    preferred: bool | None = None


class Patient(_Resource):
    active: bool | None = None
    name: list[HumanName] | None = None
    telecom: list[ContactPoint] | None = None
    gender: Str = None
    birthDate: Str = None
    deceasedBoolean: bool | None = None
    deceasedDateTime: Str = None
    address: list[Address] | None = None
    maritalStatus: CodeableConcept | None = None
    multipleBirthBoolean: bool | None = None
    multipleBirthInteger: Num = None
    communication: list[PatientCommunication] | None = None
    generalPractitioner: list[Reference] | None = None
    managingOrganization: Reference | None = None


class EncounterParticipant(_S):
    type: list[CodeableConcept] | None = None
    period: Period | None = None
    individual: Reference | None = None


class EncounterHospitalization(_S):
    admitSource: CodeableConcept | None = None
    dischargeDisposition: CodeableConcept | None = None


class EncounterLocation(_S):
    location: Reference | None = None
    status: Str = None
    period: Period | None = None


class Encounter(_Resource):
    status: Str = None
    class_: Coding | None = msgspec.field(default=None, name="class")
    type: list[CodeableConcept] | None = None
    serviceType: CodeableConcept | None = None
    priority: CodeableConcept | None = None
    subject: Reference | None = None
    participant: list[EncounterParticipant] | None = None
    period: Period | None = None
    reasonCode: list[CodeableConcept] | None = None
    reasonReference: list[Reference] | None = None
    hospitalization: EncounterHospitalization | None = None
    location: list[EncounterLocation] | None = None
    serviceProvider: Reference | None = None


class Condition(_Resource):
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    category: list[CodeableConcept] | None = None
    severity: CodeableConcept | None = None
    code: CodeableConcept | None = None
    bodySite: list[CodeableConcept] | None = None
    subject: Reference | None = None
    encounter: Reference | None = None
    onsetDateTime: Str = None
    abatementDateTime: Str = None
    recordedDate: Str = None


class ObservationComponent(_S):
    code: CodeableConcept | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | None = None
    valueString: Str = None
    dataAbsentReason: CodeableConcept | None = None
    interpretation: list[CodeableConcept] | None = None


class Observation(_Resource):
    status: Str = None
    category: list[CodeableConcept] | None = None
    code: CodeableConcept | None = None
    subject: Reference | None = None
    encounter: Reference | None = None
    effectiveDateTime: Str = None
    effectivePeriod: Period | None = None
    issued: Str = None
    performer: list[Reference] | None = None
    valueQuantity: Quantity | None = None
    valueCodeableConcept: CodeableConcept | UnsetType | None = UNSET
    valueString: Str = None
    valueBoolean: bool | None = None
    valueInteger: Num = None
    dataAbsentReason: CodeableConcept | None = None
    interpretation: list[CodeableConcept] | None = None
    hasMember: list[Reference] | None = None
    derivedFrom: list[Reference] | None = None
    component: list[ObservationComponent] | None = None


class TimingRepeat(_S):
    frequency: Num = None
    period: Num = None
    periodUnit: Str = None
    boundsPeriod: Period | None = None


class Timing(_S):
    repeat: TimingRepeat | None = None
    code: CodeableConcept | None = None


class DoseAndRate(_S):
    type: CodeableConcept | None = None
    doseQuantity: SimpleQuantity | None = None


class Dosage(_S):
    sequence: Num = None
    text: Str = None
    additionalInstruction: list[CodeableConcept] | None = None
    timing: Timing | None = None
    asNeededBoolean: bool | None = None
    route: CodeableConcept | None = None
    doseAndRate: list[DoseAndRate] | None = None


class MedicationRequest(_Resource):
    status: Str = None
    intent: Str = None
    category: list[CodeableConcept] | None = None
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    subject: Reference | None = None
    encounter: Reference | None = None
    authoredOn: Str = None
    requester: Reference | None = None
    reasonCode: list[CodeableConcept] | None = None
    reasonReference: list[Reference] | None = None
    dosageInstruction: list[Dosage] | None = None


class Procedure(_Resource):
    status: Str = None
    code: CodeableConcept | None = None
    subject: Reference | None = None
    encounter: Reference | None = None
    performedDateTime: Str = None
    performedPeriod: Period | None = None
    location: Reference | None = None
    reasonCode: list[CodeableConcept] | None = None
    reasonReference: list[Reference] | None = None
    bodySite: list[CodeableConcept] | None = None


class DocumentContent(_S):
    attachment: Attachment | None = None
    format: Coding | None = None


class DocumentContext(_S):
    encounter: list[Reference] | None = None
    period: Period | None = None


class DocumentReference(_Resource):
    masterIdentifier: Identifier | None = None
    status: Str = None
    docStatus: Str = None
    type: CodeableConcept | None = None
    category: list[CodeableConcept] | None = None
    subject: Reference | None = None
    date: Str = None
    author: list[Reference] | None = None
    custodian: Reference | None = None
    description: Str = None
    content: list[DocumentContent] | None = None
    context: DocumentContext | None = None


class DiagnosticReport(_Resource):
    status: Str = None
    category: list[CodeableConcept] | None = None
    code: CodeableConcept | None = None
    subject: Reference | None = None
    encounter: Reference | None = None
    effectiveDateTime: Str = None
    effectivePeriod: Period | None = None
    issued: Str = None
    performer: list[Reference] | None = None
    result: list[Reference] | None = None
    conclusion: Str = None
    conclusionCode: list[CodeableConcept] | None = None
    presentedForm: list[Attachment] | None = None


class ImagingInstance(_S):
    uid: Str = None
    sopClass: Coding | None = None
    number: Num = None
    title: Str = None


class ImagingSeries(_S):
    uid: Str = None
    number: Num = None
    modality: Coding | None = None
    description: Str = None
    numberOfInstances: Num = None
    bodySite: Coding | None = None
    started: Str = None
    instance: list[ImagingInstance] | None = None


class ImagingStudy(_Resource):
    status: Str = None
    subject: Reference | None = None
    encounter: Reference | None = None
    started: Str = None
    numberOfSeries: int | float | None = None
    numberOfInstances: int | float | None = None
    procedureCode: list[CodeableConcept] | None = None
    location: Reference | None = None
    description: Str = None
    series: list[ImagingSeries] | None = None


class Binary(_S, tag_field="resourceType"):
    id: Str = None
    meta: Meta | None = None
    implicitRules: Str = None
    language: Str = None
    contentType: Str = None
    securityContext: Reference | None = None
    data: Str = None


#: Every other resource type of FHIR R4: typed, never read, its content skipped.
SKIPPED_TYPES: tuple[str, ...] = tuple(
    """
    Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse
    AuditEvent Basic BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement CarePlan
    CareTeam CatalogEntry ChargeItem ChargeItemDefinition Claim ClaimResponse ClinicalImpression
    CodeSystem Communication CommunicationRequest CompartmentDefinition Composition ConceptMap
    Consent Contract Coverage CoverageEligibilityRequest CoverageEligibilityResponse
    DetectedIssue Device DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement
    DocumentManifest EffectEvidenceSynthesis Endpoint EnrollmentRequest EnrollmentResponse
    EpisodeOfCare EventDefinition Evidence EvidenceVariable ExampleScenario ExplanationOfBenefit
    FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse HealthcareService
    Immunization ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide
    InsurancePlan Invoice Library Linkage List Location Measure MeasureReport Media Medication
    MedicationAdministration MedicationDispense MedicationKnowledge MedicationStatement
    MedicinalProduct MedicinalProductAuthorization MedicinalProductContraindication
    MedicinalProductIndication MedicinalProductIngredient MedicinalProductInteraction
    MedicinalProductManufactured MedicinalProductPackaged MedicinalProductPharmaceutical
    MedicinalProductUndesirableEffect MessageDefinition MessageHeader MolecularSequence
    NamingSystem NutritionOrder ObservationDefinition OperationDefinition OperationOutcome
    Organization OrganizationAffiliation Parameters PaymentNotice PaymentReconciliation Person
    PlanDefinition Practitioner PractitionerRole Provenance Questionnaire QuestionnaireResponse
    RelatedPerson RequestGroup ResearchDefinition ResearchElementDefinition ResearchStudy
    ResearchSubject RiskAssessment RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest
    Slot Specimen SpecimenDefinition StructureDefinition StructureMap Subscription Substance
    SubstanceNucleicAcid SubstancePolymer SubstanceProtein SubstanceReferenceInformation
    SubstanceSourceMaterial SubstanceSpecification SupplyDelivery SupplyRequest Task
    TerminologyCapabilities TestReport TestScript ValueSet VerificationResult VisionPrescription
    """.split()  # noqa: SIM905
)

VIEWS: dict[str, type[msgspec.Struct]] = {
    "Patient": Patient,
    "Encounter": Encounter,
    "Condition": Condition,
    "Observation": Observation,
    "MedicationRequest": MedicationRequest,
    "Procedure": Procedure,
    "DocumentReference": DocumentReference,
    "DiagnosticReport": DiagnosticReport,
    "ImagingStudy": ImagingStudy,
    "Binary": Binary,
}
SKIPPED: dict[str, type[msgspec.Struct]] = {
    name: msgspec.defstruct(name, [], tag_field="resourceType", gc=False) for name in SKIPPED_TYPES
}
#: The resource type of every class of the union.
TYPE_OF: dict[type, str] = {cls: name for name, cls in (*VIEWS.items(), *SKIPPED.items())}

Resource = Union[tuple(TYPE_OF)]  # type: ignore[valid-type]  # noqa: UP007


# ---------------------------------------------------------------------------------- bundle


class BundleEntry(msgspec.Struct, gc=False):
    """An entry; other keys (``request``, ``search``, ...) are skipped, as by ``load_bundle``."""

    fullUrl: Str = None
    resource: Resource | None = None  # type: ignore[valid-type]


class Bundle(msgspec.Struct, gc=False):
    """The bundle around the entries; other keys are skipped, as by ``load_bundle``.

    What is skipped here and in the skipped resources is checked for nesting depth by the
    caller; nothing of it is read.
    """

    resourceType: Any = None
    entry: list[BundleEntry] | None = None


BUNDLE = msgspec.json.Decoder(Bundle)
