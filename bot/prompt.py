"""Prompts as members type them, made safe to send: control characters out, whitespace trimmed."""

from __future__ import annotations

import unicodedata

# The Videos API's limit on `prompt`.
MAX_PROMPT_CHARS = 32_000
_KEEP = {"\n", "\t"}


def clean_prompt(text: str) -> str:
    """The prompt without control characters (NUL, escapes, bidi overrides stay harmless text
    only if they are not controls) and without surrounding whitespace. Empty means refuse."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(ch for ch in text if ch in _KEEP or unicodedata.category(ch) not in ("Cc", "Cs"))
    return kept.strip()


def prompt_problem(text: str) -> str | None:
    """Why a cleaned prompt cannot be sent, in words for the member; None when it can."""
    if not text:
        return "The prompt is empty."
    if len(text) > MAX_PROMPT_CHARS:
        return f"The prompt is {len(text)} characters; the limit is {MAX_PROMPT_CHARS}."
    return None
