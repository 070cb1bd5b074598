"""Roots on an object store (``s3://bucket/prefix``): where data lives, where state lives.

A local root holds everything. An ``s3://`` root holds the data (Bronze files, the Silver
and Gold Delta tables, the corpus manifest); the state a run keeps for itself (markers,
staged Arrow files, logs, checks, run history, quarantine lists, reports) stays on local
disk in the *state directory* (:meth:`fhirhouse.layout.Layout.of`).

Files go through :mod:`pyarrow.fs` (already a dependency; credentials, region and endpoint
come from the usual ``AWS_*`` variables), Delta tables through deltalake with
:func:`delta_storage_options`. :class:`StorePath` offers the small part of
:class:`pathlib.Path` that Bronze needs, so landing and parsing read a local folder and a
store prefix with one code path.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow.fs as pafs

SCHEMES = ("s3://",)


def is_uri(root: object) -> bool:
    """True when ``root`` names an object store (``s3://...``) rather than a local path."""
    return isinstance(root, StorePath) or str(root).startswith(SCHEMES)


def check_uri(uri: str) -> str:
    """``uri`` without a trailing slash; ``ValueError`` when it has no bucket."""
    uri = uri.rstrip("/")
    bucket = uri.split("://", 1)[1].split("/", 1)[0]
    if not bucket:
        raise ValueError(f"object store root {uri!r} has no bucket: use s3://bucket/prefix")
    return uri


def delta_storage_options(path: object) -> dict[str, str] | None:
    """deltalake ``storage_options`` for a table at ``path``; ``None`` for a local table.

    On S3 two writers must never both commit version N. deltalake 1.x writes each commit
    file with a conditional put (``If-None-Match: *``): the store refuses the second writer,
    which then retries at N+1. That needs a store with conditional writes (AWS S3 since
    2024, MinIO, moto); deltalake 1.x has no DynamoDB locking provider any more. fhirhouse
    asks for it explicitly (``conditional_put=etag``, or ``$AWS_CONDITIONAL_PUT``); endpoint,
    region, credentials and ``AWS_ALLOW_HTTP`` come from the usual ``AWS_*`` variables.
    """
    if not is_uri(path):
        return None
    return {"conditional_put": os.environ.get("AWS_CONDITIONAL_PUT", "etag")}


_FILESYSTEMS: dict[str, pafs.FileSystem] = {}


def _pafs() -> Any:
    """``pyarrow.fs``, imported on first use: local roots never need it."""
    import pyarrow.fs

    return pyarrow.fs


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    pafs = _pafs()
    scheme_bucket = uri.split("/", 3)[:3]
    key = "/".join(scheme_bucket)
    if key not in _FILESYSTEMS:
        _FILESYSTEMS[key] = pafs.FileSystem.from_uri(uri)[0]
    return _FILESYSTEMS[key], uri.split("://", 1)[1]


class StorePath:
    """A key (or prefix) on an object store, with the part of ``pathlib.Path`` Bronze uses.

    There are no directories on a store: a prefix "is a directory" when keys exist under it,
    and ``mkdir`` does nothing. A small object written with ``write_bytes`` appears whole or
    not at all; a streamed upload goes to a temporary key first (see landing).
    """

    def __init__(self, uri: str, _info: pafs.FileInfo | None = None) -> None:
        self.uri = check_uri(uri)
        self._fs, self._key = _filesystem(self.uri)
        self._known = _info  # from a listing: saves one request per file

    # -- naming
    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"StorePath({self.uri!r})"

    def __truediv__(self, part: str) -> StorePath:
        return StorePath(f"{self.uri}/{part}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorePath) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __lt__(self, other: StorePath) -> bool:
        return self.uri < other.uri

    @property
    def name(self) -> str:
        return posixpath.basename(self._key)

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    @property
    def parent(self) -> StorePath:
        return StorePath(self.uri.rsplit("/", 1)[0])

    def with_name(self, name: str) -> StorePath:
        return self.parent / name

    # -- what is there
    def _info(self) -> pafs.FileInfo:
        if self._known is not None:
            return self._known
        return self._fs.get_file_info(self._key)

    def exists(self) -> bool:
        pafs = _pafs()
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        pafs = _pafs()
        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        pafs = _pafs()
        return self._info().type == pafs.FileType.Directory

    def is_symlink(self) -> bool:
        return False

    def resolve(self) -> StorePath:
        return self

    def is_relative_to(self, other: StorePath) -> bool:
        return self.uri == other.uri or self.uri.startswith(other.uri + "/")

    def iterdir(self) -> Iterator[StorePath]:
        pafs = _pafs()
        selector = pafs.FileSelector(self._key, recursive=False, allow_not_found=True)
        for info in self._fs.get_file_info(selector):
            yield StorePath(f"{self.uri}/{info.base_name}", info)

    def glob(self, pattern: str) -> Iterator[StorePath]:
        """Children whose name matches ``pattern`` (one level, no ``/`` or ``**``)."""
        return (p for p in self.iterdir() if fnmatch.fnmatchcase(p.name, pattern))

    def stat(self) -> SimpleNamespace:
        pafs = _pafs()
        info = self._info()
        if info.type != pafs.FileType.File:
            raise FileNotFoundError(f"no object at {self.uri}")
        return SimpleNamespace(st_size=info.size, st_mtime_ns=info.mtime_ns or 0)

    # -- bytes
    def open(self, mode: str = "rb") -> Any:
        if mode == "rb":
            return self._fs.open_input_stream(self._key)
        if mode == "wb":
            return self._fs.open_output_stream(self._key)
        raise ValueError(f"StorePath.open supports 'rb' and 'wb', not {mode!r}")

    def read_bytes(self) -> bytes:
        with self.open("rb") as fh:
            return fh.read()

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        with self.open("wb") as fh:
            fh.write(data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def replace(self, target: StorePath) -> StorePath:
        """Move this object to ``target`` (a server-side copy, then a delete)."""
        self._fs.move(self._key, target._key)
        return target

    def unlink(self, missing_ok: bool = False) -> None:
        if not self.is_file():
            if missing_ok:
                return
            raise FileNotFoundError(f"no object at {self.uri}")
        self._fs.delete_file(self._key)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a store has no directories."""
