"""A new user's first hour (issue 16): one-line errors that write nothing, a misplaced
`--forcerun` caught, Ctrl-C that stops cleanly, progress and a summary in Snakemake builds,
one name per concept, and counts printed as a person would write them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SAMPLE, _snakemake_command, snakemake

from fhirhouse import preflight
from fhirhouse.cli import _parser, main

pytestmark = pytest.mark.workflow


def files_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*")) if path.exists() else []


# -- item 5: one-line errors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "needles"),
    [
        ({"cohrts": 5}, ["unknown key 'cohrts'", "allowed keys: root,", "cohorts"]),
        ({"cohorts": "abc"}, ["at cohorts", "'abc'", "a count of round-robin cohorts"]),
        ({"checks": "{on_failure: maybe}"}, ["checks.on_failure", "warn, fail"]),
    ],
)
def test_config_errors_are_one_line(tmp_path, config, needles):
    root = tmp_path / "lake"
    proc = snakemake(tmp_path, "-n", config={"root": root, **config}, check=False)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0]
    assert "Traceback" not in proc.stderr and "properties" not in proc.stderr
    assert len(proc.stderr.splitlines()) <= 4  # profile and config notes, the error
    assert not root.exists()


def test_missing_source_folder_is_one_line_before_the_dag(tmp_path):
    root = tmp_path / "lake"
    config = {"root": root, "source": tmp_path / "nope"}
    proc = snakemake(tmp_path, "-n", config=config, check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "InputFunctionException" not in proc.stderr
    assert "Building DAG" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "does not exist" in errors[0], proc.stderr
    assert not root.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["history"],
        ["history", "--table", "patient"],
        ["maintain"],
        ["rollback", "--table", "gold", "--to-version", "1"],
    ],
)
def test_cli_refuses_a_root_that_does_not_exist(tmp_path, capsys, argv):
    root = tmp_path / "typo"
    assert main([*argv, "--root", str(root)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no lakehouse at"), err
    assert not root.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "MISSING"], "--source"),
        (["--source", str(SAMPLE), "--only", "Z"], "no such cohort in Bronze: Z"),
        (["--no-source"], "set `source`"),
        (["--source", str(SAMPLE), "--cohorts", "0"], "invalid configuration at cohorts"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, capsys, args, message):
    root = tmp_path / "lake"
    args = [str(tmp_path / "missing") if a == "MISSING" else a for a in args]
    assert main(["run", "--root", str(root), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert files_under(root) == []


# -- item 3: a misplaced --forcerun argument ---------------------------------------------------


def test_misplaced_forcerun_target_stops_with_the_right_order(tmp_path):
    root = tmp_path / "lake"
    config = {"root": root, "source": SAMPLE}
    snakemake(tmp_path, "--cores", "2", config=config)
    before = {p: p.stat().st_mtime_ns for p in (root / "_markers").rglob("*.json")}
    target = str(root / "_markers/gold/cohort=B.json")
    proc = snakemake(tmp_path, "--cores", "2", "--forcerun", "silver", target, config=config,
                     check=False)  # fmt: skip
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert f"{target!r} is not one" in errors[0]
    assert "snakemake TARGET --forcerun RULE" in errors[0]
    assert "Traceback" not in proc.stderr
    after = {p: p.stat().st_mtime_ns for p in (root / "_markers").rglob("*.json")}
    assert after == before  # nothing ran
    # the right order still works
    snakemake(tmp_path, target, "--forcerun", "silver", "--cores", "2", config=config)


# -- item 9: one name per concept --------------------------------------------------------------


def _help(command: str) -> str:
    sub = next(a for a in _parser()._actions if a.dest == "command")
    return sub.choices[command].format_help()


def test_landing_cohort_has_one_name_everywhere():
    schema = yaml.safe_load((REPO / "schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    assert "land_into" in schema["properties"] and "cohort" not in schema["properties"]
    assert "land_into" in config and "cohort" not in config
    run_help = _help("run")
    assert "--land-into" in run_help and "config `land_into`" in run_help
    assert "--only" in run_help and "--cohort " not in run_help
    assert "`land_into`" in _help("watch")
    rules = "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    assert 'config.get("cohort")' not in rules and 'config["cohort"]' not in rules


def test_run_help_says_what_omitting_source_does():
    text = " ".join(_help("run").split())
    assert "omit to use the existing Bronze tree" not in text
    assert "generated corpus" in text and "fresh root" in text


def test_deprecated_names_still_work_and_warn(tmp_path, capsys):
    root = tmp_path / "lake"
    source = tmp_path / "src"
    source.mkdir()
    for p in SAMPLE.glob("*.json"):
        (source / p.name).write_bytes(p.read_bytes())
    cfg = tmp_path / "old.yaml"
    cfg.write_text(yaml.safe_dump({"root": str(root), "cohort": "D"}))
    assert main(["run", "--config", str(cfg), "--source", str(source), "--cohort", "D"]) == 0
    err = capsys.readouterr().err
    assert "config key 'cohort' is deprecated; use 'land_into'" in err
    assert "--cohort` is deprecated; use --only" in err
    assert sorted(p.name for p in (root / "bronze/fhir").iterdir()) == ["cohort=D"]
    proc = snakemake(tmp_path, "-n", config={"root": root, "cohort": "D"})
    assert "config key 'cohort' is deprecated" in proc.stderr


def test_snakemake_land_into(tmp_path):
    root = tmp_path / "lake"
    snakemake(tmp_path, "--cores", "2", config={"root": root, "source": SAMPLE,
                                                "land_into": "D"})  # fmt: skip
    assert sorted(p.name for p in (root / "bronze/fhir").iterdir()) == ["cohort=D"]


# -- item 4: Ctrl-C stops cleanly ----------------------------------------------------------------


def test_ctrl_c_stops_cleanly_is_recorded_and_a_rerun_finishes(tmp_path, capsys):
    root = tmp_path / "lake"
    config = {"root": root, "source": SAMPLE}
    cmd, env = _snakemake_command(tmp_path, ("--cores", "2"), config)
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # Ctrl-C as a terminal sends it: to the whole process group
        seen.append(line)
        if re.match(r"(local)?rule silver:", line):
            os.killpg(proc.pid, signal.SIGINT)
            break
    out = "".join(seen) + proc.stdout.read()
    assert proc.wait() != 0
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-4000:]
    assert "Trying to restart job" not in out
    assert main(["history", "--root", str(root), "--jobs"]) == 0
    newest = capsys.readouterr().out.splitlines()[1]
    assert newest.split()[3] == "interrupted", newest
    # the README's recovery: run the same command again
    snakemake(tmp_path, "--cores", "2", config=config)
    assert (root / "_markers/gold/manifest.json").exists()


def test_a_ctrl_c_that_snakemake_would_swallow_is_raised_once_it_is_out(tmp_path):
    # Snakemake's log handler catches KeyboardInterrupt and goes on: code compiled under its
    # file name stands in for it
    swallowing = {"signal": signal}
    exec(compile(
        "def emit(swallowed):\n    try:\n        signal.raise_signal(signal.SIGINT)\n"
        "    except KeyboardInterrupt:\n        swallowed.append(True)\n",
        "/venv/site-packages/snakemake/logging.py", "exec",
    ), swallowing)  # fmt: skip
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert "trap '' INT" in (preflight.catch_ctrl_c() or "")
        swallowed: list[bool] = []
        with pytest.raises(KeyboardInterrupt):
            swallowing["emit"](swallowed)
            threading.Event().wait(30)  # the interrupt comes again, out of the log handler
        assert swallowed == []
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_in_the_cli_is_one_line_and_recorded(tmp_path, capsys, monkeypatch):
    root = tmp_path / "lake"
    assert main(["run", "--root", str(root), "--source", str(SAMPLE), "--no-gold"]) == 0
    capsys.readouterr()

    def interrupted(args, layout):
        raise KeyboardInterrupt

    monkeypatch.setattr("fhirhouse.cli.cmd_run", interrupted)
    monkeypatch.setenv("FHIRHOUSE_RUN_ID", "secondrun")  # as a second `fhirhouse run` has
    assert main(["run", "--root", str(root), "--source", str(SAMPLE)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: interrupted (Ctrl-C); run the same command again to finish"]
    assert main(["history", "--root", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[3] == "interrupted"


# -- item 6: a start line, progress and a summary -----------------------------------------------


def test_snakemake_build_says_where_it_works_how_far_it_is_and_what_it_built(tmp_path):
    elsewhere = tmp_path / "elsewhere"  # run from another folder with -s: the root is relative
    elsewhere.mkdir()
    proc = snakemake(elsewhere, "--cores", "2", config={"root": "lake", "source": SAMPLE})
    root = elsewhere / "lake"
    err = proc.stderr
    start = next(ln for ln in err.splitlines() if ln.startswith("fhirhouse: "))
    assert f"root {root};" in start and f"source {SAMPLE};" in start
    assert "cohorts A, B, C" in start
    assert "cohort A: parsed 2/2 bundles" in err  # progress on the console ...
    assert "parsed 2/2 bundles" in (root / "_logs/silver/cohort=A.log").read_text()  # ... and log
    for line in (
        "[1/3] cohort A: 2 bundles (2 parsed), checks",
        "[3/3] cohort C: 2 bundles (2 parsed), checks",
        "gold.encounter_summary: ",
        f"data under {root}/",
    ):
        assert line in err, line
    table = err[err.index("table ") :]
    assert re.search(r"^patient\s+2\s+2\s+2\s+\d+$", table, re.M), table[:800]
    names = [p.stem.split("_")[0] for p in SAMPLE.glob("*.json")]
    assert not any(name in err for name in names)  # no identifiers on the console
    again = snakemake(elsewhere, "--cores", "2", config={"root": "lake", "source": SAMPLE})
    assert "data under" not in again.stderr  # nothing built: no summary


# -- item 10: counts ------------------------------------------------------------------------------


def test_counts_read_as_words_and_history_has_thousands_separators(tmp_path, capsys):
    source = tmp_path / "corpus"
    assert main(["synth", "--patients", "1", "--out", str(source), "--quiet"]) == 0
    assert re.search(r"wrote 1 bundle \(.*\) and \d+ DICOM files?\b", capsys.readouterr().out)
    root = tmp_path / "lake"
    assert main(["run", "--root", str(root), "--source", str(source), "--cohorts", "1"]) == 0
    out = capsys.readouterr().out
    assert "bronze: 1 file in 1 cohort (1 new, 0 changed)" in out
    assert "cohort A: 1 bundle (1 parsed)" in out
    assert main(["status", "--root", str(root)]) == 0
    assert "1 file" in (status := capsys.readouterr().out) and "1 files" not in status
    assert main(["history", "--root", str(root)]) == 0
    run = capsys.readouterr().out.splitlines()[1]
    assert re.search(r"\s\d{1,3}(,\d{3})+\s", run), run  # rows written, e.g. 3,456
