"""Kill points for the crash-safety harness (``tests/test_crash.py``, ``bench/crash_campaign.py``).

Off unless ``FHIRHOUSE_KILL_AT`` is set, and then it costs one environment lookup per point.
``FHIRHOUSE_KILL_AT=<point>[:<detail>][@<n>]`` SIGKILLs the whole process group (Snakemake
and every running job, as a power cut would) the *n*-th time (default: first) any job of the
run reaches that point. Hits are counted across processes with exclusive-create files in
``FHIRHOUSE_KILL_DIR``. ``<detail>`` narrows a point to one table, e.g.
``delta.after_commit:encounter_summary@2``.

Points: ``land.after_copy``, ``atomic.before_rename`` (markers, staged Arrow files,
manifests), ``delta.after_create``, ``delta.before_commit``, ``delta.after_commit``,
``history.before_append``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

ENV_POINT = "FHIRHOUSE_KILL_AT"
ENV_DIR = "FHIRHOUSE_KILL_DIR"


def point(name: str, detail: str = "") -> None:
    """Kill the build here if ``FHIRHOUSE_KILL_AT`` names this point and its hit has come."""
    spec = os.environ.get(ENV_POINT)
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target not in (name, f"{name}:{detail}"):
        return
    folder = Path(os.environ.get(ENV_DIR) or ".")
    folder.mkdir(parents=True, exist_ok=True)
    hit = _next_hit(folder, target)
    if hit == int(nth or 1):
        (folder / "fired").write_text(f"{target}@{hit}\n")
        os.killpg(os.getpgrp(), signal.SIGKILL)


def _next_hit(folder: Path, target: str) -> int:
    """Claim the next hit number of ``target`` (unique across concurrent processes)."""
    stem = target.replace(":", "_").replace("/", "_")
    k = 1
    while True:
        try:
            os.close(os.open(folder / f"{stem}.{k}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return k
        except FileExistsError:
            k += 1
