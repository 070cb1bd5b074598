"""`fhirhouse watch`: poll for new or changed bundles and build exactly what they touch.

A cohort sensor on Snakemake: each poll compares what is on disk with what the
last build saw, and a change triggers one Snakemake run (through ``snakemake.api``, with the
workflow profile's settings) for the affected cohorts only.

Two modes:

- Bronze (no ``--source``): watches ``<root>/bronze/fhir/cohort=*/``. A new cohort folder,
  or a bundle added, changed or removed in one, makes that cohort affected; the run targets
  exactly those cohorts' markers.
- Source (``--source DIR``): watches a landing folder of ``*.json`` bundles. A file that is
  new or changed since it was landed triggers a run with ``source=DIR``, which lands it (into
  ``--land-into`` or round-robin) and rebuilds only the cohorts the landing touched.

Cohorts already built and unchanged are never rebuilt ("replayed"): the comparison is with
the folder-state files the last build wrote, so a restart of the watcher is silent.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fhirhouse.bronze import landing
from fhirhouse.layout import Layout
from fhirhouse.preflight import Stopped
from fhirhouse.redact import name_key

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]


def state_file(layout: Layout, cohort: str) -> Path:
    """The folder state the last build of ``cohort`` saw (written by the Snakefile)."""
    return layout.bronze_state(cohort)


def affected_cohorts(layout: Layout) -> dict[str, dict[str, object]]:
    """Cohorts whose Bronze files differ from what their last build saw, or never built,
    each with its current folder state."""
    out = {}
    for cohort in landing.list_cohorts(layout):
        current = _cohort_state(layout, cohort)
        if not current["files"]:
            continue
        try:
            seen = json.loads(state_file(layout, cohort).read_text())
        except (OSError, ValueError):
            seen = None
        if seen != current or not layout.silver_cohort_marker(cohort).exists():
            out[cohort] = current
    return out


def _cohort_state(layout: Layout, cohort: str) -> dict[str, object]:
    return landing.folder_state(landing.cohort_inputs(layout, cohort))


def _source_state(source: str | Path) -> dict[str, object]:
    return landing.folder_state(sorted(Path(source).glob("*.json")))


def pending_files(layout: Layout, source: str | Path) -> int:
    """How many ``*.json`` files of ``source`` are new or changed since they were landed."""
    index = landing.read_landed_index(layout)
    n = 0
    for p in Path(source).glob("*.json"):
        if not p.is_file():
            continue
        st = p.stat()
        known = index.get(name_key(p.name))
        if not known or known[:2] != [st.st_size, st.st_mtime_ns]:
            n += 1
    return n


def profile_resources(profile: Path = REPO / "profiles" / "default" / "config.yaml") -> dict:
    """The resource limits of the workflow profile (the API does not load profiles itself)."""
    cfg = yaml.safe_load(profile.read_text()) if profile.exists() else {}
    out: dict[str, int] = {}
    for item in cfg.get("resources") or []:
        name, _, value = str(item).partition("=")
        out[name.strip()] = int(value)
    return out


def run_snakemake(
    targets: list[str],
    config: dict[str, Any],
    *,
    cores: int = 2,
    workdir: str | Path = ".",
    configfiles: list[Path] | None = None,
    snakefile: Path = REPO / "Snakefile",
) -> None:
    """One Snakemake run through its Python API, with the profile's resources,
    ``rerun-incomplete`` and ``keep-going``. Raises on a failed run."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import Quietness
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        ExecutionSettings,
        OutputSettings,
        ResourceSettings,
    )

    with SnakemakeApi(OutputSettings(quiet={Quietness.REASON, Quietness.HOST})) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=cores, resources=profile_resources()),
            config_settings=ConfigSettings(config=config, configfiles=configfiles or []),
            snakefile=snakefile,
            workdir=Path(workdir),
        )
        dag = workflow.dag(DAGSettings(targets=frozenset(targets), force_incomplete=True))
        dag.execute_workflow(
            executor="local",
            execution_settings=ExecutionSettings(keep_going=True, use_threads=True),
        )


