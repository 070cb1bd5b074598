"""The run log: the invocation's run id, job markers, and one run-history row per job.

Every job ends by writing its JSON marker atomically; a marker always carries content
(versions, counts, digests, run id), so Snakemake sees real changes across invocations.
:func:`recorded` wraps a job and appends its run-history row, success or failure.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fhirhouse import __version__
from fhirhouse.layout import Layout
from fhirhouse.redact import RedactedError
from fhirhouse.store.atomic import write_json_atomic

log = logging.getLogger(__name__)

_PROCESS_RUN_ID = uuid.uuid4().hex[:12]


def run_id() -> str:
    """The invocation's run id: ``$FHIRHOUSE_RUN_ID`` (set by the Snakefile) or per process.

    An environment variable, not a rule parameter: Snakemake reruns a job whose parameters
    changed, and every job it starts, also on a cluster, inherits the variable."""
    return os.environ.get("FHIRHOUSE_RUN_ID") or _PROCESS_RUN_ID


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def write_marker(path: str | Path, layer: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Stamp run metadata on ``payload`` and write it atomically as the job's last act."""
    marker = {
        "layer": layer,
        **payload,
        "run_id": run_id(),
        "written_at": now(),
        "fhirhouse_version": __version__,
    }
    write_json_atomic(path, marker)
    return marker


class CheckFailed(RuntimeError):
    """A data check failed under ``checks.on_failure: fail``; the message names table, rule
    and numbers (never identifiers)."""


def _history_fields(marker: Mapping[str, Any]) -> dict[str, Any]:
    """Tables, rows written and Delta versions of a job, from its marker."""
    tables: list[str] = [
        t["table"] if isinstance(t, Mapping) else str(t) for t in marker.get("tables") or []
    ]
    if "table" in marker:
        tables = [marker["table"]]
    elif isinstance(marker.get("rows"), dict):
        tables = list(marker["rows"])
    rows = marker.get("rows_written")
    if rows is None and "inserted" in marker:
        rows = marker["inserted"] + marker.get("updated", 0) + marker.get("deleted", 0)
    elif rows is None and isinstance(marker.get("rows"), dict):
        rows = sum(marker["rows"].values())
    versions: dict[str, Any] = {}
    per_table = marker.get("tables")
    if isinstance(per_table, Mapping):  # silver: what each of the ten tables did
        rows = sum(t["inserted"] + t["updated"] + t["deleted"] for t in per_table.values())
        versions = {name: t["delta_version"] for name, t in per_table.items()}
    if "delta_version" in marker:
        versions[marker.get("table", marker.get("layer", ""))] = marker["delta_version"]
    if "gold_delta_version" in marker:
        versions["gold"] = marker["gold_delta_version"]
    for t in marker.get("tables") or []:  # maintenance: the version each table ended at
        if isinstance(t, Mapping) and "version_after" in t:
            versions[t["table"]] = t["version_after"]
    return {"tables": tables, "rows_written": rows, "delta_versions": versions}


class JobRecord:
    """What a rule script hands back: the job's marker (or result) dict."""

    marker: Mapping[str, Any] | None = None


class StorageError(OSError):
    """The storage root cannot be written (full, read-only, no permission)."""


_STORAGE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
}
# delta-rs reports the same conditions as text inside its own exception types
_STORAGE_TEXTS = {
    "No space left on device": "no space left on device",
    "Disk quota exceeded": "disk quota exceeded",
    "Read-only file system": "read-only file system",
    "Permission denied": "permission denied",
}


