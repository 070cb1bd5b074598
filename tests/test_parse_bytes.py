"""parse_bytes: the bytes -> ParseResult entry point, its fast path, its reasons, its limits."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from conftest import FIXTURES, b64, entry, make_bundle, require_shared

from fhirhouse.fhir import (
    MAX_DEPTH,
    InvalidJSONError,
    NestingTooDeepError,
    NotABundleError,
    RejectedBundleError,
    json_error_reason,
    parse_bytes,
)
from fhirhouse.fhir import fast as fast_path
from fhirhouse.fhir.load import load_bundle, nesting_exceeds
from fhirhouse.fhir.parser import parse_bundle
from fhirhouse.synth.builders import (
    attachment,
    binary,
    claim,
    claim_item,
    coding,
    component,
    concept,
    condition,
    document_reference,
    ecg_report,
    genomic_report,
    imaging_series,
    imaging_study,
    medication_request,
    observation,
    period,
    procedure,
    quantity,
    ref,
)

# ------------------------------------------------------------------------------ helpers


def dict_path(data: bytes) -> Any:
    """The outcome of the dict path (load_bundle + parse_bundle), reasons as jobs words them."""
    try:
        out = parse_bundle(load_bundle(data))
    except orjson.JSONDecodeError as exc:
        return ("rejected", json_error_reason(data, exc))
    except RejectedBundleError as exc:
        return ("rejected", type(exc).__name__, str(exc))
    return out.records, [(i.resource_type, i.reason) for i in out.issues]


def outcome(data: bytes) -> Any:
    try:
        out = parse_bytes(data)
    except InvalidJSONError as exc:
        return ("rejected", str(exc))
    except RejectedBundleError as exc:
        return ("rejected", type(exc).__name__, str(exc))
    return out.records, [(i.resource_type, i.reason) for i in out.issues]


def _full_bundle() -> dict:
    """One of every record kind, skipped resources in between, a note by Binary url."""
    bundle = make_bundle("p-001", n_enc=2)
    p, enc = "p-001", "p-001-enc-0"
    extra = [
        claim("claim-1", items=[claim_item(1)]),
        condition(
            "cond-1",
            p,
            enc,
            code=concept("44054006", "Diabetes"),
            clinical=concept("active"),
            onset="2020-01-01T00:00:00Z",
        ),
        medication_request(
            "med-1",
            p,
            enc,
            code=concept("123", "Drug"),
            status="active",
            dosage={"text": "daily"},
        ),
        {"resourceType": "ExplanationOfBenefit", "id": "eob-1", "total": [{"amount": 1.5}]},
        procedure(
            "proc-1",
            p,
            enc,
            code=concept(text="Procedure"),
            performed=period("2020-01-01T00:00:00Z"),
        ),
        observation(
            "ecg-hr",
            p,
            code=concept("8867-4"),
            value=quantity(72.4),
            components=[component(concept(text="x"), quantity(1, "u"))],
        ),
        ecg_report(
            "ecg-1",
            p,
            enc,
            code=concept(display="Electrocardiogram"),
            results=["ecg-hr", "claim-1"],
            waveform="Binary/wave-1",
        ),
        genomic_report(
            "gen-1",
            p,
            code=concept(display="Genetic panel"),
            conclusion="Pathogenic variant found",
            extension=[{"url": "family-history", "valueBoolean": False}],
        ),
        imaging_study(
            "img-1",
            p,
            n_series=2,
            series=[imaging_series(coding("MR"), coding("1", "Knee"))],
            identifier={"value": "urn:oid:1.2.3"},
        ),
        binary("note-bin", b64("# Plan\nrest\n")),
        document_reference("note-by-url", p, content=attachment(url="Binary/note-bin")),
        {"resourceType": "Provenance", "id": "prov-1", "target": [ref(p)]},
    ]
    bundle["entry"] += [entry(r) for r in extra]
    return bundle


def _data(doc: Any) -> bytes:
    return json.dumps(doc, indent=1).encode()


# ------------------------------------------------------------------------------ results


def test_fast_path_takes_every_real_bundle_and_matches_the_dict_path():
    require_shared()
    for path in sorted(FIXTURES.glob("*.json")):
        data = path.read_bytes()
        fast = fast_path.parse(data)  # raises NotFast if the views do not fit
        assert outcome(data) == dict_path(data)
        assert (fast.records, [(i.resource_type, i.reason) for i in fast.issues]) == dict_path(data)


def test_hand_made_bundle_every_kind_matches_the_dict_path():
    data = _data(_full_bundle())
    fast = fast_path.parse(data)
    assert outcome(data) == dict_path(data)
    counts = {t: len(v) for t, v in fast.records.items()}
    assert counts == {
        "patient": 1,
        "encounter": 2,
        "condition": 1,
        "observation": 3,
        "medication_request": 1,
        "procedure": 1,
        "soap_note": 3,
        "ecg_metadata": 1,
        "imaging_study": 1,
        "genomic_report": 1,
    }
    ecg = fast.records["ecg_metadata"][0]
    assert ecg["heart_rate_bpm"] == 72 and ecg["waveform_binary_id"] == "wave-1"
    assert fast.records["genomic_report"][0]["family_history_flag"] is False
    note = fast.records["soap_note"][-1]
    assert note["binary_id"] == "note-bin" and note["has_plan"]


def test_odd_shapes_go_the_dict_path_with_the_same_outcome():
    bundle = _full_bundle()
    odd = [
        ("participant is an int", lambda b: b["entry"][1]["resource"].update(participant=5)),
        ("id is an int", lambda b: b["entry"][2]["resource"].update(id=7)),
        ("unknown field", lambda b: b["entry"][2]["resource"].update(note=[{"text": "x"}])),
        ("unknown type", lambda b: b["entry"].append(entry({"resourceType": "Foo", "id": "f"}))),
        ("no resourceType", lambda b: b["entry"].append({"resource": {"id": "x"}})),
        ("entry not an object", lambda b: b["entry"].append("entry")),
        (
            "value beyond 64 bits",
            lambda b: b["entry"][2]["resource"]["valueQuantity"].update(value=2**70),
        ),
    ]
    for label, mutate in odd:
        doc = json.loads(json.dumps(bundle))
        mutate(doc)
        data = _data(doc)
        with pytest.raises(fast_path.NotFast):
            fast_path.parse(data)
        assert outcome(data) == dict_path(data), label


def test_a_resource_type_given_twice_is_typed_like_the_dict_path():
    good = _data(make_bundle(n_enc=1)).replace(
        b'"resourceType": "Observation"', b'"resourceType": "Observation", "resourceType": "Claim"'
    )
    assert outcome(good) == dict_path(good)
    assert outcome(good)[0]["observation"] == []  # the last resourceType wins: a Claim


# ------------------------------------------------------------------------------ source_entry


@pytest.mark.parametrize("path", ["fast", "dict"])
def test_every_record_names_the_entry_it_came_from(path):
    bundle = _full_bundle()
    data = _data(bundle)
    out = fast_path.parse(data) if path == "fast" else parse_bundle(load_bundle(data))
    ids = {
        "patient": "patient_id",
        "encounter": "encounter_id",
        "condition": "condition_id",
        "observation": "observation_id",
        "medication_request": "medication_request_id",
        "procedure": "procedure_id",
        "soap_note": "note_id",
        "ecg_metadata": "ecg_id",
        "imaging_study": "study_id",
        "genomic_report": "report_id",
    }
    seen = 0
    for table, recs in out.records.items():
        for rec in recs:
            resource = bundle["entry"][rec["source_entry"]]["resource"]
            assert resource["id"] == rec[ids[table]]
            seen += 1
    assert seen == 15
    assert out.records["patient"][0]["source_entry"] == 0


def test_source_entry_counts_entries_the_parser_skips():
    bundle = make_bundle(n_enc=1)
    bundle["entry"][1:1] = [
        {"fullUrl": "urn:uuid:nothing"},
        {"resource": {"resourceType": "Claim"}},
    ]
    for out in (parse_bytes(_data(bundle)), parse_bundle(bundle)):
        assert out.records["encounter"][0]["source_entry"] == 3


# ------------------------------------------------------------------------------ reasons


@pytest.mark.parametrize(
    ("data", "error", "reason"),
    [
        (b"", InvalidJSONError, "empty file"),
        (b"  \n\t", InvalidJSONError, "empty file"),
        (b'{"resourceType": "Bundle", "entry": [', InvalidJSONError, "not valid JSON (unexpected"),
        (b"\x89PNG\r\n\x1a\n", InvalidJSONError, "not valid JSON ("),
        (b"[1, 2, 3]", NotABundleError, "top-level JSON is list, not an object"),
        (b'{"entry": []}', NotABundleError, "resourceType is missing"),
        (b'{"resourceType": "Patient"}', NotABundleError, "resourceType is 'Patient', not"),
        (b'{"resourceType": "Bundle", "entry": []}', RejectedBundleError, "Bundle has no Patient"),
    ],
)
def test_whole_file_reasons(data, error, reason):
    with pytest.raises(error) as info:
        parse_bytes(data)
    assert str(info.value).startswith(reason)
    assert isinstance(info.value, RejectedBundleError)


def test_invalid_json_reason_says_where_without_quoting():
    data = _data(make_bundle("p-secret-id"))[:-40]
    with pytest.raises(InvalidJSONError) as info:
        parse_bytes(data)
    reason = str(info.value)
    assert reason.startswith("not valid JSON (") and " at line " in reason
    assert "p-secret-id" not in reason


@pytest.mark.parametrize("where", ["fullUrl", "resourceType"])
def test_a_string_the_shell_reads_that_is_not_utf8_is_invalid_json(where):
    """It used to escape load_bundle as UnicodeDecodeError and stop the parse job."""
    data = _data(make_bundle(n_enc=1))
    if where == "fullUrl":
        data = data.replace(b"urn:uuid:p-001-enc-0", b"urn:uuid:\xff", 1)
    else:
        data = data.replace(b'"Observation"', b'"Obs\xffervation"', 1)
    with pytest.raises(orjson.JSONDecodeError):
        load_bundle(data)
    with pytest.raises(InvalidJSONError, match=r"^not valid JSON \(str is not valid UTF-8"):
        parse_bytes(data)


# ------------------------------------------------------------------------------ nesting


def _nest(kind: str, levels: int) -> bytes:
    """JSON text of ``levels`` nested arrays or objects around a number."""
    if kind == "array":
        return b"[" * levels + b"1" + b"]" * levels
    return b'{"a":' * levels + b"1" + b"}" * levels


def _deep_bundle(where: str, kind: str, depth: int) -> bytes:
    """A valid bundle whose deepest value sits ``depth`` levels down (the bundle object is 1)."""
    bundle = make_bundle(n_enc=1)
    if where == "bundle":  # bundle (1) -> value
        bundle["meta"], levels = "DEEP", depth - 1
    elif where == "entry":  # bundle, entry list, entry (3) -> value
        bundle["entry"][1]["request"], levels = "DEEP", depth - 3
    else:  # bundle, entry list, entry, resource (4) -> value
        bundle["entry"].append(entry({"resourceType": where, "id": "deep", "extension": "DEEP"}))
        levels = depth - 4
    data = orjson.dumps(bundle).replace(b'"DEEP"', _nest(kind, levels))
    assert nesting_exceeds(data, depth - 1) and not nesting_exceeds(data, depth)
    return data


WHERE = ["Observation", "Claim", "bundle", "entry"]


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("kind", ["array", "object"])
def test_nesting_up_to_the_limit_parses(where, kind):
    data = _deep_bundle(where, kind, MAX_DEPTH)
    assert outcome(data) == dict_path(data)


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 994, 1100, 20_000])
def test_nesting_beyond_the_limit_is_rejected_with_a_reason(where, kind, depth):
    data = _deep_bundle(where, kind, depth)
    for parse in (parse_bytes, lambda d: parse_bundle(load_bundle(d))):
        with pytest.raises(NestingTooDeepError) as info:
            parse(data)
        assert str(info.value) == f"JSON nested deeper than {MAX_DEPTH} levels"
        assert isinstance(info.value, RejectedBundleError)


def test_nesting_of_a_bare_document_is_rejected_too():
    for data in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 3000 + b"1" + b"}" * 3000):
        with pytest.raises(NestingTooDeepError):
            parse_bytes(data)


def test_brackets_in_strings_do_not_count():
    bundle = make_bundle(n_enc=1)
    text = '[[[{{{ "\\" ]]]' * 500
    bundle["entry"][1]["resource"]["status"] = text
    bundle["entry"].append(entry({"resourceType": "Claim", "id": "c", "text": text}))
    data = orjson.dumps(bundle)
    assert not nesting_exceeds(data)
    assert outcome(data) == dict_path(data)


def test_a_truncated_deep_document_is_invalid_json_not_too_deep():
    data = _deep_bundle("Claim", "array", 50)[:-200]
    with pytest.raises(InvalidJSONError, match=r"^not valid JSON"):
        parse_bytes(data)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'["[[[", "]]]]]]", {"k": "}}"}]', 2),
        (b'["\\"[", ["\\\\"], "\\\\\\"]"]', 2),
        (b'[" \\n\\"[[[[ \\u005c\\" ]"]', 1),
    ],
)
def test_nesting_exceeds_counts_brackets_outside_strings(text, depth):
    json.loads(text)  # valid JSON, as the check requires
    assert not nesting_exceeds(text, depth)
    assert nesting_exceeds(text, depth - 1) == (depth > 0)
