"""Parse bundles into typed Silver rows: only the bundles that changed, on several cores.

:func:`parse_paths` reads and parses a list of bundle files into one Arrow table per Silver
table (every row, not yet deduplicated, with ``source_file``), plus quarantine entries and
what each file was parsed from. Given more than one worker and enough bytes, it spreads the
files over worker processes (started with ``spawn``: delta-rs breaks in a forked child);
the calling process parses a share itself.

:class:`ParseIndex` is the cohort's record of what each bundle was parsed from (size,
modification time, its DICOM files, a digest of its bytes), keyed by a digest of the file
name so that no bundle name is written down, plus a digest of the parser's own code: a code
change re-parses everything.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from fhirhouse import SILVER_TABLES, digest
from fhirhouse.bronze.dicom_index import DicomIndex
from fhirhouse.bronze.landing import dicom_stem
from fhirhouse.fhir import parse_bytes
from fhirhouse.fhir.parser import NotABundleError, RejectedBundleError
from fhirhouse.jobs import parse_workers
from fhirhouse.redact import redact
from fhirhouse.silver.build import build_table, duplicate_keys
from fhirhouse.store.atomic import write_json_atomic
from fhirhouse.store.objects import StorePath, is_uri

log = logging.getLogger(__name__)
# Progress of a parse: in the job log, and on the console of a Snakemake build (logs.PROGRESS)
progress = logging.getLogger("fhirhouse.progress")


def progress_marks(n: int) -> set[int]:
    """After which of ``n`` bundles to report progress: each quarter, and every 500."""
    return {-(-n * k // 4) for k in range(1, 5)} | set(range(500, n, 500))


BundlePath = Path | StorePath
#: Records are turned into Arrow tables every this many input bytes (bounds memory).
BUILD_EVERY_BYTES = 64 * 2**20


def code_digest() -> str:
    """The digest of the code that decides what a bundle parses into."""
    return digest.source_digest(*digest.PARSER_PACKAGES)


@dataclass(frozen=True)
class FileState:
    """What a bundle file was parsed from."""

    size: int
    mtime_ns: int
    dicom: str  # fingerprint of the bundle's DICOM files ("" when it has none)
    digest: str = ""  # of the bytes parsed (fhirhouse.digest)

    def same_stat(self, other: FileState) -> bool:
        return (self.size, self.mtime_ns, self.dicom) == (other.size, other.mtime_ns, other.dicom)


@dataclass
class ParseIndex:
    """Per bundle (by :func:`name_key`): the :class:`FileState` its rows were parsed from."""

    code: str
    files: dict[str, FileState] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> ParseIndex | None:
        try:
            doc = json.loads(path.read_text())
            files = {k: FileState(*v) for k, v in doc["files"].items()}
            return cls(doc["code"], files)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write(self, path: Path) -> None:
        files = {k: [s.size, s.mtime_ns, s.dicom, s.digest] for k, s in sorted(self.files.items())}
        write_json_atomic(path, {"code": self.code, "files": files})


def file_states(paths: Sequence[BundlePath], dicom: Iterable[BundlePath]) -> dict[str, FileState]:
    """The current :class:`FileState` (without digest) of each bundle, by file name."""
    by_stem: dict[str | None, list[str]] = {}
    for d in dicom:
        st = d.stat()
        by_stem.setdefault(dicom_stem(d.name), []).append(
            f"{d.name}\0{st.st_size}\0{st.st_mtime_ns}"
        )
    out = {}
    for p in paths:
        st = p.stat()
        parts = sorted(by_stem.get(p.stem, []))
        fp = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16] if parts else ""
        out[p.name] = FileState(st.st_size, st.st_mtime_ns, fp)
    return out


@dataclass
class ParsedFiles:
    """Rows of every parsed file per table, quarantine entries, and per-file digests."""

    tables: dict[str, pa.Table]
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)
    bytes: int = 0

    @property
    def files(self) -> int:
        return len(self.digests)


def quarantine_entry(
    cohort: str,
    name: str,
    sha256: str | None,
    size: int | None,
    kind: str,
    reason: str,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "cohort": cohort,
        "file_ref": redact(name),
        "sha256": sha256,
        "bytes": size,
        "kind": kind,
        "reason": reason,
        **extra,
    }


def _as_path(path: str) -> BundlePath:
    return StorePath(path) if is_uri(path) else Path(path)


class _Builder:
    """Turns records into Arrow tables every :data:`BUILD_EVERY_BYTES` of input."""

    def __init__(self, cohort: str, ingest_ts: dt.datetime, out: ParsedFiles) -> None:
        self.cohort, self.ingest_ts, self.out = cohort, ingest_ts, out
        self.records: dict[str, list[dict[str, Any]]] = {t: [] for t in SILVER_TABLES}
        self.sizes: dict[str, int] = {}
        self.parts: dict[str, list[pa.Table]] = {t: [] for t in SILVER_TABLES}
        self.pending = 0

    def add(self, name: str, size: int, records: dict[str, list[dict[str, Any]]]) -> None:
        self.sizes[name] = size
        for table, recs in records.items():
            for rec in recs:
                rec["source_file"] = name
            self.records[table].extend(recs)
        self.pending += size
        if self.pending >= BUILD_EVERY_BYTES:
            self.flush()

    def flush(self) -> None:
        for table in SILVER_TABLES:
            problems: Counter[tuple[str, str]] = Counter()
            self.parts[table].append(
                build_table(
                    table,
                    self.records[table],
                    ingest_timestamp=self.ingest_ts,
                    cohort=self.cohort,
                    problems=problems,
                    dedup=False,
                )
            )
            for (name, column), count in sorted(problems.items()):
                reason = (
                    f"{table}.{column}: {count} value(s) of the wrong type or format, "
                    "stored as null"
                )
                log.warning("bundle %s: %s", redact(name), reason)
                self.out.quarantine.append(
                    {
                        "cohort": self.cohort,
                        "file_ref": redact(name),
                        "bytes": self.sizes.get(name),
                        "kind": "value",
                        "reason": reason,
                        "table": table,
                        "column": column,
                        "count": count,
                    }
                )
            self.records[table] = []
        self.pending = 0

    def tables(self) -> dict[str, pa.Table]:
        self.flush()
        return {t: pa.concat_tables(parts) for t, parts in self.parts.items()}


def _record_ref(record: dict[str, Any]) -> str:
    """A redacted reference to a parsed record's content (equal records, equal refs)."""
    return redact(json.dumps(record, sort_keys=True, default=str))


