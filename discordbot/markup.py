"""Notices (`bot/notice.py`) in Discord's markup: names in code spans, instants as `<t:…>`
timestamps each reader sees in their own time zone and language, channels as mentions. The
language a notice is worded in is a `Language` (`discordbot/i18n.py` makes one per locale);
without one it is the English of the templates."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bot.notice import ChannelRef, Code, Notice, Ordinal, Part, When, english_ordinal, render

_STYLES = {"relative": "R", "full": "f", "time": "t", "date": "D"}


@dataclass(frozen=True)
class Language:
    """How a locale words things: a template's translation (the template when it has none) and
    a place in a line."""

    translate: Callable[[str], str]
    ordinal: Callable[[int], str]


ENGLISH = Language(lambda template: template, english_ordinal)


def discord_time(at: float, style: str = "relative") -> str:
    """`<t:UNIX:R>`: Discord shows it in the reader's time zone and language."""
    return f"<t:{math.ceil(at)}:{_STYLES.get(style, style)}>"


def code(text: str) -> str:
    # A backtick inside would end the span early; a member's text never becomes markup.
    return "`" + text.replace("`", "ˋ") + "`"


def markup(message: Notice | str, language: Language = ENGLISH) -> str:
    """`message` in `language`, in Discord's markup; a plain string is shown as it is."""
    if isinstance(message, str):
        return message

    def part(value: Part) -> str:
        if isinstance(value, Code):
            return code(value.text)
        if isinstance(value, When):
            return discord_time(value.at, value.style)
        if isinstance(value, ChannelRef):
            return f"<#{value.id}>"
        if isinstance(value, Ordinal):
            return language.ordinal(value.n)
        raise TypeError(f"not a notice part: {value!r}")

    return render(message, language.translate, part)
