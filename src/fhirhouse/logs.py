"""Logging set-up shared by the CLI and the rule scripts. Messages never carry identifiers."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(
    log_file: str | Path | None = None,
    level: str | int | None = None,
    console_level: str | int = "WARNING",
) -> None:
    """Log to ``log_file`` at ``level`` (default: $FHIRHOUSE_LOG_LEVEL or INFO) and to stderr
    at ``console_level``, so a job's progress stays in its log and problems show on screen."""
    level = level or os.environ.get("FHIRHOUSE_LOG_LEVEL", "INFO")
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    handlers: list[logging.Handler] = [console]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
