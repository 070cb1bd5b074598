"""The units of work: what one Snakemake job (or one step of ``fhirhouse run``) does.

Rule scripts and the CLI call these same functions, so no transform logic exists twice.

- :mod:`~fhirhouse.jobs.bronze`: generate a corpus, land a source folder, describe a cohort;
- :mod:`~fhirhouse.jobs.silver`: parse what changed in a cohort and write its ten tables
  (with :mod:`~fhirhouse.jobs.parse`), then check the slices;
- :mod:`~fhirhouse.jobs.gold`: recompute a cohort's Gold rows and check them;
- :mod:`~fhirhouse.jobs.corpus`: whole-table checks and the corpus manifest;
- :mod:`~fhirhouse.jobs.ops`: maintenance and rollback;
- :mod:`~fhirhouse.jobs.runlog`: run id, markers, the run-history row of each job.

Importing this package is cheap; each name loads its module on first use, so a job pays
only for the libraries it uses.
"""

from __future__ import annotations

import importlib
from typing import Any

from fhirhouse.layout import Layout

_WHERE = {
    "run_id": "runlog",
    "write_marker": "runlog",
    "recorded": "runlog",
    "record_invocation": "runlog",
    "CheckFailed": "runlog",
    "StorageError": "runlog",
    "storage_problem": "runlog",
    "safe_message": "runlog",
    "land_job": "bronze",
    "resolve_source": "bronze",
    "synth_job": "bronze",
    "bronze_cohort_job": "bronze",
    "silver_job": "silver",
    "silver_table_job": "silver",
    "silver_cohorts": "silver",
    "gold_job": "gold",
    "gold_manifest_job": "corpus",
    "check_tables_job": "corpus",
    "table_names": "ops",
    "maintain_job": "ops",
    "maintenance_summary": "ops",
    "rollback_job": "ops",
}

__all__ = ["WORKER_BYTES", "Layout", "parse_workers", *_WHERE]

#: A parse worker process started for one job (about 0.4 s of start-up and imports) pays for
#: itself once it has this many bundle bytes to parse (about a second of parsing).
WORKER_BYTES = 128 * 2**20


def parse_workers(nbytes: int, cores: int) -> int:
    """How many processes should parse ``nbytes`` of bundles given ``cores``."""
    return max(1, min(cores, nbytes // WORKER_BYTES))


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
