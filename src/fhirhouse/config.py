"""The workflow config file, shared by the Snakefile and the CLI.

Both validate ``config/config.yaml`` against ``schemas/config.schema.yaml``; the CLI applies
the schema's defaults itself (Snakemake's ``validate`` does so for the workflow). Both refuse
a dangerous root (:func:`fhirhouse.layout.check_root`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fhirhouse.layout import check_root

DEFAULT_CONFIG = Path("config/config.yaml")
DEFAULT_SCHEMA = Path("schemas/config.schema.yaml")


class ConfigError(ValueError):
    """The configuration does not validate; the message says which key and why."""


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    schema_path: str | Path | None = None,
) -> dict[str, Any]:
    """Read ``path`` (default ``config/config.yaml`` if it exists), apply ``overrides``,
    fill schema defaults and validate. Keys set to ``None`` in overrides are ignored."""
    cfg: dict[str, Any] = {}
    path = Path(path) if path else DEFAULT_CONFIG
    if path.exists():
        cfg = yaml.safe_load(path.read_text()) or {}
    for key, value in (overrides or {}).items():
        if value is not None:
            cfg[key] = value
    schema_file = Path(schema_path) if schema_path else path.parent.parent / DEFAULT_SCHEMA
    if not schema_file.exists():
        schema_file = Path(__file__).resolve().parents[2] / DEFAULT_SCHEMA
    schema = yaml.safe_load(schema_file.read_text())
    for key, prop in schema.get("properties", {}).items():
        if key not in cfg and "default" in prop:
            cfg[key] = prop["default"]
    try:
        jsonschema.Draft202012Validator(schema).validate(cfg)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ConfigError(f"invalid configuration at {where}: {exc.message}") from None
    try:
        check_root(cfg["root"], cfg.get("source"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return cfg
