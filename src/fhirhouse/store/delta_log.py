"""What a Delta table's log holds, read by listing its ``_delta_log`` folder: the commit
files present and the last checkpoint. No deltalake import, so the workflow can afford it on
every invocation (a local table costs one directory listing)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from fhirhouse import SILVER_TABLES
from fhirhouse.layout import Layout
from fhirhouse.store.objects import StorePath

_COMMIT = re.compile(r"^(\d{20})\.json$")


@dataclass(frozen=True)
class LogState:
    commits: frozenset[int]
    checkpoint: int  # the version of the last checkpoint; -1 when there is none

    @property
    def latest(self) -> int:
        return max(self.commits, default=self.checkpoint)

    def has(self, version: int) -> bool:
        """Whether the table can still be read at ``version`` (its commit file is present,
        or a checkpoint covers it)."""
        return version in self.commits or 0 <= version <= self.checkpoint


def log_state(table: Path | StorePath) -> LogState | None:
    """The :class:`LogState` of the table at ``table``; ``None`` when it has no log."""
    folder = table / "_delta_log"
    if not folder.is_dir():
        return None
    commits = set()
    checkpoint = -1
    for p in folder.iterdir():
        m = _COMMIT.match(p.name)
        if m:
            commits.add(int(m.group(1)))
        elif p.name == "_last_checkpoint":
            try:
                checkpoint = int(json.loads(p.read_text())["version"])
            except (OSError, ValueError, KeyError, TypeError):
                checkpoint = -1
    if not commits and checkpoint < 0:
        return None
    return LogState(frozenset(commits), checkpoint)


def table_version(table: Path | StorePath) -> int | None:
    """The table's current version, as deltalake reports it (its latest commit, or the last
    checkpoint when no commit file is left); ``None`` when it has no log."""
    state = log_state(table)
    return None if state is None else state.latest


def silver_versions(layout: Layout) -> dict[str, int | None]:
    """The current Delta version of every Silver table (``None`` when absent)."""
    return {t: table_version(layout.silver_table(t)) for t in SILVER_TABLES}