def parse_batch(
    cohort: str, paths: Sequence[str], dicom_dir: str, ingest_ts: dt.datetime, report: bool = False
) -> ParsedFiles:
    """Read and parse each bundle once; bad files are quarantined, the rest goes on.
    ``dicom_dir``: Bronze's DICOM folder (:attr:`Layout.dicom`). With ``report``, the progress
    goes to the progress log (else to this module's log).

    Module-level and on plain strings so that a worker process can run it."""
    dicom = DicomIndex(_as_path(dicom_dir))
    resolver = dicom.resolve if len(dicom) else None
    out = ParsedFiles(tables={})
    builder = _Builder(cohort, ingest_ts, out)
    started = time.monotonic()
    marks = progress_marks(len(paths))
    for i, path in enumerate(map(_as_path, paths), 1):
        data = path.read_bytes()
        out.bytes += len(data)
        out.digests[path.name] = digest.of_bytes(data)
        try:
            parsed = parse_bytes(data, resolver)
        except NotABundleError as exc:
            reason = f"not a FHIR Bundle: {exc}"
        except RejectedBundleError as exc:
            reason = str(exc)
        else:
            reason = None
        # the SHA-256 a user can check with sha256sum, for files with something to report
        if reason is not None:
            sha256 = hashlib.sha256(data).hexdigest()
            out.quarantine.append(
                quarantine_entry(cohort, path.name, sha256, len(data), "file", reason)
            )
            log.warning("bundle %s quarantined: %s", redact(path.name), reason)
            continue
        duplicates = duplicate_keys(parsed.records)
        sha256 = hashlib.sha256(data).hexdigest() if parsed.issues or duplicates else None
        entry = functools.partial(quarantine_entry, cohort, path.name, sha256, len(data))
        if parsed.issues:
            kinds = Counter(issue.reason.split(":", 1)[0] for issue in parsed.issues)
            log.warning(
                "bundle %s: %d resource(s) dropped or kept FHIR-only (%s)",
                redact(path.name),
                len(parsed.issues),
                ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())),
            )
        for issue in parsed.issues:
            out.quarantine.append(
                entry("resource", issue.reason, resource_type=issue.resource_type)
            )
        if duplicates:
            log.warning(
                "bundle %s: %d id(s) used by more than one resource; the last of each is kept",
                redact(path.name),
                len(duplicates),
            )
        for table, key, kept, dropped in duplicates:
            reason = f"{table}: {len(dropped) + 1} resources share one id; the last is kept"
            out.quarantine.append(
                entry(
                    "duplicate",
                    reason,
                    table=table,
                    id_ref=redact(key),
                    kept_ref=_record_ref(kept),
                    dropped_refs=[_record_ref(r) for r in dropped],
                )
            )
        builder.add(path.name, len(data), parsed.records)
        if i in marks:
            (progress if report else log).info(
                "cohort %s: parsed %d/%d bundles (%.1f s)",
                cohort,
                i,
                len(paths),
                time.monotonic() - started,
            )
    out.tables = builder.tables()
    return out


