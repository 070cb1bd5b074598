"""The workflow config file, shared by the Snakefile and the CLI.

Both validate ``config/config.yaml`` against ``schemas/config.schema.yaml``, the one place
every default is written: the CLI fills them in with :func:`fill_defaults` (Snakemake's
``validate`` does the same for the workflow), and code that runs without a config asks
:func:`schema_default`. Both refuse a dangerous root (:func:`fhirhouse.layout.check_root`).
"""

from __future__ import annotations

import copy
import functools
import sys
from collections.abc import Iterator
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
    from fhirhouse.preflight import rename_deprecated

    try:
        for warning in rename_deprecated(cfg):
            print(f"warning: {warning}", file=sys.stderr)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    schema_file = Path(schema_path) if schema_path else path.parent.parent / DEFAULT_SCHEMA
    schema = read_schema(schema_file if schema_file.exists() else DEFAULT_SCHEMA)
    fill_defaults(cfg, schema)
    problem = config_problem(cfg, schema)
    if problem:
        raise ConfigError(problem)
    try:
        check_root(cfg["root"], cfg.get("source"))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def read_schema(path: str | Path = DEFAULT_SCHEMA) -> dict[str, Any]:
    """The config schema at ``path`` (relative paths: against the repository)."""
    path = Path(path)
    if not path.is_absolute() and not path.exists():
        path = Path(__file__).resolve().parents[2] / path
    return yaml.safe_load(path.read_text())


def _defaults_filler(
    validator: Any, properties: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[Any]:
    if isinstance(instance, dict):
        for name, sub in properties.items():
            if "default" in sub:
                instance.setdefault(name, copy.deepcopy(sub["default"]))
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](
        validator, properties, instance, schema
    )


_FILLER = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"properties": _defaults_filler}
)


def fill_defaults(cfg: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Set every default of ``schema`` that ``cfg`` leaves out, nested ones too, as
    Snakemake's ``validate`` does (the jsonschema recipe); returns ``cfg``."""
    for _ in _FILLER(schema).iter_errors(cfg):
        pass  # reported by config_problem
    return cfg


@functools.cache
def _schema_defaults() -> dict[str, Any]:
    return fill_defaults({}, read_schema())


def schema_default(*keys: str) -> Any:
    """The schema's default of a key, e.g. ``schema_default("checks", "gold", "max_age")``."""
    value: Any = _schema_defaults()
    for key in keys:
        value = value[key]
    return copy.deepcopy(value)


def config_problem(cfg: dict[str, Any], schema: dict[str, Any]) -> str | None:
    """The first thing wrong with ``cfg`` as one line naming the key and what it accepts
    (never the schema or the whole config), or ``None`` when it validates."""
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    exc = errors[0]
    path = [str(p) for p in exc.absolute_path]
    if exc.validator == "additionalProperties" and isinstance(exc.instance, dict):
        known = list(exc.schema.get("properties") or {})
        extra = sorted(k for k in exc.instance if k not in known)
        key = ".".join([*path, str(extra[0])]) if extra else ".".join(path)
        return f"invalid configuration: unknown key {key!r}; allowed keys: {', '.join(known)}"
    head = f"invalid configuration at {'.'.join(path) or '(top level)'}:"
    if exc.validator == "enum":
        return f"{head} {exc.instance!r} is not one of: {', '.join(map(str, exc.validator_value))}"
    expected = exc.schema.get("description") if exc.validator in ("oneOf", "anyOf") else None
    if expected:
        return f"{head} {exc.instance!r} is not valid; expected {expected}"
    return f"{head} {exc.message}"
