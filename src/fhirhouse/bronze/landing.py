"""Bronze landing: raw bundle files into ``bronze/fhir/cohort=<label>/`` of a root.

Landing copies each not-yet-landed ``*.json`` of ``source`` into a cohort folder and never
modifies a source file. Copies are written to a temporary name and renamed, so a reader never
sees half a file. Rules:

- initial landing (and any later batch without an explicit cohort): round-robin over the
  sorted new file names, file *i* -> label *i mod n*;
- an explicit ``cohort`` puts every not-yet-landed file into that cohort (a new drop);
- a landed file keeps its cohort; when its source bytes changed, the Bronze copy is replaced;
- with no ``source``, an existing Bronze tree is used as it is.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import string
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import blake3

from fhirhouse import digest as digest_mod
from fhirhouse import faults
from fhirhouse.layout import COHORT_PREFIX, Layout, check_cohort_label
from fhirhouse.redact import RedactedError, name_key, redact
from fhirhouse.store.atomic import write_json_atomic
from fhirhouse.store.objects import StorePath
from fhirhouse.words import plural

# A Bronze path: a local file or folder, or a key on an object store.
BronzePath = Path | StorePath

log = logging.getLogger(__name__)

TEMP_MARK = ".tmp-"  # in the name of a copy not yet renamed into place


def manifest_path(layout: Layout) -> Path:
    return layout.landing_metadata / "manifest.json"


def default_labels(n: int) -> list[str]:
    """``n`` cohort labels A, B, C, ... (at most 26)."""
    if not 1 <= n <= 26:
        raise ValueError(f"cohorts must be between 1 and 26, got {n}")
    return list(string.ascii_uppercase[:n])


def resolve_labels(cohorts: int | Sequence[str]) -> list[str]:
    """Labels from a count (3 -> A, B, C) or an explicit list, validated and distinct."""
    labels = default_labels(cohorts) if isinstance(cohorts, int) else list(cohorts)
    if not labels:
        raise ValueError("at least one cohort label is needed")
    for label in labels:
        check_cohort_label(label)
    if len(set(labels)) != len(labels):
        raise ValueError(f"cohort labels must be distinct: {labels}")
    return labels


def list_cohorts(layout: Layout) -> list[str]:
    """Labels of the ``cohort=*`` folders under Bronze, sorted."""
    base = layout.bronze_fhir
    if not base.is_dir():
        return []
    out = []
    for p in base.iterdir():
        if p.is_dir() and p.name.startswith(COHORT_PREFIX):
            label = p.name[len(COHORT_PREFIX) :]
            try:
                out.append(check_cohort_label(label))
            except ValueError:
                log.warning("ignoring a cohort folder with an invalid label")
    return sorted(out)


def links_outside(folder: BronzePath, base: BronzePath | None = None) -> list[Path]:
    """The ``*.json`` symbolic links in ``folder`` that resolve outside ``base`` (default:
    ``folder``) or to nothing. Landing and parsing refuse them: a link must not pull in a file
    from elsewhere on the machine. An object store has no links."""
    if isinstance(folder, StorePath) or not folder.is_dir():
        return []
    base = (base or folder).resolve()
    out = []
    for p in folder.iterdir():
        if p.suffix == ".json" and p.is_symlink():
            target = p.resolve()
            if not target.is_file() or not target.is_relative_to(base):
                out.append(p)
    return out


def _bundle_files(folder: BronzePath, base: BronzePath | None = None) -> list[BronzePath]:
    refused = set(links_outside(folder, base))
    return sorted(
        p for p in folder.iterdir() if p.suffix == ".json" and p.is_file() and p not in refused
    )


def cohort_files(layout: Layout, cohort: str) -> list[BronzePath]:
    """The sorted bundle files of one cohort (symbolic links out of Bronze are left out)."""
    d = layout.bronze_cohort(cohort)
    if not d.is_dir():
        return []
    return _bundle_files(d, layout.bronze_fhir)


def dicom_stem(name: str) -> str | None:
    """The stem of the bundle file a DICOM file belongs to, by Coherent naming: a DICOM file
    is named ``<bundle file stem><StudyInstanceUID>.dcm``; ``None`` without a UID."""
    from fhirhouse.fhir.dicom import uid_from_filename

    uid = uid_from_filename(name)
    return name[: -(len(uid) + 4)] if uid else None


def cohort_dicom_files(layout: Layout, files: Sequence[BronzePath]) -> list[BronzePath]:
    """The DICOM files of a cohort's bundles (:func:`dicom_stem`), sorted."""
    folder = layout.dicom
    if not folder.is_dir():
        return []
    stems = {p.stem for p in files}
    return sorted(p for p in folder.glob("*.dcm") if dicom_stem(p.name) in stems)


