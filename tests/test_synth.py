"""The synthetic bundle generator: determinism, reference integrity, proportions, coverage."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import orjson
import polars as pl
import pytest
from conftest import build_lake

from fhirhouse import SILVER_TABLES, jobs
from fhirhouse.cli import main
from fhirhouse.gold.encounter_summary import GOLD_SCHEMA
from fhirhouse.store.delta import read_table
from fhirhouse.synth import SynthProfile, generate, write_corpus


def test_deterministic_and_prefix_stable():
    first = list(generate(4, seed=7))
    assert first == list(generate(4, seed=7))
    assert list(generate(2, seed=7)) == first[:2]  # patient i depends only on (seed, i)
    other = list(generate(4, seed=8))
    assert all(a[1] != b[1] for a, b in zip(first, other, strict=True))
    assert len({name for name, _, _ in first}) == 4


def _references(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if (key == "reference" and isinstance(value, str)) or (
                key == "url" and isinstance(value, str) and value.startswith("urn:uuid:")
            ):
                found.append(value)
            else:
                _references(value, found)
    elif isinstance(node, list):
        for item in node:
            _references(item, found)
    return found


def test_every_reference_resolves_inside_its_bundle():
    for _, data, _ in generate(3, seed=1):
        bundle = orjson.loads(data)
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        full_urls = {e["fullUrl"] for e in bundle["entry"]}
        refs = _references(bundle, [])
        assert len(refs) > 1000
        dangling = [r for r in refs if r not in full_urls]
        assert not dangling, dangling[:3]
        kinds = Counter(e["resource"]["resourceType"] for e in bundle["entry"])
        assert kinds["Patient"] == 1


def test_proportions_follow_the_profile():
    n = 12
    counts: Counter[str] = Counter()
    size = 0
    for _, data, _ in generate(n, seed=3):
        size += len(data)
        for e in orjson.loads(data)["entry"]:
            counts[e["resource"]["resourceType"]] += 1
    p = SynthProfile()
    assert counts["Encounter"] / n == pytest.approx(p.encounters, rel=0.05)
    assert counts["MedicationRequest"] / n == pytest.approx(p.medication_requests, rel=0.05)
    assert counts["Observation"] / n == pytest.approx(524, rel=0.15)  # Coherent: 670k / 1,278
    assert counts["DocumentReference"] == counts["Encounter"]  # one note per encounter
    for unused in ("Claim", "ExplanationOfBenefit", "Immunization", "CarePlan", "Provenance"):
        assert counts[unused] > 0
    assert size / n / 2**20 == pytest.approx(3.44, rel=0.15)  # Coherent: 4.6 GB / 1,280 files
    small = SynthProfile(encounters=10, claim_items=1)
    assert sum(len(d) for _, d, _ in generate(3, seed=3, profile=small)) < size / n


@pytest.fixture(scope="module")
def generated_build(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    summary = write_corpus(base / "src", 10, seed=5)
    return build_lake(base / "lake", base / "src"), summary


def test_the_corpus_exercises_every_silver_table(generated_build):
    root, summary = generated_build
    layout = jobs.Layout.of(root)
    for table in SILVER_TABLES:
        assert read_table(layout.silver_table(table)).num_rows > 0, table
    notes = pl.from_arrow(read_table(layout.silver_table("soap_note")))
    assert (notes["binary_id"] != "").any() and (notes["binary_id"] == "").any()
    assert (
        notes.select(pl.all_horizontal("has_subjective", "has_assessment", "has_plan"))
        .to_series()
        .all()
    )
    imaging = pl.from_arrow(read_table(layout.silver_table("imaging_study")))
    assert summary["dicom_files"] > 0
    assert imaging["dicom_extracted"].sum() == summary["dicom_files"]
    ecg = pl.from_arrow(read_table(layout.silver_table("ecg_metadata")))
    assert ecg["heart_rate_bpm"].null_count() == 0 and ecg["rhythm"].null_count() == 0
    conditions = pl.from_arrow(read_table(layout.silver_table("condition")))
    assert conditions["abatement_date"].is_not_null().any()
    meds = pl.from_arrow(read_table(layout.silver_table("medication_request")))
    assert set(meds["status"]) == {"active", "stopped"}


def test_the_corpus_exercises_every_gold_column(generated_build):
    root, _ = generated_build
    gold = pl.from_arrow(read_table(jobs.Layout.of(root).gold_table))
    for field in GOLD_SCHEMA:
        col = gold[field.name]
        if field.type.num_fields and str(field.type).startswith("struct"):
            for member in col.struct.fields:
                assert col.struct.field(member).is_not_null().any(), (field.name, member)
        elif str(field.type).startswith("list"):
            assert (col.list.len() > 0).any(), field.name
        elif col.dtype == pl.Boolean:
            assert col.any(), field.name
        else:
            assert col.is_not_null().any(), field.name


def test_synth_command(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["synth", "--patients", "2", "--seed", "9", "--out", str(out), "--quiet",
                 "--set", "encounters=5", "--set", "dicom_share=1"]) == 0  # fmt: skip
    assert "wrote 2 bundles" in capsys.readouterr().out
    bundles = sorted(out.glob("*.json"))
    assert len(bundles) == 2 and list((out / "dicom").glob("*.dcm"))
    before = {p: p.stat().st_mtime_ns for p in bundles}
    assert main(["synth", "--patients", "2", "--seed", "9", "--out", str(out), "--quiet",
                 "--set", "encounters=5", "--set", "dicom_share=1"]) == 0  # fmt: skip
    assert {p: p.stat().st_mtime_ns for p in bundles} == before  # same bytes: untouched
    assert json.loads(Path(bundles[0]).read_text())["resourceType"] == "Bundle"
    assert main(["synth", "--patients", "2", "--out", str(out), "--set", "x=1"]) == 2
    assert main(["synth", "--patients", "0", "--out", str(out)]) == 2
