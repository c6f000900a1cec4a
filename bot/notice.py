"""What the core says to a member, without any front end's markup or language.

The core decides *what* to say (a refusal, a limit reached, a problem with an option); each front
end decides *how* it looks and in which language. A `Notice` is an English template with named
`{placeholders}` and their values, made with a literal template:
`notice("Model {model} isn't offered here.", model=Code(m))`. The template is the key a front end
looks up in its message catalog (gettext's msgid), so nothing that varies (a number, a name, a
price) is ever part of it: it goes in as a value. Values are plain text inserted as it is (a
price, a member's words), a whole number, a name to show as written (`Code`), an instant
(`When`), a channel (`ChannelRef`), a place in a line (`Ordinal`), a list (`Listing`) or another
notice (translated in turn). Several sentences are several notices, `sentences(a, b)` or `a + b`;
several lines `lines(...)`.

The Discord layer renders a notice in the member's language with Discord's markup
(`discordbot/i18n.py`); the command line and the logs use `plain()`, the English.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, TypeAlias


@dataclass(frozen=True)
class Code:
    """A name to show as written: a model id, a size, a command, a typed value."""

    text: str


@dataclass(frozen=True)
class When:
    """An instant (Unix seconds); `style` is relative ("in 3 hours") or a full date and time."""

    at: float
    style: str = "relative"


@dataclass(frozen=True)
class ChannelRef:
    """A Discord channel by id (the core only ever has ids)."""

    id: int


@dataclass(frozen=True)
class Ordinal:
    """A place in a line, 1 for the first; each language writes it its own way ("2nd", "2.º")."""

    n: int


@dataclass(frozen=True)
class Listing:
    """Several values inside a sentence: "a, b and c" (`last="and"`), "a or b", or just "a, b"."""

    items: tuple[Value, ...]
    last: Literal["and", "or"] | None = None


Part = Code | When | ChannelRef | Ordinal
Value: TypeAlias = "str | int | Part | Listing | Notice"


@dataclass(frozen=True)
class Notice:
    """A message for a member: one template and its values, or (`parts`) several notices shown
    in order, separated by `sep`. `str(notice)` is its plain English form."""

    template: str = ""
    values: tuple[tuple[str, Value], ...] = ()
    parts: tuple[Notice, ...] = ()
    sep: str = " "

    def plain(self) -> str:
        return render(self, _english, plain_part)

    def __str__(self) -> str:
        return self.plain()

    def __add__(self, other: Notice) -> Notice:
        return sentences(self, other)

    def shown(self) -> tuple[Part, ...]:
        """Every name, instant, channel and place it shows, in order (nested ones too)."""
        found: list[Part] = []
        for child in self.parts:
            found.extend(child.shown())
        for _, value in self.values:
            found.extend(_shown(value))
        return tuple(found)


def notice(template: str, /, **values: Value) -> Notice:
    """One translatable message: `template` is a literal (English, `{name}` placeholders)."""
    return Notice(template, tuple(values.items()))


def sentences(*notices: Notice | None) -> Notice:
    """Several sentences, one after the other (None is left out)."""
    return Notice(parts=tuple(n for n in notices if n is not None), sep=" ")


def lines(notices: Iterable[Notice], sep: str = "\n") -> Notice:
    """Several notices, one a line."""
    return Notice(parts=tuple(notices), sep=sep)


def joined(items: Iterable[Value], last: Literal["and", "or"] | None = None) -> Listing:
    """A list of models, channels or notices inside a sentence."""
    return Listing(tuple(items), last)


class NoticeError(ValueError):
    """Bad input, explained to the member: raised by parsers in the core, shown by the front end."""

    def __init__(self, message: Notice) -> None:
        self.notice = message
        super().__init__(message.plain())


Translate = Callable[[str], str]
PartText = Callable[[Part], str]


def render(message: Notice, translate: Translate, part: PartText) -> str:
    """`message` as text: each template through `translate` (a catalog lookup; the English when
    it has none), each part through `part` (plain text, or a front end's markup)."""
    if message.parts or not message.template:
        return message.sep.join(render(p, translate, part) for p in message.parts)
    values = {name: _value(v, translate, part) for name, v in message.values}
    try:
        return translate(message.template).format_map(values)
    except (KeyError, IndexError, ValueError):
        # A translation that names a placeholder the template lacks: the English is right.
        return message.template.format_map(values)


def _value(value: Value, translate: Translate, part: PartText) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Notice):
        return render(value, translate, part)
    if isinstance(value, Listing):
        return _listing(value, translate, part)
    return part(value)


def _listing(listing: Listing, translate: Translate, part: PartText) -> str:
    items = [_value(v, translate, part) for v in listing.items]
    if listing.last is None or len(items) < 2:
        return ", ".join(items)
    head, last = ", ".join(items[:-1]), items[-1]
    if listing.last == "and":
        return render(notice("{items} and {last}", items=head, last=last), translate, part)
    return render(notice("{items} or {last}", items=head, last=last), translate, part)


def _shown(value: Value) -> tuple[Part, ...]:
    if isinstance(value, Notice):
        return value.shown()
    if isinstance(value, Listing):
        return tuple(p for item in value.items for p in _shown(item))
    if isinstance(value, str | int):
        return ()
    return (value,)


def _english(template: str) -> str:
    return template


def english_ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def plain_part(part: Part) -> str:
    if isinstance(part, Code):
        return part.text
    if isinstance(part, When):
        moment = dt.datetime.fromtimestamp(part.at, dt.UTC)
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(part, Ordinal):
        return english_ordinal(part.n)
    return f"channel {part.id}"
