"""What the Snakefile checks and says before any job runs: one-line errors for a bad
configuration, a missing source folder and a misplaced ``--forcerun`` argument, and the
start line naming the resolved root, source and cohorts.

Light on purpose (no polars, no deltalake): the Snakefile imports it on every invocation.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

#: Config keys renamed, with the name that replaced them (the old one still works, and warns).
DEPRECATED_KEYS = {"cohort": "land_into"}

_NULLS = ("null", "none", "~", "")


class Stopped(SystemExit):
    """The invocation stopped before any job ran; its one-line reason is already printed."""


def stop(message: str) -> NoReturn:
    """End the invocation with one ``error:`` line and exit status 1, before any job runs."""
    print(f"error: {message}", file=sys.stderr)
    raise Stopped(1)


#: Set in a job's shell when its Python starts with Ctrl-C held off (see :func:`catch_ctrl_c`).
DEFERRED_SIGINT = "FHIRHOUSE_DEFERRED_SIGINT"


#: Snakemake code that catches a KeyboardInterrupt and goes on: its log handler (which
#: ignores it) and its evaluation of input functions and resources (which turns it into an
#: InputFunctionException). A Ctrl-C landing there is raised again once the code is left.
_SWALLOWING = ("snakemake/logging.py", "snakemake/rules.py")


def exit_if_stuck(seconds: float, code: int = 130) -> None:
    """End the process with ``code`` if it is still alive ``seconds`` from now.

    After a Ctrl-C, Snakemake can hang for good while it closes its asyncio runners: a task
    that took the interrupt never finishes its cancellation. The Snakefile's ``onerror``
    handler calls this once the run is recorded; Snakemake has released its locks by then,
    so nothing is lost by ending the process."""

    def watch() -> None:
        time.sleep(seconds)
        sys.stderr.write(f"fhirhouse: Snakemake was still running {seconds:.0f} s after it "
                         "stopped; ending it\n")  # fmt: skip
        sys.stderr.flush()
        os._exit(code)

    threading.Thread(target=watch, name="fhirhouse-exit-watchdog", daemon=True).start()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    here = frame
    while here is not None:
        if here.f_code.co_filename.replace("\\", "/").endswith(_SWALLOWING):
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
            return
        here = here.f_back
    raise KeyboardInterrupt


def catch_ctrl_c() -> str | None:
    """Make Ctrl-C stop a Snakemake run every time; returns the shell prefix for its jobs.

    With Python's own handler a Ctrl-C could be lost and the run went on as if nothing had
    happened: Snakemake's log handler ignores a KeyboardInterrupt, and its asyncio runners
    turn one into a task cancellation. A handler of our own (asyncio leaves it alone) raises
    KeyboardInterrupt where Snakemake lets it through, and a moment later where it would
    not. Jobs start with SIGINT ignored until their
    first import (``fhirhouse.interrupt``) takes it back, so that an interpreter just
    starting never prints a traceback. ``None`` (nothing changed) when this is not the main
    thread or SIGINT is not Python's default (e.g. ignored in a background run)."""
    if threading.current_thread() is not threading.main_thread():
        return None  # signal handlers belong to the main thread
    if signal.getsignal(signal.SIGINT) not in (signal.default_int_handler, _interrupt):
        return None
    signal.signal(signal.SIGINT, _interrupt)
    return f"set -euo pipefail; trap '' INT; export {DEFERRED_SIGINT}=1; "


def nulls_to_none(config: dict[str, Any], keys: Iterable[str]) -> None:
    """``--config source=null`` arrives as the string "null": read it as YAML's null."""
    for key in keys:
        if key in config and str(config[key]).strip().lower() in _NULLS:
            config[key] = None


def rename_deprecated(config: dict[str, Any]) -> list[str]:
    """Move a deprecated key's value to its new name; returns one warning line per key used.

    Raises ``ValueError`` when both names are set to different values."""
    warnings = []
    for old, new in DEPRECATED_KEYS.items():
        if old not in config:
            continue
        value = config.pop(old)
        if value is None:
            continue
        if config.get(new) not in (None, value):
            raise ValueError(
                f"config keys {old!r} (deprecated) and {new!r} disagree; set only {new!r}"
            )
        config[new] = value
        warnings.append(f"config key {old!r} is deprecated; use {new!r} (e.g. {new}={value})")
    return warnings


def forcerun_problem(forcerun: Iterable[str], is_rule: Callable[[str], bool]) -> str | None:
    """A ``--forcerun`` entry that is no rule name: almost always a target put after it,
    which Snakemake would read as one more entry and then rebuild every cohort."""
    for entry in sorted(forcerun):
        if not is_rule(entry):
            return (
                f"--forcerun takes rule names; {entry!r} is not one. Put targets first: "
                f"snakemake TARGET --forcerun RULE"
            )
    return None


def source_problem(source: Path | None, name: str = "config source") -> str | None:
    """A configured ``source`` that is not a folder (the generated corpus is made later)."""
    if source is not None and not source.is_dir():
        what = "does not exist" if not source.exists() else "is not a folder"
        return (
            f"{name} {str(source)!r} {what}; give a folder of bundle *.json files "
            "(or source: null for the generated corpus)"
        )
    return None


def landing_labels(cohorts: int | list[str], land_into: str | None) -> list[str]:
    """The cohorts new files may land in."""
    if land_into:
        return [land_into]
    return [chr(ord("A") + i) for i in range(cohorts)] if isinstance(cohorts, int) else cohorts


def cohort_plan(cohorts: int | list[str], land_into: str | None) -> str:
    """Where new files go, in words."""
    if land_into:
        return f"new files land in cohort {land_into}"
    return f"new files go round-robin to cohorts {', '.join(landing_labels(cohorts, None))}"


def start_line(
    root: str | Path,
    source: Path | None,
    synthetic: bool,
    config: Mapping[str, Any],
    existing: Iterable[str],
) -> str:
    """One line for the start of a build: the resolved root, the source and the cohorts
    (``config``: validated, its defaults filled in)."""
    where = str(root) if "://" in str(root) else str(Path(root).resolve())
    if source is None:
        what = "none (the Bronze tree as it is)"
    elif synthetic:
        synth = config["synth"]
        what = (
            f"{synth['patients']} generated patients (seed {synth['seed']}) "
            f"in {Path(source).resolve()}"
        )
    else:
        what = str(Path(source).resolve())
    have = list(existing)
    plan = cohort_plan(config["cohorts"], config["land_into"]) if source else ""
    cohorts = f"Bronze cohorts {', '.join(have)}" if have else "no cohorts in Bronze yet"
    return f"fhirhouse: root {where}; source {what}; {cohorts}" + (f"; {plan}" if plan else "")
