"""docs/querying.md: its polars, pyarrow and duckdb recipes run as written on a built root,
and the duckdb one needs no extension (so no download)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import REPO, SAMPLE

from fhirhouse.cli import main

DOC = REPO / "docs" / "querying.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.M | re.S)


@pytest.fixture(scope="module")
def recipes(tmp_path_factory) -> dict[str, Any]:
    """Every python block of the page, run in order in one namespace, from a folder whose
    `data/` is a root built by `fhirhouse run` (so it has a run history too)."""
    work = tmp_path_factory.mktemp("querying")
    assert main(["run", "--root", str(work / "data"), "--source", str(SAMPLE)]) == 0
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) == 3
    namespace: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
        namespace["_work"] = work
    return namespace


def test_polars_and_pyarrow_recipes(recipes):
    assert recipes["gold"].height == 18
    assert set(recipes["encounters_a"]["cohort"]) == {"A"}
    assert recipes["pinned"].equals(recipes["gold"])
    assert recipes["patients"].num_rows == 6
    assert set(recipes["cohort_b"].column("cohort").to_pylist()) == {"B"}


def test_duckdb_recipe_matches_polars(recipes):
    data: Path = recipes["_work"] / "data"
    encounter = pl.read_delta(str(data / "silver/encounter"))
    expected = encounter.group_by("cohort").len().sort("cohort").rows()
    assert recipes["by_cohort"] == expected == [("A", 6), ("B", 6), ("C", 6)]
    assert recipes["gold_rows"] == pl.read_delta(str(data / "gold/encounter_summary")).height
    history = pl.read_delta(str(data / "_ops/run_history"))
    assert [(r, n) for r, n, _ in recipes["jobs_by_rule"]] == (
        history.group_by("rule").len().sort("rule").rows()
    )


def test_duckdb_recipe_loads_no_extension(recipes):
    con = recipes["con"]
    loaded = con.sql("SELECT extension_name FROM duckdb_extensions() WHERE loaded").fetchall()
    assert "delta" not in {name for (name,) in loaded}
    assert "INSTALL delta" not in "".join(python_blocks(DOC.read_text()))
