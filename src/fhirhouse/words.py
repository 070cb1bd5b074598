"""Counts as a person writes them: "1 file", "2 files", "12,345 rows"."""

from __future__ import annotations


def plural(n: int, word: str, many: str | None = None) -> str:
    """``n`` with ``word``, or with ``many`` (default ``word + "s"``) unless ``n`` is 1."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"
