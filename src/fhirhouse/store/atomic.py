"""Atomic small-file writes: markers, manifests, quarantine lists, staged Arrow files."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhirhouse import faults
from fhirhouse.store.objects import StorePath

if TYPE_CHECKING:
    import pyarrow as pa


def _replace_from_temp(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        faults.point("atomic.before_rename", path.parent.name)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(
    path: str | Path | StorePath, payload: Any, *, sort_keys: bool = True
) -> None:
    """Write ``payload`` as indented JSON; readers see the old file or the new one, never half."""
    text = json.dumps(payload, indent=2, sort_keys=sort_keys, default=str, ensure_ascii=False)
    data = (text + "\n").encode("utf-8")
    if isinstance(path, StorePath):  # a store object appears whole or not at all
        faults.point("atomic.before_rename", path.parent.name)
        path.write_bytes(data)
        return
    _replace_from_temp(Path(path), lambda fh: fh.write(data))


def write_arrow_atomic(path: str | Path, table: pa.Table) -> None:
    """Write an Arrow IPC file atomically."""
    import pyarrow.ipc as ipc

    def _write(fh: Any) -> None:
        with ipc.new_file(fh, table.schema) as writer:
            writer.write_table(table)

    _replace_from_temp(Path(path), _write)


def read_arrow(path: str | Path) -> pa.Table:
    """An Arrow IPC file, memory-mapped: the bytes are read only as columns are used."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path), "rb") as source:
        return ipc.open_file(source).read_all()


def read_json(path: str | Path | StorePath) -> Any:
    return json.loads((path if isinstance(path, StorePath) else Path(path)).read_text())


def read_json_if_valid(path: str | Path | StorePath) -> Any:
    """:func:`read_json`, or ``None`` when the file is missing, unreadable or not JSON."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None