@dataclass
class Watcher:
    layout: Layout
    source: Path | None = None
    land_into: str | None = None
    with_gold: bool = False
    cores: int = 2
    workdir: Path = Path(".")
    configfiles: list[Path] = field(default_factory=list)
    runner: Callable[..., None] = run_snakemake
    runs: list[dict[str, Any]] = field(default_factory=list)
    # what a failed run saw, per cohort (or for the landing folder): not retried until it
    # changes, so a broken input does not trigger a run on every poll
    failed: dict[str, Any] = field(default_factory=dict)

    def targets(self, cohorts: list[str]) -> list[str]:
        layout = self.layout
        if self.source is not None:  # cohorts are known only once the run has landed
            return ["all"] if self.with_gold else ["all_silver"]
        if self.with_gold:
            return [str(layout.gold_marker(c)) for c in cohorts] + [
                str(layout.gold_manifest_marker())
            ]
        return [str(layout.silver_cohort_marker(c)) for c in cohorts]

    def poll(self) -> dict[str, Any] | None:
        """Look once; when something changed, run Snakemake for it and return what ran."""
        if self.source is not None:
            pending = pending_files(self.layout, self.source)
            seen = {"source": _source_state(self.source)}
            if not pending or self.failed.get("source") == seen["source"]:
                return None
            cohorts: list[str] = []
            what = f"{pending} new or changed bundle file(s) in the landing folder"
        else:
            seen = affected_cohorts(self.layout)
            cohorts = [c for c, state in seen.items() if self.failed.get(c) != state]
            if not cohorts:
                return None
            what = f"new or changed bundles in cohort(s) {', '.join(cohorts)}"
        config: dict[str, Any] = {
            "root": self.layout.root,
            "state_dir": str(self.layout.state) if self.layout.on_store else None,
            "source": str(self.source) if self.source is not None else None,
        }
        if self.source is not None and self.land_into:
            config["land_into"] = self.land_into
        before = self._silver_runs()
        log.info("trigger: %s; one snakemake run", what)
        started = time.monotonic()
        outcome = "success"
        try:
            self.runner(
                self.targets(cohorts),
                config,
                cores=self.cores,
                workdir=self.workdir,
                configfiles=self.configfiles,
            )
        except (Exception, Stopped) as exc:  # the watcher goes on; the run's log has details
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            outcome = f"failed ({type(exc).__name__}: {first})"
        built = sorted(c for c, rid in self._silver_runs().items() if before.get(c) != rid)
        if outcome != "success":
            for key in ["source"] if self.source is not None else cohorts:
                if key not in built:
                    self.failed[key] = seen[key]
            log.info("not retried until its files change: %s", ", ".join(sorted(self.failed)))
        else:
            self.failed.clear()
        run = {
            "trigger": what,
            "cohorts_built": built,
            "outcome": outcome,
            "seconds": round(time.monotonic() - started, 1),
        }
        log.info(
            "run %s in %.1f s; cohorts rebuilt: %s",
            outcome,
            run["seconds"],
            ", ".join(built) or "none",
        )
        self.runs.append(run)
        return run

    def _silver_runs(self) -> dict[str, str | None]:
        layout = self.layout
        out = {}
        for cohort in landing.list_cohorts(self.layout):
            try:
                marker = json.loads(layout.silver_cohort_marker(cohort).read_text())
                out[cohort] = marker.get("run_id")
            except (OSError, ValueError):
                out[cohort] = None
        return out

    def watch(self, interval: float = 30.0, max_polls: int | None = None) -> int:
        """Poll every ``interval`` seconds until Ctrl-C (or ``max_polls`` polls)."""
        where = self.source if self.source is not None else self.layout.bronze_fhir
        log.info("watching %s every %.1f s (Ctrl-C stops)", where, interval)
        polls = 0
        try:
            while max_polls is None or polls < max_polls:
                polls += 1
                self.poll()
                if max_polls is None or polls < max_polls:
                    time.sleep(interval)
        except KeyboardInterrupt:
            log.info("stopped after %d poll(s) and %d run(s)", polls, len(self.runs))
            return 0
        log.info("done: %d poll(s), %d run(s)", polls, len(self.runs))
        return 0
