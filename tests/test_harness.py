"""The test harness itself: what `make test` checks for, and parity tests that cannot pass
unchecked in CI."""

from __future__ import annotations

import shutil
import subprocess

import conftest
import pytest
from conftest import DOT_MISSING, REPO


def test_parity_tests_fail_in_ci_when_the_shared_fixtures_are_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(conftest, "FIXTURES", tmp_path / "missing")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match=r"\.\./shared/fixtures is not present"):
        conftest.require_shared()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        conftest.require_shared()


def test_ci_sets_ci_and_runs_the_readme_test_command():
    script = (REPO / ".ci" / "run").read_text()
    assert "export CI=" in script
    assert script.rstrip().splitlines()[-1] == "make test"
    assert "make test " in (REPO / "README.md").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_test_says_in_one_line_when_dot_is_missing(tmp_path):
    make = shutil.which("make")
    env = {"PATH": str(tmp_path)}  # a PATH without dot
    missing = subprocess.run(
        [make, "-s", "tools"], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert missing.stdout.splitlines() == [f"make test: {DOT_MISSING}"]
    if shutil.which("dot"):
        (tmp_path / "dot").symlink_to(shutil.which("dot"))
        found = subprocess.run(
            [make, "-s", "tools"], cwd=REPO, env=env, capture_output=True, text=True, check=True
        )
        assert found.stdout == ""
