"""Index of Bronze's ``dicom/*.dcm`` files by StudyInstanceUID (from each file name)."""

from __future__ import annotations

import logging
from pathlib import Path

from fhirhouse.fhir.dicom import uid_from_filename
from fhirhouse.redact import redact
from fhirhouse.store.objects import StorePath

log = logging.getLogger(__name__)


class DicomIndex:
    """StudyInstanceUID -> file path; a missing folder gives an empty index."""

    def __init__(self, folder: str | Path | StorePath) -> None:
        self.paths: dict[str, Path | StorePath] = {}
        folder = folder if isinstance(folder, StorePath) else Path(folder)
        if not folder.is_dir():
            return
        for p in sorted(folder.glob("*.dcm")):
            uid = uid_from_filename(p.name)
            if uid is None:
                log.warning("DICOM file name without a StudyInstanceUID: %s", redact(p.name))
                continue
            self.paths[uid] = p

    def __len__(self) -> int:
        return len(self.paths)

    def resolve(self, uid: str) -> bytes | None:
        """The file's bytes for ``uid``, or ``None``."""
        p = self.paths.get(uid)
        return p.read_bytes() if p is not None else None
