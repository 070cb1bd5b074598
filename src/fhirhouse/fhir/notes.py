"""Clinical note decoding (Base64, inline or through a Binary) and SOAP section detection.
Pure."""

from __future__ import annotations

import base64
import binascii
import re

SUBJECTIVE = frozenset(
    {
        "subjective",
        "chief complaint",
        "history of present illness",
        "hpi",
        "social history",
        "allergies",
        "medications",
        "review of systems",
        "family history",
        "past medical history",
    }
)
OBJECTIVE = frozenset(
    {
        "objective",
        "physical examination",
        "physical exam",
        "examination",
        "vital signs",
        "vitals",
        "laboratory",
        "labs",
        "results",
        "diagnostic results",
    }
)
ASSESSMENT = frozenset({"assessment", "impression", "diagnosis", "assessment and plan"})
PLAN = frozenset({"plan", "treatment", "treatment plan", "assessment and plan"})

# A header starts a line: at the start of the text, or after "\n" (the only line break of ``^``
# and ``$`` in a MULTILINE pattern). With "\n" as a literal prefix the scan is fast.
_SOAP = r"(subjective|objective|assessment|plan):"
_MD_FIRST = re.compile(r"#+[ \t]*(.+)")
_MD_NEXT = re.compile(r"\n#+[ \t]*(.+)")
_CLASSIC_FIRST = re.compile(_SOAP, re.IGNORECASE)
_CLASSIC_NEXT = re.compile(r"\n" + _SOAP, re.IGNORECASE)


class NoteDecodeError(ValueError):
    """The attachment's data is not valid Base64 or not UTF-8 text."""


def decode_note(data: str) -> str:
    """Decode Base64 then UTF-8, leniently as the standard decoder does.

    Non-alphabet characters are discarded; padding must be valid. Raises
    :class:`NoteDecodeError` (never with the data in its message).
    """
    try:
        return base64.b64decode(data).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError, TypeError) as exc:
        raise NoteDecodeError(type(exc).__name__) from None


def section_headers(text: str) -> list[str]:
    """Every Markdown header (``^#+[ \\t]*(.+)$``) and classic SOAP marker
    (``^(subjective|objective|assessment|plan):``, any case), lower-cased and trimmed."""
    found = []
    for first, following in ((_MD_FIRST, _MD_NEXT), (_CLASSIC_FIRST, _CLASSIC_NEXT)):
        m = first.match(text)
        if m:
            found.append(m.group(1).strip().lower())
        found += [h.strip().lower() for h in following.findall(text)]
    return found


def section_flags(text: str) -> dict[str, bool]:
    """The four heuristic S/O/A/P flags of a note."""
    headers = set(section_headers(text))
    return {
        "has_subjective": bool(headers & SUBJECTIVE),
        "has_objective": bool(headers & OBJECTIVE),
        "has_assessment": bool(headers & ASSESSMENT),
        "has_plan": bool(headers & PLAN),
    }
