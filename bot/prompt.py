"""Prompts as members type them, made safe to send and to show: control characters, direction
overrides and invisible characters out, whitespace trimmed."""

from __future__ import annotations

import unicodedata

# The Videos API's limit on `prompt`.
MAX_PROMPT_CHARS = 32_000
_KEEP = {"\n", "\t"}
# Characters that change how the text around them is displayed without being seen: direction
# embeddings, overrides, isolates and marks (a U+202E makes "mp4.exe" read "exe.4pm"), and
# zero-width spaces, joiners and the byte-order mark, which hide words inside other words.
_INVISIBLE = frozenset(
    "\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2066\u2067\u2068\u2069\ufeff\u180e"
)
# The zero-width (non-)joiner is part of how some scripts and emoji sequences are written
# (Persian words, "family" emoji): kept between two visible non-ASCII characters, dropped
# elsewhere.
_JOINERS = frozenset("\u200c\u200d")


def clean_prompt(text: str) -> str:
    """The prompt without control characters, direction overrides or stray invisible
    characters, and without surrounding whitespace. Empty means refuse."""
    return visible_text(text).strip()


def visible_text(text: str) -> str:
    """`text` as it will be seen: line breaks normalised, controls (but newline and tab),
    direction overrides and invisible characters removed. Idempotent."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    for i, ch in enumerate(text):
        if ch in _JOINERS:
            following = text[i + 1] if i + 1 < len(text) else ""
            if out and _visible_non_ascii(out[-1]) and _visible_non_ascii(following):
                out.append(ch)
            continue
        if ch in _INVISIBLE:
            continue
        if ch in _KEEP or unicodedata.category(ch) not in ("Cc", "Cs"):
            out.append(ch)
    return "".join(out)


def _visible_non_ascii(ch: str) -> bool:
    return bool(ch) and ord(ch) > 0x7F and ch not in _INVISIBLE and ch.isprintable()


def prompt_problem(text: str) -> str | None:
    """Why a cleaned prompt cannot be sent, in words for the member; None when it can."""
    if not text:
        return "The prompt is empty."
    if len(text) > MAX_PROMPT_CHARS:
        return f"The prompt is {len(text)} characters; the limit is {MAX_PROMPT_CHARS}."
    return None