def _shares(paths: Sequence[BundlePath], sizes: Sequence[int], n: int) -> list[list[str]]:
    """``n`` lists of paths with about equal bytes (largest files placed first)."""
    shares: list[list[str]] = [[] for _ in range(n)]
    load = [0] * n
    for size, path in sorted(zip(sizes, paths, strict=True), key=lambda sp: -sp[0]):
        i = load.index(min(load))
        shares[i].append(str(path))
        load[i] += size
    return shares


def _log_file() -> str | None:
    """The job's log file (the root logger's file handler), for worker processes to share."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def _worker_logging(log_file: str | None, level: int) -> None:
    """A worker logs into the job's log file, like the job itself (never to the console).
    Ctrl-C ends it at once and silently; the job's own process reports the interrupt."""
    import signal

    from fhirhouse import logs

    signal.signal(signal.SIGINT, signal.SIG_DFL)

    logs.configure(log_file, level=level, console_level="CRITICAL")


def _merge(parts: list[ParsedFiles]) -> ParsedFiles:
    out = ParsedFiles(
        tables={t: pa.concat_tables([p.tables[t] for p in parts]) for t in SILVER_TABLES}
    )
    for p in parts:
        out.quarantine += p.quarantine
        out.digests.update(p.digests)
        out.bytes += p.bytes
    return out


class ParsePool:
    """Worker processes for parsing (``spawn``), started once and reused for every cohort of
    one process (``fhirhouse run``): a worker that is already up is worth using for a few MiB.

    The workers start importing at once (in the background, while the caller lands files).
    Without a pool, :func:`parse_paths` starts workers for one call only, and only when the
    bytes to parse pay for their start-up (:func:`fhirhouse.jobs.parse_workers`)."""

    #: Bytes per process below which even a running worker is not worth the hand-over.
    WARM_BYTES = 4 * 2**20

    def __init__(self, processes: int) -> None:
        self.processes = max(1, processes)  # this one included
        self._pool: Any = None
        if self.processes > 1:
            self._pool = _executor(self.processes - 1)
            for _ in range(self.processes - 1):
                self._pool.submit(_warm)

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def _warm() -> None:
    """Nothing: the worker has imported this module (and the parser) by now."""


def _executor(workers: int) -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_logging,
        initargs=(_log_file(), logging.getLogger().level),
    )


def parse_paths(
    cohort: str,
    paths: Sequence[BundlePath],
    sizes: Sequence[int],
    dicom_dir: BundlePath,
    ingest_ts: dt.datetime,
    workers: int = 1,
    pool: ParsePool | None = None,
) -> ParsedFiles:
    """Parse ``paths`` (of ``sizes`` bytes) on up to ``workers`` processes, this one included
    (``pool``'s workers when given). The shares are about equal in bytes."""
    total = sum(sizes)
    warm = pool._pool if pool is not None else None
    if warm is not None:
        n = min(pool.processes, max(1, total // ParsePool.WARM_BYTES))
    else:
        n = parse_workers(total, workers)
    n = min(n, max(1, len(paths)))
    if n == 1:
        return parse_batch(cohort, [str(p) for p in paths], str(dicom_dir), ingest_ts, report=True)
    shares = _shares(paths, sizes, n)
    progress.info("cohort %s: parsing %d bundles on %d processes", cohort, len(paths), n)
    executor = warm if warm is not None else _executor(n - 1)
    try:
        futures = [
            executor.submit(parse_batch, cohort, share, str(dicom_dir), ingest_ts)
            for share in shares[1:]
        ]
        # this process's share first, then each worker's as it is collected
        results = [lambda: parse_batch(cohort, shares[0], str(dicom_dir), ingest_ts)]
        parts: list[ParsedFiles] = []
        done = 0
        for share, result in zip(shares, results + [f.result for f in futures], strict=True):
            parts.append(result())
            done += len(share)
            progress.info("cohort %s: parsed %d/%d bundles", cohort, done, len(paths))
    finally:
        if executor is not warm:
            executor.shutdown()
    return _merge(parts)
