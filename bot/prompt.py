"""Prompts as members type them, made safe to send and to show: control characters, the
characters that reorder text (bidirectional marks, embeddings, overrides, isolates) and those that
take no space out, whitespace trimmed."""

from __future__ import annotations

import unicodedata

from bot.notice import Notice, notice

# The Videos API's limit on `prompt`.
MAX_PROMPT_CHARS = 32_000
_KEEP = {"\n", "\t"}
# Removed wherever they are. The bidirectional formatting characters reorder the text around them
# without being seen (after a U+202E, "mp4.exe" is displayed as "exe.4pm"): the marks (U+061C,
# U+200E, U+200F), embeddings and overrides (U+202A to U+202E) and isolates (U+2066 to U+2069).
# The zero-width space (U+200B), the word joiner (U+2060), the byte-order mark (U+FEFF) and the
# Mongolian vowel separator (U+180E) take no space and hide words inside other words. Other
# format characters (a soft hyphen, say) are kept: they change nothing about what is read.
_INVISIBLE = frozenset(
    "\u061c\u200b\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2066\u2067\u2068\u2069\ufeff\u180e"
)
# The zero-width (non-)joiner is part of how some scripts and emoji sequences are written
# (Persian words, "family" emoji): kept between two visible non-ASCII characters, dropped
# elsewhere.
_JOINERS = frozenset("\u200c\u200d")


def clean_prompt(text: str) -> str:
    """The prompt as `visible_text` leaves it, without surrounding whitespace. Empty means
    refuse."""
    return visible_text(text).strip()


def visible_text(text: str) -> str:
    """`text` as it will be seen: line breaks normalised to newlines; control characters (but
    newline and tab), lone surrogates and the characters in `_INVISIBLE` removed; a zero-width
    (non-)joiner kept only between two visible non-ASCII characters. Idempotent."""
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


def prompt_problem(text: str) -> Notice | None:
    """Why a cleaned prompt cannot be sent, in words for the member; None when it can."""
    if not text:
        return notice("The prompt is empty.")
    if len(text) > MAX_PROMPT_CHARS:
        return notice(
            "The prompt is {length} characters; the limit is {most}.",
            length=len(text),
            most=MAX_PROMPT_CHARS,
        )
    return None
