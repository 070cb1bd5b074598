"""Every path fhirhouse uses for one storage root, and the cohort-label rule.

A root is resolved once, by :meth:`Layout.of`, where a command or a job starts; everything
below receives the :class:`Layout`. Light on purpose (the standard library, the package's
constants and :mod:`fhirhouse.store.objects` only): the Snakefile imports it on every
invocation.

``Layout.root`` is the root as configured (a folder or an ``s3://`` URI). ``Layout.data``
holds Bronze, the Silver and Gold Delta tables and the corpus manifest; ``Layout.state``
holds what a run keeps for itself (markers, staging, logs, checks, run history, quarantine
lists, reports). They are the same folder unless the root is an object store URI, whose
state stays on local disk (config ``state_dir``)::

    bronze/fhir/cohort=<c>/*.json              raw bundles
    bronze/dicom/*.dcm                         DICOM files, by StudyInstanceUID
    silver/<table>/                            Delta, partitioned by cohort, CDF on
    gold/encounter_summary/, gold/_metadata/corpus_manifest.json
    bronze/_quarantine/cohort=<c>.json         what the last parse of <c> skipped, and why
    _staging/silver/cohort=<c>/<table>.arrow   every parsed row of the cohort, per table
    _staging/silver/cohort=<c>/files.json      what each bundle was parsed from
    _staging/gold/cohort=<c>.pending.arrow     patients whose Gold rows are due
    _staging/gold/cohort=<c>.json              the numbers behind the cohort's Gold checks
    _markers/...                               one JSON per (layer, cohort[, table])
    bronze/_metadata/                          landing's manifest, plan, index, digest cache
    _ops/run_history, silver/ingest_log        run history and check log (Delta)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fhirhouse import PARTITION_COLUMN, SILVER_TABLES
from fhirhouse.store.objects import StorePath, check_uri, is_uri

#: The operations tables, next to the Silver tables and ``gold`` (see :meth:`Layout.table`).
OPS_TABLES = ("run_history", "ingest_log")
#: Every Delta table of a root, by the name :meth:`Layout.table` takes.
TABLES = (*SILVER_TABLES, "gold", *OPS_TABLES)
#: The folder prefix of a Bronze cohort (and of every per-cohort file).
COHORT_PREFIX = f"{PARTITION_COLUMN}="
#: A cohort label: it becomes a folder name and a partition value. The config schema's copy
#: is checked against this one by a test.
COHORT_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_cohort_label(label: str) -> str:
    """Return ``label`` if it is a safe cohort label, else raise ``ValueError``.

    Labels become folder names and SQL literals: letters, digits, ``_``, ``-`` and ``.`` only
    (not leading), at most 64 characters, never ``..``.
    """
    if not isinstance(label, str) or not COHORT_LABEL.match(label) or ".." in label:
        raise ValueError(
            f"invalid cohort label {label!r}: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit (max 64 chars)"
        )
    return label


def check_root(root: str | Path, source: str | Path | None = None) -> None:
    """Raise ``ValueError`` (one line) for a local root fhirhouse must not build in.

    Refused: the file-system root, the home folder itself, the source folder itself, a root
    inside the Bronze folder of a lake (``<lake>/bronze/...``), and a source inside the
    root's own Bronze. An object-store root is checked by :func:`check_uri` instead.
    """
    if is_uri(root):
        return
    path = Path(root).expanduser().resolve()
    if path == Path(path.anchor):
        raise ValueError(f"root {str(root)!r} is the file-system root; choose a folder, e.g. data")
    if path == Path.home().resolve():
        raise ValueError(f"root {str(root)!r} is your home folder itself; choose a folder in it")
    for folder in (path, *path.parents):
        if folder.name == "bronze" and (folder / "fhir").is_dir():
            raise ValueError(
                f"root {str(root)!r} is inside the Bronze folder of the lake at {folder.parent}"
            )
    if source is not None and not is_uri(source):
        src = Path(source).expanduser().resolve()
        if src == path:
            raise ValueError(f"root {str(root)!r} is the source folder; choose another folder")
        if src.is_relative_to(path / "bronze"):
            raise ValueError(f"source {str(source)!r} is inside the root's own Bronze folder")


@dataclass(frozen=True)
class Layout:
    """Every path fhirhouse uses for one root: ``data`` (Bronze, tables) and ``state``."""

    root: str
    data: Path | StorePath
    state: Path

    @classmethod
    def of(cls, root: str | Path, state_dir: str | Path | None = None) -> Layout:
        """Resolve ``root`` once. A local root holds its own state; an ``s3://`` root keeps
        its state in ``state_dir``, by default ``.fhirhouse-state/<bucket>/<prefix>`` under
        the working directory (absolute, so every job of a run agrees)."""
        if not is_uri(root):
            return cls(str(root), Path(root), Path(root))
        uri = check_uri(str(root))
        state = Path(state_dir) if state_dir else Path(".fhirhouse-state") / uri.split("://")[1]
        return cls(uri, StorePath(uri), state.resolve())

    @property
    def on_store(self) -> bool:
        """True when the data lives on an object store."""
        return isinstance(self.data, StorePath)

    # -- data: Bronze
    @property
    def bronze(self) -> Path | StorePath:
        return self.data / "bronze"

    @property
    def bronze_fhir(self) -> Path | StorePath:
        return self.bronze / "fhir"

    def bronze_cohort(self, cohort: str) -> Path | StorePath:
        return self.bronze_fhir / f"{COHORT_PREFIX}{check_cohort_label(cohort)}"

    @property
    def dicom(self) -> Path | StorePath:
        return self.bronze / "dicom"

    # -- data: tables
    def silver_table(self, table: str) -> Path | StorePath:
        if table not in SILVER_TABLES:
            raise ValueError(f"unknown Silver table {table!r}")
        return self.data / "silver" / table

    def table(self, name: str) -> Path | StorePath:
        """The Delta table ``name``: a Silver table, ``gold`` or an operations table."""
        if name in SILVER_TABLES:
            return self.silver_table(name)
        if name == "gold":
            return self.gold_table
        if name in OPS_TABLES:  # the properties of the same names
            return getattr(self, name)
        raise ValueError(f"unknown table {name!r}; one of: {', '.join(TABLES)}")

    @property
    def gold_table(self) -> Path | StorePath:
        return self.data / "gold" / "encounter_summary"

    @property
    def corpus_manifest(self) -> Path | StorePath:
        return self.data / "gold" / "_metadata" / "corpus_manifest.json"

    # -- state: landing
    @property
    def landing_metadata(self) -> Path:
        """Landing's bookkeeping (manifest, plan, index): local state, also for a store root."""
        return self.state / "bronze" / "_metadata"

    @property
    def source_state(self) -> Path:
        """The source folder's state the landing job was last run for (a job input)."""
        return self.markers / "bronze" / "_state" / "source.json"

    # -- state: staging
    def staging(self, cohort: str) -> Path:
        """The cohort's parse cache: every parsed row per table, and what it came from."""
        return self.state / "_staging" / "silver" / f"{COHORT_PREFIX}{cohort}"

    def staged(self, cohort: str, table: str) -> Path:
        return self.staging(cohort) / f"{table}.arrow"

    def parse_index(self, cohort: str) -> Path:
        return self.staging(cohort) / "files.json"

    def gold_pending(self, cohort: str) -> Path:
        """Patients of the cohort whose Gold rows must be recomputed (written by Silver)."""
        return self.state / "_staging" / "gold" / f"{COHORT_PREFIX}{cohort}.pending.arrow"

    def gold_states(self) -> dict[str, Path]:
        """Every cohort's :meth:`gold_state` file that exists, by cohort."""
        return _by_cohort(self.state / "_staging" / "gold")

    def gold_state(self, cohort: str) -> Path:
        """The numbers behind a cohort's Gold checks and manifest entry (written by Gold)."""
        return self.state / "_staging" / "gold" / f"{COHORT_PREFIX}{cohort}.json"

    def quarantine(self, cohort: str) -> Path:
        return self.state / "bronze" / "_quarantine" / f"{COHORT_PREFIX}{cohort}.json"

    @property
    def synth_dir(self) -> Path:
        return self.state / "_synth" / "bundles"

    @property
    def synth_marker(self) -> Path:
        return self.state / "_synth" / "manifest.json"

    # -- state: markers
    @property
    def markers(self) -> Path:
        return self.state / "_markers"

    def landing_marker(self) -> Path:
        return self.markers / "bronze" / "landing.json"

    def bronze_state(self, cohort: str) -> Path:
        """The fingerprint of a cohort's Bronze files that its bronze job was built from."""
        return self.damage_state("bronze", cohort)

    def bronze_marker(self, cohort: str) -> Path:
        return self.markers / "bronze" / f"{COHORT_PREFIX}{cohort}.json"

    def damage_state(self, layer: str, cohort: str) -> Path:
        """What damage was last found under the cohort's ``layer`` marker (a job input)."""
        return self.markers / layer / "_state" / f"{COHORT_PREFIX}{cohort}.json"

    def cohort_markers(self, layer: str) -> dict[str, Path]:
        """The cohort markers of ``layer`` that exist (``silver`` or ``gold``), by cohort."""
        return _by_cohort(self.markers / layer)

    def silver_cohort_marker(self, cohort: str) -> Path:
        return self.markers / "silver" / f"{COHORT_PREFIX}{cohort}.json"

    def silver_marker(self, table: str, cohort: str) -> Path:
        """The marker of an on-demand rewrite of one table's cohort partition."""
        return self.markers / "silver" / table / f"{COHORT_PREFIX}{cohort}.json"

    def gold_marker(self, cohort: str) -> Path:
        return self.markers / "gold" / f"{COHORT_PREFIX}{cohort}.json"

    def gold_manifest_marker(self) -> Path:
        return self.markers / "gold" / "manifest.json"

    def maintain_marker(self, table: str) -> Path:
        return self.markers / "maintain" / f"{table}.json"

    # -- state: checks, logs, reports, operations
    @property
    def checks(self) -> Path:
        return self.state / "_checks"

    def check_cohort(self, table: str, cohort: str) -> Path:
        return self.checks / "silver" / table / f"{COHORT_PREFIX}{cohort}.json"

    def check_cohort_md(self, cohort: str) -> Path:
        return self.checks / "silver" / f"{COHORT_PREFIX}{cohort}.md"

    def check_table(self, table: str) -> Path:
        return self.checks / "silver" / table / "table.json"

    def check_tables_md(self) -> Path:
        return self.checks / "silver" / "tables.md"

    def check_gold(self, cohort: str) -> Path:
        return self.checks / "gold" / f"{COHORT_PREFIX}{cohort}.json"

    def check_gold_md(self, cohort: str) -> Path:
        return self.checks / "gold" / f"{COHORT_PREFIX}{cohort}.md"

    @property
    def logs(self) -> Path:
        return self.state / "_logs"

    def log(self, *parts: str, cohort: str | None = None) -> Path:
        """A job's log: ``_logs/<parts...>[/cohort=<c>].log``."""
        return _leaf(self.logs, parts, cohort, ".log")

    @property
    def benchmarks(self) -> Path:
        return self.state / "_benchmarks"

    def benchmark(self, *parts: str, cohort: str | None = None) -> Path:
        """A job's Snakemake benchmark file: ``_benchmarks/<parts...>[/cohort=<c>].tsv``."""
        return _leaf(self.benchmarks, parts, cohort, ".tsv")

    @property
    def report_dir(self) -> Path:
        return self.state / "_report"

    @property
    def ops(self) -> Path:
        return self.state / "_ops"

    @property
    def maintenance_summary(self) -> Path:
        return self.ops / "maintenance.json"

    @property
    def run_history(self) -> Path:
        return self.ops / "run_history"

    @property
    def ingest_log(self) -> Path:
        return self.state / "silver" / "ingest_log"


def _by_cohort(folder: Path, suffix: str = ".json") -> dict[str, Path]:
    files = sorted(folder.glob(f"{COHORT_PREFIX}*{suffix}"))
    return {p.name[len(COHORT_PREFIX) : -len(suffix)]: p for p in files}


def _leaf(base: Path, parts: tuple[str, ...], cohort: str | None, suffix: str) -> Path:
    if cohort is None:
        return base.joinpath(*parts[:-1]) / f"{parts[-1]}{suffix}"
    return base.joinpath(*parts) / f"{COHORT_PREFIX}{cohort}{suffix}"