def cohort_inputs(
    layout: Layout, cohort: str, files: Sequence[BronzePath] | None = None
) -> list[BronzePath]:
    """Everything a cohort's parse reads from Bronze: its bundles and their DICOM files.
    ``files``: the cohort's bundles when the caller has listed them already."""
    files = cohort_files(layout, cohort) if files is None else list(files)
    return files + cohort_dicom_files(layout, files)


def folder_state(files: Sequence[BronzePath]) -> dict[str, object]:
    """A cheap fingerprint of a set of files (names, sizes, mtimes) that names none of them."""
    h = hashlib.sha256()
    total = 0
    for p in sorted(files, key=lambda x: x.name):
        st = p.stat()
        total += st.st_size
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"files": len(files), "bytes": total, "fingerprint": h.hexdigest()}


def sync_state_file(
    path: str | Path, files: Sequence[BronzePath], extra: dict[str, object] | None = None
) -> Path:
    """Write ``folder_state(files)`` (and ``extra``) to ``path`` only when it changed; return
    ``path``.

    Snakemake tracks these small files instead of the bundles themselves, so job listings and
    Snakemake's own logs never show a bundle file name (they embed patient names and ids),
    while an added, removed or rewritten bundle still changes the file and triggers a rerun.
    """
    path = Path(path)
    state = {**folder_state(files), **(extra or {})}
    if path.exists():
        try:
            if json.loads(path.read_text()) == state:
                return path
        except ValueError:
            pass
    write_json_atomic(path, state)
    return path


@dataclass
class LandingResult:
    new: dict[str, int] = field(default_factory=dict)
    replaced: dict[str, int] = field(default_factory=dict)
    # Bronze copies that differed from what was landed, or had vanished, while their source
    # file is unchanged: landed again from the source
    restored: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0
    dicom: int = 0  # DICOM files landed or replaced
    refused_links: int = 0  # symbolic links out of the source folder, not landed
    manifest: dict[str, object] = field(default_factory=dict)

    @property
    def touched_cohorts(self) -> list[str]:
        return sorted(set(self.new) | set(self.replaced) | set(self.restored))


class BronzeTampered(RedactedError, ValueError):
    """A landed Bronze file changed since it was landed and its source file is gone, so it
    cannot be landed again: the message names the cohort and the redacted file."""


def _landed_index(layout: Layout) -> dict[str, str]:
    """File name -> cohort for every bundle already in Bronze."""
    index: dict[str, str] = {}
    for label in list_cohorts(layout):
        for p in cohort_files(layout, label):
            if p.name in index:
                log.warning("a bundle file name is landed in two cohorts; keeping the first")
                continue
            index[p.name] = label
    return index


@dataclass
class _DigestCache:
    """Digests of a root's Bronze files, each with the file's size, mtime, ctime and inode
    when it was hashed, kept in the state folder between invocations (keyed by a digest of
    the file's path inside Bronze: no file name is written down)."""

    path: Path
    entries: dict[str, list]
    seen: set[str] = field(default_factory=set)
    changed: bool = False


_CACHES: dict[Path, _DigestCache] = {}


def _digest_cache(layout: Layout) -> _DigestCache:
    path = layout.landing_metadata / "digests.json"
    if path not in _CACHES:
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        _CACHES[path] = _DigestCache(path, entries if isinstance(entries, dict) else {})
    return _CACHES[path]


#: A digest taken less than this long after the file last changed is not trusted on the next
#: check (file times are kept at a coarse clock's tick: a later write within the same tick
#: would leave them as they were).
RACY_NS = 1_000_000_000


