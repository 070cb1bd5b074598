"""PHI-safe log helpers.

Logs may carry counts, table names, cohort labels and metrics, never identifiers, names, note
text or bundle file names. Anything identifier-bearing that a message must point at goes through
:func:`redact`, a stable, irreversible reference.
"""

from __future__ import annotations

import hashlib


def redact(value: str | None) -> str:
    """Return ``ref:`` plus the first 10 hex characters of SHA-256 of ``value``.

    Stable across log lines and runs, irreversible, distinct for distinct inputs in practice.
    Empty or ``None`` gives ``ref:none``.
    """
    if not value:
        return "ref:none"
    return "ref:" + hashlib.sha256(value.encode("utf-8")).hexdigest()[:10]


def name_key(name: str) -> str:
    """How bookkeeping refers to a bundle file: 32 hex characters of SHA-256 of its name.

    Landing's index and plan and the parse index key files by it, so no file name (Synthea
    names carry the patient's name and id) is written down outside the data itself."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:32]


class RedactedError(Exception):
    """An error whose message is identifier-free by construction (any file or record it
    points at goes through :func:`redact`): logs and the run history may carry it whole."""
