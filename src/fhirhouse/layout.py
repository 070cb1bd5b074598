"""Every path fhirhouse uses for one storage root, and the cohort-label rule.

Light on purpose (the standard library and :mod:`fhirhouse.store.objects` only): the
Snakefile imports it on every invocation, and so does every job before it knows what else
it needs.

``Layout.data`` holds Bronze, the Silver and Gold Delta tables and the corpus manifest;
``Layout.root`` holds the local state (markers, staging, logs, checks, run history,
quarantine lists, reports). They are the same folder unless the root is an object store URI
(see :mod:`fhirhouse.store.objects`)::

    bronze/fhir/cohort=<c>/*.json              raw bundles
    silver/<table>/                            Delta, partitioned by cohort, CDF on
    gold/encounter_summary/, gold/_metadata/corpus_manifest.json
    bronze/_quarantine/cohort=<c>.json         what the last parse of <c> skipped, and why
    _staging/silver/cohort=<c>/<table>.arrow   every parsed row of the cohort, per table
    _staging/silver/cohort=<c>/files.json      what each bundle was parsed from
    _staging/gold/cohort=<c>.pending.arrow     patients whose Gold rows are due
    _staging/gold/cohort=<c>.json              the numbers behind the cohort's Gold checks
    _markers/...                               one JSON per (layer, cohort[, table])
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fhirhouse import SILVER_TABLES
from fhirhouse.store.objects import StorePath, data_root, is_uri, state_dir

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
    """Every path fhirhouse uses for one root (``root``: local state, ``data``: the data)."""

    root: Path
    data: Path | StorePath

    @classmethod
    def of(cls, root: str | Path) -> Layout:
        return cls(state_dir(root), data_root(root))

    # -- data
    def silver_table(self, table: str) -> Path | StorePath:
        if table not in SILVER_TABLES:
            raise ValueError(f"unknown Silver table {table!r}")
        return self.data / "silver" / table

    @property
    def gold_table(self) -> Path | StorePath:
        return self.data / "gold" / "encounter_summary"

    @property
    def corpus_manifest(self) -> Path | StorePath:
        return self.data / "gold" / "_metadata" / "corpus_manifest.json"

    # -- state: staging
    def staging(self, cohort: str) -> Path:
        """The cohort's parse cache: every parsed row per table, and what it came from."""
        return self.root / "_staging" / "silver" / f"cohort={cohort}"

    def staged(self, cohort: str, table: str) -> Path:
        return self.staging(cohort) / f"{table}.arrow"

    def parse_index(self, cohort: str) -> Path:
        return self.staging(cohort) / "files.json"

    def gold_pending(self, cohort: str) -> Path:
        """Patients of the cohort whose Gold rows must be recomputed (written by Silver)."""
        return self.root / "_staging" / "gold" / f"cohort={cohort}.pending.arrow"

    def gold_state(self, cohort: str) -> Path:
        """The numbers behind a cohort's Gold checks and manifest entry (written by Gold)."""
        return self.root / "_staging" / "gold" / f"cohort={cohort}.json"

    def quarantine(self, cohort: str) -> Path:
        return self.root / "bronze" / "_quarantine" / f"cohort={cohort}.json"

    @property
    def synth_dir(self) -> Path:
        return self.root / "_synth" / "bundles"

    @property
    def synth_marker(self) -> Path:
        return self.root / "_synth" / "manifest.json"

    # -- state: markers
    @property
    def markers(self) -> Path:
        return self.root / "_markers"

    def landing_marker(self) -> Path:
        return self.markers / "bronze" / "landing.json"

    def bronze_state(self, cohort: str) -> Path:
        """The fingerprint of a cohort's Bronze files that its bronze job was built from."""
        return self.markers / "bronze" / "_state" / f"cohort={cohort}.json"

    def bronze_marker(self, cohort: str) -> Path:
        return self.markers / "bronze" / f"cohort={cohort}.json"

    def damage_state(self, layer: str, cohort: str) -> Path:
        """What damage was last found under the cohort's ``layer`` marker (a job input)."""
        return self.markers / layer / "_state" / f"cohort={cohort}.json"

    def silver_cohort_marker(self, cohort: str) -> Path:
        return self.markers / "silver" / f"cohort={cohort}.json"

    def silver_marker(self, table: str, cohort: str) -> Path:
        """The marker of an on-demand rewrite of one table's cohort partition."""
        return self.markers / "silver" / table / f"cohort={cohort}.json"

    def gold_marker(self, cohort: str) -> Path:
        return self.markers / "gold" / f"cohort={cohort}.json"

    def gold_manifest_marker(self) -> Path:
        return self.markers / "gold" / "manifest.json"

    # -- state: checks, logs, reports
    @property
    def checks(self) -> Path:
        return self.root / "_checks"

    def check_cohort(self, table: str, cohort: str) -> Path:
        return self.checks / "silver" / table / f"cohort={cohort}.json"

    def check_cohort_md(self, cohort: str) -> Path:
        return self.checks / "silver" / f"cohort={cohort}.md"

    def check_table(self, table: str) -> Path:
        return self.checks / "silver" / table / "table.json"

    def check_tables_md(self) -> Path:
        return self.checks / "silver" / "tables.md"

    def check_gold(self, cohort: str) -> Path:
        return self.checks / "gold" / f"cohort={cohort}.json"

    def check_gold_md(self, cohort: str) -> Path:
        return self.checks / "gold" / f"cohort={cohort}.md"

    @property
    def logs(self) -> Path:
        return self.root / "_logs"

    @property
    def benchmarks(self) -> Path:
        return self.root / "_benchmarks"

    @property
    def report_dir(self) -> Path:
        return self.root / "_report"
