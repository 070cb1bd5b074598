"""Running a job as a Snakemake rule: in a rule script, or inside Snakemake itself.

Both log into the rule's log file, append the job's run-history row (:func:`recorded`), and
turn a failed check (under ``checks.on_failure: fail``) into a failed job without a
traceback: the failing rule and its numbers are already in the log.
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fhirhouse.jobs.runlog import CheckFailed, recorded
from fhirhouse.layout import Layout


def _marker(result: Any) -> Any:
    return getattr(result, "marker", result)


def run_rule(smk: Any, job: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    """Run ``job(layout, [cohort,] *args, **kwargs)`` for the ``snakemake`` object of a rule
    script; the cohort comes from the ``cohort`` wildcard when the rule has one."""
    from fhirhouse import interrupt, logs

    layout = Layout.of(smk.config["root"], smk.config.get("state_dir"))
    cohort = getattr(smk.wildcards, "cohort", None)
    # the job's process ends right after: skip the interpreter's full garbage collection at
    # exit (0.1-0.3 s with polars, pyarrow and deltalake loaded); objects are still freed
    atexit.register(gc.freeze)
    interrupt.install()
    interrupt.name_job(f"job {smk.rule}" + (f" cohort {cohort}" if cohort else ""))
    logs.configure(smk.log[0], progress_console=True)
    head = (layout,) if cohort is None else (layout, cohort)
    try:
        with recorded(layout, smk.rule, cohort) as record:
            result = job(*head, *args, **kwargs)
            record.marker = _marker(result)
    except CheckFailed:
        sys.exit(1)
    return result


class _ThisThread(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.ident = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.ident


def run_in_snakemake(
    log_file: str | Path,
    layout: Layout,
    rule: str,
    cohort: str | None,
    job: Callable[..., Any],
    /,
    *args: Any,
    **kwargs: Any,
) -> Any:
    """Run a bookkeeping job inside the Snakemake process (a ``localrule`` ``run:`` block):
    no interpreter to start. Its log lines go to ``log_file`` only, also when several such
    jobs run at once in Snakemake's threads."""
    from fhirhouse import logs

    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(logs.FORMAT))
    handler.addFilter(_ThisThread())
    handler.setLevel(os.environ.get("FHIRHOUSE_LOG_LEVEL", "INFO"))
    logger = logging.getLogger("fhirhouse")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > handler.level:
        logger.setLevel(handler.level)
    try:
        with recorded(layout, rule, cohort) as record:
            result = job(*args, **kwargs)
            record.marker = _marker(result)
        return result
    finally:
        logger.removeHandler(handler)
        handler.close()
