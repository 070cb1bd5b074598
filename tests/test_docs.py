"""The documentation: every configuration key documented, every link inside the repository."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from conftest import REPO

CONFIG_README = REPO / "config" / "README.md"
PAGES = [REPO / "README.md", CONFIG_README, *sorted((REPO / "docs").glob("*.md"))]


def schema_keys(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every key the config schema allows, dotted (``checks.silver.<table>.min_rows``),
    with its schema."""
    for name, sub in (schema.get("properties") or {}).items():
        yield prefix + name, sub
        yield from schema_keys(sub, f"{prefix}{name}.")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("properties"):
        yield from schema_keys(extra, f"{prefix}<table>.")


def key_rows() -> dict[str, str]:
    """The rows of config/README.md's key table, by the key in their first cell."""
    rows = {}
    for line in CONFIG_README.read_text().splitlines():
        m = re.match(r"\| `([^`]+)` \|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_every_config_key_is_documented_with_its_default():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    rows = key_rows()
    keys = dict(schema_keys(schema))
    assert "checks.silver.<table>.min_rows" in keys
    missing = sorted(set(keys) - set(rows))
    assert missing == [], f"config/README.md does not document {missing}"
    assert sorted(set(rows) - set(keys)) == [], "config/README.md documents unknown keys"
    for key, sub in keys.items():
        default = sub.get("default")
        if "default" in sub and not isinstance(default, dict | list):
            shown = "null" if default is None else str(default)
            assert f"`{shown}`" in rows[key], f"{key}: default {shown} not in its row"


def test_config_file_sets_only_documented_keys_and_agrees_with_the_schema():
    """config/config.yaml and the schema's defaults give the same configuration, so the CLI
    outside the repository (schema defaults only) builds what Snakemake builds."""
    from fhirhouse.config import load_config

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    schema_defaults = load_config(REPO / "no-such-config.yaml", schema_path=REPO / "schemas" /
                                  "config.schema.yaml")  # fmt: skip
    assert cfg == schema_defaults


def test_reference_thresholds_file_restores_the_reference_rules():
    from fhirhouse.checks.rules import SILVER_RULES

    ref = yaml.safe_load((REPO / "config" / "reference-checks.yaml").read_text())
    default = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for table, rules in default["checks"]["silver"].items():
        for rule in rules:
            assert ref["checks"]["silver"][table][rule] == SILVER_RULES[table][rule]


def links(page: Path) -> Iterator[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    yield from re.findall(r"\]\(([^)\s]+)\)", text)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown page."""
    heads = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}


def test_links_resolve_inside_the_repository():
    for page in PAGES:
        for target in links(page):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            assert resolved.is_relative_to(REPO), f"{page.name} links outside: {target}"
            assert resolved.exists(), f"{page.name}: broken link {target}"
            if anchor and resolved.suffix == ".md":
                assert anchor in anchors(resolved), f"{page.name}: no heading for {target}"


def test_the_readme_is_short():
    assert len((REPO / "README.md").read_text().splitlines()) <= 120


def test_the_project_layout_names_every_module_and_package():
    """docs/development.md's map of src/fhirhouse/ leaves nothing out."""
    page = (REPO / "docs" / "development.md").read_text()
    package = REPO / "src" / "fhirhouse"
    names = [p.name for p in package.iterdir() if p.suffix == ".py" and p.stem != "__init__"]
    names += [f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()]
    missing = [n for n in sorted(names) if not re.search(rf"(?<![\w/]){re.escape(n)}", page)]
    assert missing == []
