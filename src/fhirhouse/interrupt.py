"""Ctrl-C in a job: one line, no traceback.

Every rule script imports this module first (``import fhirhouse.interrupt``), so that a
Ctrl-C that arrives while the script still imports polars or deltalake ends the job as
quietly as one that arrives later. The process still ends by SIGINT (Python does so for an
uncaught ``KeyboardInterrupt``), so Snakemake sees the job interrupted, not succeeded.
"""

from __future__ import annotations

import os
import signal
import sys
from types import TracebackType

_label = ["job"]
_previous = sys.excepthook


def name_job(label: str) -> None:
    """What the one line calls this job, e.g. ``job silver cohort A`` (no identifiers)."""
    _label[0] = label


def _hook(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.stderr.write(f"{_label[0]} interrupted (Ctrl-C)\n")
        return
    _previous(kind, value, traceback)


def install() -> None:
    """Print an uncaught ``KeyboardInterrupt`` as one line (idempotent); take Ctrl-C back
    when the job's shell held it off while Python started (``fhirhouse.preflight``)."""
    if sys.excepthook is not _hook:
        sys.excepthook = _hook
    if os.environ.pop("FHIRHOUSE_DEFERRED_SIGINT", None):
        signal.signal(signal.SIGINT, signal.default_int_handler)


install()