def _stat_entry(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _trusted(entry: list | None, stat: list[int]) -> bool:
    """Whether a cached ``[size, mtime, ctime, inode, digest, hashed_at]`` still holds."""
    return (
        isinstance(entry, list)
        and len(entry) == 6
        and entry[:4] == stat
        and entry[5] - stat[2] > RACY_NS
    )


def _cache_key(layout: Layout, path: Path) -> str:
    try:
        return name_key(path.relative_to(layout.bronze).as_posix())
    except ValueError:
        return name_key(str(path))


def bronze_digest(layout: Layout, path: BronzePath) -> str:
    """The digest of a Bronze file (:func:`fhirhouse.digest.of_file`), hashed again only
    when its size, mtime, ctime or inode changed since it was last hashed. Any write to a
    file, and any change of its times, sets its ctime, so an edit that keeps the size and
    puts the mtime back is still seen; what no stat shows (a disk corrupting bytes in place)
    is not. Files on an object store are hashed every time."""
    if isinstance(path, StorePath):
        return digest_mod.of_file(path)
    cache = _digest_cache(layout)
    key, stat = _cache_key(layout, path), _stat_entry(path)
    cache.seen.add(key)
    entry = cache.entries.get(key)
    if not _trusted(entry, stat):
        entry = cache.entries[key] = [*stat, digest_mod.of_file(path), time.time_ns()]
        cache.changed = True
    return entry[4]


def _save_digests(layout: Layout, *, prune: bool) -> None:
    """Write the digest cache when it changed; ``prune``: keep only the files looked at in
    this process (after a check of all of Bronze)."""
    cache = _digest_cache(layout)
    if prune and set(cache.entries) - cache.seen:
        cache.entries = {k: v for k, v in cache.entries.items() if k in cache.seen}
        cache.changed = True
    if cache.changed and cache.path.parent.is_dir():
        write_json_atomic(cache.path, cache.entries)
        cache.changed = False


def _recorded_cohort(known: list | None) -> str | None:
    """The cohort a landing index entry says its file was landed into (older entries: none)."""
    return known[3] if known and len(known) > 3 else None


def _copy_atomic(src: Path, dst: BronzePath, previous: str | None = None) -> str | None:
    """Copy ``src`` to ``dst`` through a temporary name; return the digest of the bytes
    landed (:mod:`fhirhouse.digest`), or ``None`` when they equal ``previous`` (``dst`` is
    then left as it was).

    Each byte is hashed once, from the temporary copy, so the digest is that of the bytes
    that land even if the source changes meanwhile. A local copy is made by the kernel
    (``copy_file_range``/``sendfile``); on an object store the temporary object is moved by
    a server-side copy, so ``dst`` never holds part of a file even when an upload fails."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dst)
    try:
        if isinstance(tmp, StorePath):
            h = blake3.blake3()
            with open(src, "rb") as fin, tmp.open("wb") as fout:
                for chunk in iter(lambda: fin.read(1 << 20), b""):
                    h.update(chunk)
                    fout.write(chunk)
            digest = digest_mod.PREFIX + h.hexdigest()
        else:
            shutil.copyfile(src, tmp)
            digest = digest_mod.of_file(tmp)
        if digest == previous and dst.exists():
            tmp.unlink()
            return None
        tmp.replace(dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    faults.point("land.after_copy")
    return digest


def _temp_name(dst: BronzePath) -> BronzePath:
    return dst.with_name(f".{dst.name}{TEMP_MARK}{os.getpid()}-{threading.get_ident()}")


def remove_stale_temps(layout: Layout) -> int:
    """Delete the temporary copies a landing killed half-way left behind (several copies
    run at once, so a kill can catch one mid-way); return how many."""
    folders = [layout.bronze_cohort(c) for c in list_cohorts(layout)] + [layout.dicom]
    stale = [p for f in folders if f.is_dir() for p in f.glob(f".*{TEMP_MARK}*")]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temporary file(s) an interrupted landing left behind", len(stale))
    return len(stale)


def _copy_all(tasks: list[tuple[Path, BronzePath, str | None]]) -> list[str | None]:
    """:func:`_copy_atomic` for each ``(src, dst, previous)``, on a few threads (copies and
    hashes release the interpreter lock, so they run side by side)."""
    if len(tasks) < 2:
        return [_copy_atomic(*t) for t in tasks]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1, len(tasks))) as pool:
        return list(pool.map(lambda t: _copy_atomic(*t), tasks))


def plan_path(layout: Layout) -> Path:
    return layout.landing_metadata / "landing_plan.json"


def _plan_batch(
    layout: Layout, fresh: list[str], labels: list[str], cohort: str | None
) -> dict[str, str]:
    """The cohort of each new file, written down before the first copy.

    A landing cut short (a crash, a full disk) leaves its plan behind; the next landing keeps
    the planned cohort of every file it still has to land, so the files of one batch end in
    the cohorts a clean landing would have given them. Files not in that plan are spread
    round-robin as usual.
    """
    path = plan_path(layout)
    pending: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    plan = {n: pending[name_key(n)] for n in fresh if name_key(n) in pending}
    rest = [n for n in fresh if n not in plan]
    for i, name in enumerate(rest):
        plan[name] = cohort if cohort is not None else labels[i % len(labels)]
    if plan:
        write_json_atomic(path, {**pending, **{name_key(n): c for n, c in plan.items()}})
    return plan


def landed_index_path(layout: Layout) -> Path:
    return layout.landing_metadata / "landed.json"


def read_landed_index(layout: Layout) -> dict[str, list]:
    """Landing's index: name digest (:func:`fhirhouse.redact.name_key`) -> ``[source size,
    source mtime_ns, digest of the bytes landed, cohort]`` for each bundle (DICOM files:
    ``dicom/<name>``, without a cohort). No file name is written down."""
    path = landed_index_path(layout)
    return json.loads(path.read_text()) if path.exists() else {}


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def source_files(source: str | Path) -> list[Path]:
    """What landing reads from ``source``: its bundles and its ``dicom/*.dcm`` files (none
    while the folder does not exist, e.g. a corpus not generated yet)."""
    src = Path(source)
    if not src.is_dir():
        return []
    return _bundle_files(src) + sorted(src.glob("dicom/*.dcm"))


def sync_source_state(path: str | Path, layout: Layout, source: str | Path) -> Path:
    """The state file the workflow's landing job depends on: the source folder's
    :func:`folder_state` and the :func:`bronze_drift` of what was landed from it, so the
    landing reruns when a source file changes and when a Bronze copy no longer matches."""
    drift = bronze_drift(layout, source)
    seen = hashlib.sha256(json.dumps(drift).encode()).hexdigest() if drift else None
    return sync_state_file(path, source_files(source), {"bronze_drift": seen})


def bronze_drift(layout: Layout, source: str | Path) -> list[list[str]]:
    """What the next landing must act on in Bronze, ``[name digest, what is there now]``
    each, sorted: a landed bundle or DICOM file whose Bronze copy no longer holds the bytes
    landed (``"missing"`` when the copy is gone while its source file is there); a changed
    copy whose source file is gone (the landing stops on it); and a bundle gone from both
    (``"withdrawn"``: the landing forgets it).

    Every landed Bronze file is checked (:func:`bronze_digest`: hashed again when its stat
    changed); the workflow calls this on every invocation, so Bronze is verified, not
    trusted."""
    index = read_landed_index(layout)
    if not index:
        return []
    landed = _landed_index(layout)
    in_source = {p.name for p in source_files(source) if p.suffix == ".json"}
    out = [[name_key(name), now] for name, _, now in _changed_copies(layout, landed, index)]
    out += [[key, "withdrawn"] for key in _withdrawn(index, in_source, landed)]
    for name in in_source - set(landed):
        known = index.get(key := name_key(name))
        if _recorded_cohort(known) is not None:
            out.append([key, "missing"])
    dicom = layout.dicom
    for p in sorted(Path(source, "dicom").glob("*.dcm")):
        known = index.get(key := name_key(f"dicom/{p.name}"))
        if known:
            target = dicom / p.name
            now = bronze_digest(layout, target) if target.exists() else "missing"
            if now != known[2]:
                out.append([key, now])
    _save_digests(layout, prune=True)
    return sorted(out)


def restored_note(restored: dict[str, int]) -> str:
    """``", 1 landed again (Bronze had changed)"`` for a landing that restored files."""
    n = sum(restored.values())
    return f", {n:,} landed again (Bronze had changed)" if n else ""


def changed_since_landing(layout: Layout, cohort: str) -> tuple[int, int]:
    """How many of the cohort's landed bundles no longer hold the bytes landed, and how many
    are gone from Bronze (by landing's index; ``fhirhouse status`` shows them)."""
    index = read_landed_index(layout)
    keys = {name_key(p.name): p for p in cohort_files(layout, cohort)}
    changed = sum(
        1 for k, p in keys.items() if k in index and bronze_digest(layout, p) != index[k][2]
    )
    gone = sum(1 for k, v in index.items() if _recorded_cohort(v) == cohort and k not in keys)
    return changed, gone


def _changed_copies(
    layout: Layout, landed: dict[str, str], index: dict[str, list]
) -> list[tuple[str, str, str]]:
    """``(name, cohort, digest now)`` of each landed bundle whose Bronze copy no longer holds
    the bytes recorded at landing (``landed``: name -> cohort, as in Bronze now)."""
    out = []
    for name, label in landed.items():
        known = index.get(name_key(name))
        now = bronze_digest(layout, layout.bronze_cohort(label) / name) if known else None
        if known and now != known[2]:
            out.append((name, label, now))
    return out


def _withdrawn(index: dict[str, list], names: Iterable[str], landed: dict[str, str]) -> list[str]:
    """Index keys of bundles gone from both the source (``names``) and Bronze."""
    present = {name_key(n) for n in (*names, *landed)}
    return [k for k, v in index.items() if _recorded_cohort(v) is not None and k not in present]


def _check_orphans(layout: Layout, names: set[str], landed: dict[str, str], index: dict) -> None:
    """Bronze bundles whose source file is gone: a copy that changed since it was landed
    cannot be landed again, so the landing stops (naming the cohort and redacted file);
    index entries of files gone from both Bronze and the source are dropped."""
    orphans = {n: c for n, c in landed.items() if n not in names}
    for name, label, _ in _changed_copies(layout, orphans, index):
        raise BronzeTampered(
            f"cohort {label}: Bronze file {redact(name)} changed since it was landed and "
            "its source file is gone; put the source file back (it is landed again) or "
            "delete the Bronze file"
        )
    for key in _withdrawn(index, names, landed):
        del index[key]


def land(
    layout: Layout,
    source: str | Path | None,
    *,
    cohorts: int | Sequence[str] = 3,
    cohort: str | None = None,
) -> LandingResult:
    """Land ``source`` into the Bronze of ``layout`` and write the Bronze manifest.

    Bronze is verified against the digests recorded when each file landed: a copy that
    changed or vanished while its source file did not is landed again from the source (into
    the cohort it was landed into), and a changed copy whose source is gone stops the
    landing (:class:`BronzeTampered`)."""
    labels = resolve_labels(cohorts)
    if cohort is not None:
        check_cohort_label(cohort)
    result = LandingResult()
    if source is not None:
        src = Path(source)
        if not src.is_dir():
            raise FileNotFoundError(f"source folder does not exist: {src}")
        remove_stale_temps(layout)
        landed = _landed_index(layout)
        index = read_landed_index(layout)
        refused = links_outside(src)
        if refused:
            result.refused_links = len(refused)
            log.warning(
                "refused %d symbolic link(s) in the source folder that point outside it "
                "(or nowhere); they are not landed",
                len(refused),
            )
        names = [p.name for p in _bundle_files(src)]
        _check_orphans(layout, set(names), landed, index)
        homes = {n: landed.get(n) or _recorded_cohort(index.get(name_key(n))) for n in names}
        fresh = [n for n in names if homes[n] is None]
        plan = _plan_batch(layout, fresh, labels, cohort)
        stats = {name: _stat_key(src / name) for name in names}
        # (name, cohort, kind, digest of the Bronze copy to compare the source's bytes with)
        tasks: list[tuple[str, str, str, str | None]] = [(n, plan[n], "new", None) for n in fresh]
        for name in names:
            label = homes[name]
            if label is None:
                continue
            known = index.get(name_key(name))
            if name not in landed:  # vanished from Bronze
                tasks.append((name, label, "restored", None))
                continue
            now = bronze_digest(layout, layout.bronze_cohort(label) / name)
            if known and now != known[2]:  # changed in Bronze, not by a landing
                # (a copy equal to the source: a landing cut short before its index)
                tasks.append((name, label, "restored", now))
            elif known and known[:2] == stats[name]:
                result.unchanged += 1
                index[name_key(name)] = [*known[:3], label]  # older indexes: no cohort
            else:
                tasks.append((name, label, "replaced", now))
        digests = _copy_all(
            [(src / name, layout.bronze_cohort(label) / name, now) for name, label, _, now in tasks]
        )
        for (name, label, kind, now), digest in zip(tasks, digests, strict=True):
            counts = {"new": result.new, "replaced": result.replaced}.get(kind, result.restored)
            if digest is None:  # touched, same bytes
                result.unchanged += 1
            else:
                counts[label] = counts.get(label, 0) + 1
            index[name_key(name)] = [*stats[name], digest or now, label]
        plan_path(layout).unlink(missing_ok=True)
        result.dicom = _land_dicom(layout, src / "dicom", index)
        write_json_atomic(landed_index_path(layout), index)
        _save_digests(layout, prune=False)
        for label, n in sorted(result.restored.items()):
            log.warning(
                "cohort %s: %s changed or vanished since landing; landed again from the source",
                label,
                plural(n, "Bronze file"),
            )
        log.info(
            "landed %d new and %d changed bundle files (%d unchanged) into cohorts %s",
            sum(result.new.values()),
            sum(result.replaced.values()),
            result.unchanged,
            result.touched_cohorts,
        )
    elif not list_cohorts(layout):
        raise FileNotFoundError(
            f"no source folder given and no Bronze cohorts under {layout.bronze_fhir}; "
            "set `source` (config or --source) to a folder of bundle *.json files"
        )
    result.manifest = write_manifest(layout, source)
    return result


def _land_dicom(layout: Layout, src: Path, index: dict[str, list]) -> int:
    """Copy new or changed ``*.dcm`` files of ``src`` (a source's ``dicom/`` folder) to
    Bronze's ``dicom/`` folder; return how many were copied. ``index`` (landing's, updated here)
    spares reading a source file whose size and modification time are unchanged; each
    Bronze copy is checked against the digest it landed with."""
    if not src.is_dir():
        return 0
    base = src.parent.resolve()  # the source folder
    dst = layout.dicom
    tasks = []
    for p in sorted(src.glob("*.dcm")):
        if not p.resolve().is_relative_to(base):
            log.warning("refused a DICOM symbolic link that points outside the source folder")
            continue
        key, target, stat = name_key(f"dicom/{p.name}"), dst / p.name, _stat_key(p)
        known = index.get(key)
        now = bronze_digest(layout, target) if target.exists() else None
        if known and known[:2] == stat and now == known[2]:
            continue
        # a copy that changed since it was landed is replaced whatever the source holds
        previous = now if not known or now == known[2] else None
        tasks.append((key, stat, (p, target, previous)))
    digests = _copy_all([t[2] for t in tasks])
    for (key, stat, (_, _, previous)), digest in zip(tasks, digests, strict=True):
        index[key] = [*stat, digest or previous]
    copied = sum(d is not None for d in digests)
    if copied:
        log.info("landed %s", plural(copied, "DICOM file"))
    return copied


def write_manifest(layout: Layout, source: str | Path | None) -> dict[str, object]:
    """Write landing's ``manifest.json`` from what is in Bronze now."""
    counts: dict[str, int] = {}
    total_bytes = 0
    for label in list_cohorts(layout):
        files = cohort_files(layout, label)
        counts[label] = len(files)
        total_bytes += sum(p.stat().st_size for p in files)
    manifest: dict[str, object] = {
        "source": str(source) if source is not None else "existing bronze tree",
        "ingested_at": dt.datetime.now(dt.UTC).isoformat(),
        "file_count": sum(counts.values()),
        "total_bytes": total_bytes,
        "cohorts": counts,
    }
    write_json_atomic(manifest_path(layout), manifest)
    return manifest
