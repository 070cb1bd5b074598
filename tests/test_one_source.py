"""Each fact is written once: files that cannot import it (the config schema, the Snakemake
files) agree with the code, and the code takes every configurable default from the schema."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from fhirhouse import PARTITION_COLUMN, SILVER_TABLES
from fhirhouse.config import load_config, read_schema, schema_default
from fhirhouse.layout import COHORT_LABEL

SCHEMA = read_schema(REPO / "schemas" / "config.schema.yaml")
CODE = [*(REPO / "src" / "fhirhouse").rglob("*.py"), *(REPO / "rules").glob("*.smk")]
CODE.append(REPO / "Snakefile")


def test_the_schema_s_cohort_labels_and_tables_are_the_code_s():
    props = SCHEMA["properties"]
    patterns = [
        props["cohorts"]["oneOf"][1]["items"]["pattern"],
        props["land_into"]["oneOf"][1]["pattern"],
    ]
    assert patterns == [COHORT_LABEL.pattern] * 2
    tables = props["checks"]["properties"]["silver"]["propertyNames"]["enum"]
    assert tables == list(SILVER_TABLES)


@pytest.mark.parametrize(
    ("keys", "literal"),
    [
        (("checks", "gold", "max_age"), "130"),
        (("maintenance", "retention_hours"), "168"),
        (("checks", "on_failure"), '"warn"'),
    ],
)
def test_a_configurable_default_is_written_only_in_the_schema(keys, literal):
    assert str(schema_default(*keys)) == literal.strip('"')
    written = [
        f"{path.relative_to(REPO)}:{n}"
        for path in CODE
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(rf"(?<![\w.]){re.escape(literal)}(?![\w.])", line)
        and "exit" not in line  # exit status 130 after Ctrl-C is another fact
        and "return 130" not in line
    ]
    assert written == []


def test_the_cli_fills_nested_defaults_as_snakemake_does(tmp_path):
    from snakemake.utils import validate

    given = {"root": str(tmp_path / "lake"), "checks": {"on_failure": "fail"}}
    ours = load_config(tmp_path / "none.yaml", dict(given))
    theirs = dict(given, checks=dict(given["checks"]))
    validate(theirs, str(REPO / "schemas" / "config.schema.yaml"))
    assert ours == theirs
    assert ours["checks"]["gold"]["max_age"] == schema_default("checks", "gold", "max_age")


def test_the_partition_column_is_named_once():
    assert PARTITION_COLUMN == "cohort"
    folders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in CODE
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if '"cohort="' in line or 'f"cohort={' in line
    ]
    assert folders == []
