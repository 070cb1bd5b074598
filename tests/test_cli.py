"""`fhirhouse run`: the same pipeline without Snakemake."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE, make_bundle, write_bundles

from fhirhouse import SILVER_TABLES
from fhirhouse.cli import main
from fhirhouse.layout import Layout
from fhirhouse.store.delta import read_table


def test_run_lands_builds_and_prints_a_summary(tmp_path, capsys):
    root = tmp_path / "lake"
    assert main(["run", "--root", str(root), "--source", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "bronze: 6 files in 3 cohorts (6 new, 0 changed)" in out
    for table in SILVER_TABLES:
        assert table in out
    patient_line = next(line for line in out.splitlines() if line.startswith("patient "))
    assert patient_line.split()[1:4] == ["2", "2", "2"]
    assert read_table(root / "silver" / "patient").num_rows == 6
    marker = json.loads((root / "_markers/silver/cohort=A.json").read_text())
    assert marker["tables"]["observation"]["rows"] > 0 and marker["layer"] == "silver"

    assert main(["run", "--root", str(root), "--source", str(SAMPLE), "--only", "B"]) == 0
    out = capsys.readouterr().out
    assert "(0 new, 0 changed)" in out and "[1/1] cohort B" in out


def test_run_new_drop_into_named_cohort(tmp_path, capsys):
    src = write_bundles(tmp_path / "src", {"a.json": make_bundle("p1")})
    root = tmp_path / "lake"
    assert main(["run", "--root", str(root), "--source", str(src)]) == 0
    write_bundles(src, {"b.json": make_bundle("p2")})
    assert main(["run", "--root", str(root), "--source", str(src), "--land-into", "D"]) == 0
    assert "cohort D" in capsys.readouterr().out
    assert (root / "bronze/fhir/cohort=D/b.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only", "Z"], "no such cohort in Bronze: Z"),
        (["--land-into", "../evil"], "invalid configuration at land_into"),
        (["--cohorts", "0"], "invalid configuration at cohorts"),
    ],
)
def test_run_errors_are_clear(tmp_path, capsys, args, message):
    code = main(["run", "--root", str(tmp_path / "lake"), "--source", str(SAMPLE), *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_run_without_any_data_says_what_to_do(tmp_path, capsys):
    assert main(["run", "--root", str(tmp_path / "lake"), "--no-source"]) == 2
    assert "set `source`" in capsys.readouterr().err


def test_run_checks_and_history(tmp_path, capsys):
    import polars as pl

    from fhirhouse.store.history import read_run_history

    root = tmp_path / "lake"
    assert main(["run", "--root", str(root), "--source", str(SAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "cohort A: 2 bundles (2 parsed), checks passed" in out
    assert "whole-table checks failing" in out and "min_rows<50(=6)" in out
    assert "cohort B: 2 bundles (2 parsed), checks passed; gold 6 rows (+6 ~0 -0)" in out
    history = read_run_history(Layout.of(root).run_history)
    assert history.filter(pl.col("rule") == "(invocation)")["status"].to_list() == ["success"]
    # land; bronze, silver and gold of each cohort; whole-table checks; the manifest
    assert history.filter(pl.col("rule") != "(invocation)").height == 1 + 3 * 3 + 2
    assert main(["history", "--root", str(root)]) == 0
    assert " success " in capsys.readouterr().out


def test_run_fail_policy_stops_with_the_failing_rule(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"root: {tmp_path / 'lake'}\nsource: {SAMPLE}\nchecks:\n  on_failure: fail\n")
    assert main(["run", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    # the documented default (checks.silver: {patient: {min_rows: 50}}), as under Snakemake
    assert "check failed: patient (table) min_rows>=50: 6 rows (minimum 50)" in err
    from fhirhouse.status import render_status

    status = render_status(Layout.of(tmp_path / "lake"))
    assert "whole-table checks failed in the last run: check failed: patient" in status