def storage_problem(exc: BaseException) -> str | None:
    """``"no space left on device"`` and the like when ``exc`` (or what caused it) is the
    storage refusing a write; ``None`` otherwise."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _STORAGE_ERRNOS:
            return _STORAGE_ERRNOS[current.errno]
        text = str(current)
        for needle, problem in _STORAGE_TEXTS.items():
            if needle in text:
                return problem
        current = current.__cause__ or current.__context__
    return None


def storage_error(layout: Layout, problem: str) -> StorageError:
    return StorageError(
        f"cannot write under the storage root {layout.root}: {problem}. Free space or fix "
        "permissions, then run again; this job left no marker, so the next run redoes it"
    )


def safe_message(exc: BaseException) -> str:
    """A failure message for logs and history: our own messages are identifier-free by
    construction; anything else is reduced to its exception type."""
    if isinstance(exc, CheckFailed | StorageError | RedactedError):
        return str(exc)
    return type(exc).__name__


@contextmanager
def recorded(layout: Layout, rule: str, cohort: str | None = None) -> Iterator[JobRecord]:
    """Append one run-history row for the job in the ``with`` block, success or failure."""
    started, t0 = dt.datetime.now(dt.UTC), time.monotonic()
    record = JobRecord()
    common = {
        "run_id": run_id(),
        "rule": rule,
        "cohort": cohort,
        "started_at": started,
        "code_version": __version__,
    }
    try:
        yield record
    except KeyboardInterrupt:
        # Ctrl-C: not a failure of the job; the next run redoes it (it left no marker)
        log.info("job %s%s interrupted", rule, f" cohort {cohort}" if cohort else "")
        _record_run(
            layout, **common, duration_s=time.monotonic() - t0, status="interrupted",
            message="KeyboardInterrupt",
        )  # fmt: skip
        raise
    except BaseException as exc:
        problem = storage_problem(exc)
        error = (
            storage_error(layout, problem)
            if problem and not isinstance(exc, StorageError)
            else None
        )
        message = safe_message(error or exc)
        log.error("job %s%s failed: %s", rule, f" cohort {cohort}" if cohort else "", message)
        _record_run(
            layout, **common, duration_s=time.monotonic() - t0, status="failed", message=message
        )
        if error is not None:
            raise error from None
        raise
    fields = _history_fields(record.marker or {})
    _record_run(layout, **common, duration_s=time.monotonic() - t0, status="success", **fields)


def _record_run(layout: Layout, **row: Any) -> None:
    """Append a run-history row; a history that cannot be written is logged, never raised
    (the job's own outcome stands, and its error is the one the user needs to see)."""
    try:
        from fhirhouse.store import history

        history.record_run(layout.run_history, **row)
    except Exception as exc:
        problem = storage_problem(exc) or type(exc).__name__
        log.warning("could not append to run history (%s)", problem)


#: What Snakemake logs when Ctrl-C (SIGINT) stops a run.
SNAKEMAKE_INTERRUPTED = "Terminating processes on user request"


def record_invocation(
    layout: Layout, status: str, snakemake_log: str | list[str] | None = None
) -> None:
    """One row per Snakemake invocation (from its ``onsuccess`` / ``onerror`` handlers).

    ``snakemake_log`` is the handler's ``log`` (a path, or a list of paths in Snakemake 9);
    a failed run whose log shows Ctrl-C is recorded as ``interrupted``.
    A history write that fails is logged, never raised: it must not fail the run.
    """
    logs_ = [snakemake_log] if isinstance(snakemake_log, str) else list(snakemake_log or [])
    message = ""
    for path in (Path(p) for p in logs_):
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        failed = text.count("Error in rule ")
        done = [ln for ln in text.splitlines() if "steps (" in ln and " done" in ln]
        if status == "failed" and SNAKEMAKE_INTERRUPTED in text:
            status, what = "interrupted", f"Ctrl-C stopped {failed} running jobs"
        else:
            what = f"{failed} failed jobs"
        message = what + (f"; {done[-1].strip()}" if done else "")
    try:
        _record_invocation(layout, status, message)
    except Exception as exc:
        log.warning("could not record the invocation in run history (%s)", type(exc).__name__)


def _record_invocation(layout: Layout, status: str, message: str) -> None:
    from fhirhouse.store import history

    history.record_run(
        layout.run_history,
        run_id=run_id(),
        rule="(invocation)",
        cohort=None,
        started_at=dt.datetime.now(dt.UTC),
        duration_s=0.0,
        status=status,
        code_version=__version__,
        message=message,
    )
