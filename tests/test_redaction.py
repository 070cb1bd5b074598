"""PHI-safe redaction (spec section 7.5)."""

from __future__ import annotations

import hashlib

from fhirhouse.redact import redact


def test_stable_prefixed_and_irreversible():
    name = "Ada200_Lovelace100_f9e653ae-d7ed-5487-8c79-a6c42312de3e.json"
    ref = redact(name)
    assert ref == redact(name) and ref.startswith("ref:") and len(ref) == 14
    assert ref == "ref:" + hashlib.sha256(name.encode()).hexdigest()[:10]
    assert "Ada" not in ref and "f9e653ae" not in ref


def test_distinct_inputs_differ_and_empty_is_none():
    assert redact("a.json") != redact("b.json")
    assert redact("") == redact(None) == "ref:none"
