"""Integrity: a dangerous root is refused, tampered or vanished Bronze is never taken, a table
that lost a commit is never reported as built, and bookkeeping names no bundle file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import BIN, snakemake

from fhirhouse.layout import check_root


def fhirhouse(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "fhirhouse"), *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.exists() else set()


@pytest.mark.parametrize("where", ["filesystem", "home", "source", "bronze"])
def test_a_dangerous_root_is_one_error_line_and_nothing_is_written(
    tmp_path, sample_source, monkeypatch, where
):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    lake = tmp_path / "lake"
    (lake / "bronze" / "fhir" / "cohort=A").mkdir(parents=True)
    root = {
        "filesystem": "/",
        "home": str(home),
        "source": str(sample_source),
        "bronze": str(lake / "bronze" / "fhir" / "cohort=A"),
    }[where]
    before = tree(tmp_path) | set(Path("/").iterdir())
    proc = fhirhouse("run", "--root", root, "--source", str(sample_source), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: root ") and proc.stdout == ""
    assert tree(tmp_path) | set(Path("/").iterdir()) == before

    proc = snakemake(
        tmp_path, "-n", "--cores", "1", check=False, config={"root": root, "source": sample_source}
    )
    assert proc.returncode != 0
    assert f"error: root {root!r}" in proc.stdout + proc.stderr
    # nothing but Snakemake's own folders
    assert tree(tmp_path) - before <= tree(tmp_path / ".snakemake") | tree(home) | {home / ".cache"}
    assert set(Path("/").iterdir()) <= before


def test_check_root_accepts_ordinary_roots(tmp_path):
    check_root(tmp_path / "lake", tmp_path / "lake" / "_synth" / "bundles")  # the default shape
    check_root("s3://bucket/lake", tmp_path)
    with pytest.raises(ValueError, match="inside the root's own Bronze"):
        check_root(tmp_path / "lake", tmp_path / "lake" / "bronze" / "fhir")
