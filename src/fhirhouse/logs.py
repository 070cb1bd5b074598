"""Logging set-up shared by the CLI and the rule scripts. Messages never carry identifiers."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


#: The logger of a long job's progress (bundles parsed so far): counts and cohort labels only.
PROGRESS = "fhirhouse.progress"


class _Progress(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == PROGRESS


def configure(
    log_file: str | Path | None = None,
    level: str | int | None = None,
    console_level: str | int = "WARNING",
    progress_console: bool = False,
) -> None:
    """Log to ``log_file`` at ``level`` (default: $FHIRHOUSE_LOG_LEVEL or INFO) and to stderr
    at ``console_level``, so a job's progress stays in its log and problems show on screen.
    With ``progress_console``, the progress lines (:data:`PROGRESS`) show on screen too."""
    level = level or os.environ.get("FHIRHOUSE_LOG_LEVEL", "INFO")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    handlers: list[logging.Handler] = [console]
    if progress_console and logging.getLevelName(console_level) != logging.INFO:
        shown = logging.StreamHandler(sys.stderr)
        shown.setLevel(logging.INFO)
        shown.addFilter(_Progress())
        shown.setFormatter(logging.Formatter("    %(message)s"))
        handlers.append(shown)
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
