"""The check policy: run the checks of a step, write their results, enforce ``on_failure``.

``warn`` records and reports failing checks and the build goes on; ``fail`` raises
:class:`~fhirhouse.jobs.runlog.CheckFailed` once the results are written, so the step's
marker is not written and what depends on it does not run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from fhirhouse import SILVER_TABLES
from fhirhouse.checks.validate import TableResult, validate_cohort
from fhirhouse.jobs.runlog import CheckFailed, now
from fhirhouse.store.atomic import write_json_atomic

log = logging.getLogger(__name__)


def check_cohort(
    slices: Mapping[str, pa.Table],
    cohort: str,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    today: dt.date | None = None,
) -> list[TableResult]:
    """Row-level checks of one cohort's slice of every Silver table."""
    return [validate_cohort(t, slices[t], cohort, overrides, today) for t in SILVER_TABLES]


def write_results(
    results: Sequence[TableResult], paths: Sequence[Path], md_path: Path | None
) -> None:
    for result, path in zip(results, paths, strict=True):
        write_json_atomic(path, {**result.to_dict(), "checked_at": now()})
    if md_path is not None:
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text("\n".join(r.to_markdown() for r in results), encoding="utf-8")


def enforce(results: Sequence[TableResult], policy: str | None) -> None:
    """Log every failing check; under ``fail`` raise on the first one (``None``: the config
    schema's default policy)."""
    failed = [(r, c) for r in results for c in r.checks if not c.passed]
    for r, c in failed:
        log.warning("check failed: %s (%s) %s: %s", r.table, r.scope, c.rule, c.detail)
    if failed and policy is None:
        from fhirhouse.config import schema_default

        policy = schema_default("checks", "on_failure")
    if failed and policy == "fail":
        first, check = failed[0]
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        raise CheckFailed(
            f"check failed: {first.table} ({first.scope}) {check.rule}: {check.detail}{more}"
        )
