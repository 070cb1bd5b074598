"""Snakemake behaviour end to end: fresh build to Gold, no-op rerun, per-cohort reruns,
backfill, single-table rebuild, new drops, existing Bronze trees, DAG rendering, PHI-free
logs."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest
from conftest import SAMPLE, bundle_identifiers, requires_dot, snakemake

from fhirhouse import SILVER_TABLES, jobs
from fhirhouse.cli import main
from fhirhouse.layout import Layout
from fhirhouse.status import cohort_statuses
from fhirhouse.store.delta import table_version
from fhirhouse.store.history import read_run_history

pytestmark = pytest.mark.workflow


def markers(root: Path) -> dict[str, dict]:
    """Job markers by path (the folder-state files under bronze/_state are not job outputs)."""
    base = root / "_markers"
    return {
        str(p.relative_to(base)): json.loads(p.read_text())
        for p in base.rglob("*.json")
        if "_state" not in p.parts
    }


def versions(root: Path) -> dict[str, int | None]:
    return {t: table_version(jobs.Layout.of(root).silver_table(t)) for t in SILVER_TABLES}


def partition_files(root: Path, cohort: str) -> set[str]:
    return {str(p.relative_to(root)) for p in (root / "silver").rglob(f"cohort={cohort}/*.parquet")}


def reran(before: dict[str, dict], after: dict[str, dict]) -> set[str]:
    """Markers rewritten between two snapshots."""
    return {k for k in after if k not in before or after[k]["run_id"] != before[k]["run_id"]}


@pytest.fixture
def built(tmp_path, sample_source):
    root = tmp_path / "lake"
    snakemake(tmp_path, "--cores", "4", config={"root": root, "source": sample_source})
    return tmp_path, root, sample_source


@pytest.fixture(scope="module")
def built_once(tmp_path_factory):
    """One build shared by the tests that only read it (DAG, logs, history, report)."""
    workdir = tmp_path_factory.mktemp("built_once")
    source = shutil.copytree(SAMPLE, workdir / "source")
    root = workdir / "lake"
    snakemake(workdir, "--cores", "4", config={"root": root, "source": source})
    return workdir, root, source


def test_fresh_build_then_rerun_is_a_noop(built):
    workdir, root, source = built
    assert sorted(p.name for p in (root / "bronze/fhir").iterdir()) == [
        "cohort=A",
        "cohort=B",
        "cohort=C",
    ]
    for cohort in "ABC":
        m = json.loads((root / f"_markers/silver/cohort={cohort}.json").read_text())
        assert {"tables", "run_id", "written_at"} <= set(m) and m["full"]
        for table in SILVER_TABLES:
            assert (root / "silver" / table / "_delta_log").is_dir()
            assert {"delta_version", "rows", "committed"} <= set(m["tables"][table])
    manifest = json.loads((root / "bronze/_metadata/manifest.json").read_text())
    assert manifest["file_count"] == 6 and manifest["cohorts"] == {"A": 2, "B": 2, "C": 2}
    assert (root / "gold/encounter_summary/_delta_log").is_dir()
    corpus = json.loads((root / "gold/_metadata/corpus_manifest.json").read_text())
    assert corpus["contract_version"] == "1.1.0" and corpus["row_count"] == 18
    assert set(corpus["cohorts"]) == {"A", "B", "C"}
    for cohort in "ABC":
        assert (root / f"_markers/gold/cohort={cohort}.json").exists()
    before_m, before_v = markers(root), versions(root)
    proc = snakemake(workdir, "--cores", "4", config={"root": root, "source": source})
    assert "Nothing to be done" in proc.stdout + proc.stderr
    assert markers(root) == before_m and versions(root) == before_v


def test_changing_one_bundle_reruns_only_its_cohort(built):
    workdir, root, source = built
    b_file = sorted(source.iterdir())[1]  # file 1 of the sorted names lands in cohort B
    assert (root / "bronze/fhir/cohort=B" / b_file.name).exists()
    bundle = json.loads(b_file.read_text())
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    patient["gender"] = "other"
    b_file.write_text(json.dumps(bundle))
    before_m, files_a, files_c = (
        markers(root),
        partition_files(root, "A"),
        partition_files(root, "C"),
    )
    snakemake(workdir, "--cores", "4", config={"root": root, "source": source})
    after = markers(root)
    changed = reran(before_m, after)
    assert "gold/manifest.json" in changed
    changed -= {"bronze/landing.json", "gold/manifest.json"}
    assert changed == {"bronze/cohort=B.json", "silver/cohort=B.json", "gold/cohort=B.json"}
    silver = after["silver/cohort=B.json"]
    assert silver["parsed_files"] == 1 and not silver["full"]  # one bundle parsed, not two
    assert silver["tables"]["patient"]["updated"] == 1
    assert silver["tables"]["encounter"]["committed"] is False
    assert after["gold/cohort=B.json"]["updated"] == 3  # patient_gender on B's 3 encounters
    assert after["gold/cohort=B.json"]["recomputed"] == 3  # that patient's encounters only
    assert partition_files(root, "A") == files_a and partition_files(root, "C") == files_c


def test_backfill_one_cohort_as_documented(built):
    workdir, root, source = built
    before, v_before = markers(root), versions(root)
    # README: snakemake <root>/_markers/gold/cohort=B.json --forcerun silver
    snakemake(
        workdir,
        str(root / "_markers/gold/cohort=B.json"),
        "--cores",
        "4",
        "--forcerun",
        "silver",
        config={"root": root, "source": source},
    )
    changed = reran(before, markers(root))
    assert changed == {"silver/cohort=B.json", "gold/cohort=B.json"}  # Gold follows at once
    assert versions(root) == v_before  # same bundles: the rewrite commits nothing


def test_one_table_of_one_cohort_rebuilds_alone(built):
    workdir, root, source = built
    before, v_before = markers(root), versions(root)
    target = root / "_markers/silver/observation/cohort=B.json"
    snakemake(
        workdir,
        str(target),
        "--cores",
        "2",
        "--forcerun",
        "silver_table",
        config={"root": root, "source": source},
    )
    assert reran(before, markers(root)) == {"silver/observation/cohort=B.json"}
    assert versions(root) == v_before  # same cached rows: nothing to commit
    log = (root / "_logs/silver/observation/cohort=B.log").read_text()
    assert "rewritten from the parse cache" in log


def test_new_drop_lands_in_its_own_cohort(built, tmp_path):
    workdir, root, source = built
    text = sorted(source.iterdir())[0].read_text()
    for e in json.loads(text)["entry"]:  # new ids everywhere, references included
        rid = str(e["resource"]["id"])
        text = text.replace(f'"{rid}"', f'"drop-{rid}"').replace(f':{rid}"', f':drop-{rid}"')
    (source / "zz_new_drop.json").write_text(text)
    before = markers(root)
    snakemake(workdir, "--cores", "4", config={"root": root, "source": source, "land_into": "D"})
    assert [p.name for p in (root / "bronze/fhir/cohort=D").iterdir()] == ["zz_new_drop.json"]
    changed = reran(before, markers(root)) - {"bronze/landing.json", "gold/manifest.json"}
    assert changed and all("cohort=D" in k for k in changed)
    assert markers(root)["gold/cohort=D.json"]["inserted"] == 3
    assert markers(root)["silver/cohort=D.json"]["tables"]["patient"]["inserted"] == 1


def test_existing_bronze_tree_without_source(tmp_path, sample_source):
    root = tmp_path / "lake"
    for i, f in enumerate(sorted(sample_source.iterdir())):
        dst = root / "bronze/fhir" / f"cohort={'xy'[i % 2]}" / f.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dst)
    snakemake(tmp_path, "--cores", "2", config={"root": root, "source": "null"})
    assert (root / "_markers/silver/cohort=x.json").exists()
    assert (root / "_markers/silver/cohort=y.json").exists()


@requires_dot
def test_dag_and_rulegraph_render(built_once):
    workdir, root, source = built_once
    cfg = {"root": root, "source": source}
    for kind in ("--dag", "--rulegraph"):
        dot_src = snakemake(workdir, kind, config=cfg).stdout
        svg = subprocess.run(
            ["dot", "-Tsvg"], input=dot_src, capture_output=True, text=True, check=True
        ).stdout
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
        if kind == "--rulegraph":
            for rule in ("land", "bronze", "silver", "gold", "gold_manifest"):
                assert f'label = "{rule}"' in dot_src


def test_invalid_config_is_refused(tmp_path, sample_source):
    proc = snakemake(
        tmp_path,
        "-n",
        config={"root": tmp_path / "lake", "source": sample_source, "land_into": "../x"},
        check=False,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "error: invalid configuration at land_into: '../x' is not valid" in out


def test_logs_and_markers_carry_no_identifiers(built_once):
    workdir, root, source = built_once
    secrets = bundle_identifiers(source)
    logged = [p for p in (root / "_logs").rglob("*.log")]
    logged += list((root / "_markers").rglob("*.json"))
    logged += list((root / "bronze/_quarantine").rglob("*.json"))
    logged += list((workdir / ".snakemake" / "log").glob("*.log"))
    logged += [p for p in (root / "_checks").rglob("*") if p.is_file()]
    assert len(logged) > 40
    texts = {p.name: p.read_text() for p in logged}
    texts["run_history"] = str(read_run_history(Layout.of(root).run_history).to_dicts())
    texts["ingest_log"] = pl.read_delta(str(root / "silver/ingest_log")).write_csv()
    for name, text in texts.items():
        leaks = [s for s in secrets if s in text]
        assert not leaks, f"{name} leaks identifiers"


def break_cohort_b(source: Path) -> None:
    """Drop the gender of the patient in file 1 of the sorted names (it lands in cohort B)."""
    path = sorted(source.iterdir())[1]
    bundle = json.loads(path.read_text())
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            del e["resource"]["gender"]
    path.write_text(json.dumps(bundle))


def policy_config(tmp_path: Path, root: Path, source: Path, policy: str) -> Path:
    cfg = tmp_path / f"{policy}.yaml"
    small = {t: {"min_rows": 1} for t in ("patient", "encounter", "condition", "observation")}
    cfg.write_text(
        json.dumps(
            {
                "root": str(root),
                "source": str(source),
                "checks": {"on_failure": policy, "silver": {**small, "soap_note": {"min_rows": 1}}},
            }
        )
    )
    return cfg


def test_failing_check_under_fail_blocks_only_that_cohorts_gold(tmp_path, sample_source):
    break_cohort_b(sample_source)
    root = tmp_path / "lake"
    proc = snakemake(
        tmp_path,
        "--cores",
        "2",
        "--configfile",
        str(policy_config(tmp_path, root, sample_source, "fail")),
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "check failed: patient (cohort=B) non_null:gender: 1 nulls / 2 rows" in out
    assert not (root / "_markers/gold/cohort=B.json").exists()
    assert (root / "_markers/gold/cohort=A.json").exists()
    assert (root / "_markers/gold/cohort=C.json").exists()
    lake = Layout.of(root)
    history = read_run_history(lake.run_history)
    failed = history.filter(pl.col("status") == "failed")
    rows = {(r["rule"], r["cohort"]) for r in failed.iter_rows(named=True)}
    assert ("silver", "B") in rows and ("(invocation)", None) in rows
    msg = failed.filter(pl.col("rule") == "silver")["message"][0]
    assert "non_null:gender" in msg
    states = {s.cohort: s for s in cohort_statuses(lake)}
    assert states["B"].silver == "failed" and states["B"].gold == "not built"
    assert states["B"].checks == "failed"
    assert states["A"].gold.startswith("built") and states["A"].checks == "passed"
    assert not (root / "_markers/gold/manifest.json").exists()  # nor is the manifest


def test_failing_check_under_warn_is_recorded_and_the_build_goes_on(tmp_path, sample_source):
    break_cohort_b(sample_source)
    root = tmp_path / "lake"
    cfg = policy_config(tmp_path, root, sample_source, "warn")
    snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg))
    assert (root / "_markers/gold/cohort=B.json").exists()
    result = json.loads((root / "_checks/silver/patient/cohort=B.json").read_text())
    assert result["passed"] is False and result["failed_checks"] == "nulls_in:gender(1)"
    assert "**FAIL**" in (root / "_checks/silver/cohort=B.md").read_text()
    log = pl.read_delta(str(root / "silver/ingest_log"))
    assert log.height == 10
    assert log.filter(pl.col("table") == "patient")["failed_checks"][0] == "nulls_in:gender(1)"


def test_run_history_has_a_row_per_job(built_once):
    _, root, _ = built_once
    history = read_run_history(Layout.of(root).run_history)
    jobs_rows = history.filter(pl.col("rule") != "(invocation)")
    assert jobs_rows["status"].unique().to_list() == ["success"]
    assert jobs_rows["run_id"].n_unique() == 1
    rules = set(jobs_rows["rule"])
    assert rules == {"land", "bronze", "silver", "gold", "gold_manifest"}
    assert jobs_rows.height == 1 + 3 * 3 + 1  # every step but `all`
    silver = jobs_rows.filter((pl.col("rule") == "silver") & (pl.col("cohort") == "A"))
    assert silver["tables"][0].to_list() == list(SILVER_TABLES)
    assert json.loads(silver["delta_versions"][0])["patient"] >= 1
    assert set(history.filter(pl.col("rule") == "(invocation)")["status"]) == {"success"}


def test_status_and_history_commands(built, capsys):
    _, root, _ = built
    assert main(["status", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[2:5]}
    assert set(rows) == {"A", "B", "C"}
    assert all("stale" not in r and "built (2 files)" in r for r in rows.values())
    assert "whole-table checks failing:" in out and "min_rows<50(=6)" in out
    assert "gold.encounter_summary: 18 rows" in out
    for f in (root / "bronze/fhir/cohort=B").iterdir():
        f.write_bytes(f.read_bytes() + b"\n")  # changed in Bronze, not by a landing
    states = {s.cohort: s for s in cohort_statuses(Layout.of(root))}
    assert states["B"].bronze == "damaged (2 changed, 0 gone since landing)"
    assert states["B"].gold.startswith("stale")
    assert states["A"].bronze.startswith("built")
    assert main(["history", "--root", str(root), "--last", "1", "--jobs"]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[1].split()
    assert head[3] == "success" and head[4] == "11" and head[5] == "0"
    assert "silver" in out and "gold_manifest" in out


def embedded_pages(report_html: str) -> dict[str, str]:
    """The HTML pages a Snakemake report embeds as base64 data URIs, by file name."""
    found = re.findall(
        r"data:text/html;charset=utf8;filename=([^;]+);base64,([A-Za-z0-9+/=]+)", report_html
    )
    return {name: base64.b64decode(data).decode("utf-8") for name, data in found}


def test_report_has_description_rulegraph_and_every_page(built_once):
    workdir, root, source = built_once
    out = workdir / "report.html"
    snakemake(workdir, "--report", str(out), config={"root": root, "source": source})
    text = out.read_text()
    assert "fhirhouse builds a local medallion lakehouse" in text
    assert "gold_manifest" in text and "bronze" in text  # the rule graph
    pages = embedded_pages(text)
    assert set(pages) == {f"silver_{t}.html" for t in SILVER_TABLES} | {
        "gold_encounter_summary.html"
    }
    for table in SILVER_TABLES:
        page = pages[f"silver_{table}.html"]
        for section in ("Rows per cohort", "Checks", "Schema", "Sample rows"):
            assert f"<h2>{section}</h2>" in page, (table, section)
        assert "whole table:" in page and "cohort B:" in page
    patient = pages["silver_patient.html"]
    sample = patient[patient.index("<h2>Sample rows</h2>") :]
    assert sample.count("<tr>") == 1 + 5  # header + five rows
    assert "min_rows&gt;=50" in patient and "FAIL" in patient
    gold = pages["gold_encounter_summary.html"]
    for section in ("Corpus manifest", "Per cohort", "Plots", "Sample encounter", "Gold checks"):
        assert f"<h2>{section}</h2>" in gold
    for plot in ("coverage", "age", "types"):
        figure = gold[gold.index(f'<figure id="plot-{plot}">') :]
        figure = figure[: figure.index("</figure>")]
        svg = figure[figure.index("<svg") :]
        # drawn at its own size (a bare viewBox collapses in the page's flex row), no script
        assert re.match(r'<svg [^>]*width="[\d.]+(pt)?"[^>]*height="[\d.]+(pt)?"', svg)
        assert "<script" not in figure and "<rect" in figure
    card = gold[gold.index("<h2>Sample encounter</h2>") : gold.index("<h2>Gold checks</h2>")]
    assert "SOAP note" in card and "<pre>" in card and "ref:" in card
    assert "contract_schema" in gold


def test_default_config_generates_a_corpus(tmp_path):
    root = tmp_path / "lake"
    cfg_file = tmp_path / "cfg.yaml"  # source: null is the default
    cfg_file.write_text(f"root: {root}\nsynth: {{patients: 6, seed: 3}}\n")
    snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg_file))
    synth = json.loads((root / "_synth/manifest.json").read_text())
    assert synth["patients"] == 6 and synth["seed"] == 3
    assert [len(list((root / f"bronze/fhir/cohort={c}").glob("*.json"))) for c in "ABC"] == [
        2,
        2,
        2,
    ]
    assert (root / "_markers/gold/manifest.json").exists()
    landed_dicom = len(list((root / "bronze/dicom").glob("*.dcm")))
    assert landed_dicom == synth["dicom_files"]
    proc = snakemake(tmp_path, "--cores", "2", "--configfile", str(cfg_file))
    assert "Nothing to be done" in proc.stdout + proc.stderr
