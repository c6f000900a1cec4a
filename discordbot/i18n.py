"""Member-facing text in the member's language: one message catalog, keyed by the English.

`t(locale, template, **values)` is how the Discord layer words anything a member reads: the
template is the English text with `{name}` placeholders (gettext's msgid), looked up in the
locale's catalog, `discordbot/locales/<locale>.json` (template -> translation, the same
placeholders); a template a catalog lacks is shown in English. Values that are notice parts
(`Code`, `When`, `ChannelRef`, `Ordinal`) are rendered with Discord's markup, notices are
translated in turn, plain text is inserted as it is. `text(locale, notice)` does the same for a
notice the core made.

The locales are Discord's (`discord.Locale`, or its value): replies use the interaction's, a job's
later edits the locale of the interaction that started it (`jobs.locale`). `tests/test_i18n.py`
keeps every catalog complete: every literal template of `t(...)` and `notice(...)` and every
command's name, description and choice must be translated, with the same placeholders.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from enum import Enum
from pathlib import Path

from bot.notice import Notice, Ordinal, Part, Value, english_ordinal, notice, plain_part, render
from discordbot.markup import ENGLISH, Language, markup

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).with_name("locales")
# Discord's locales with a catalog here, and the catalog each reads. Latin American Spanish reads
# the Spanish one: Spain's spelling ("vídeo"), but the same words and understood everywhere, which
# beats falling back to English.
CATALOGS = {"es-ES": "es-ES", "es-419": "es-ES", "pt-BR": "pt-BR"}
# Where a catalog's ordinals differ from English ("2.º", "2º").
_ORDINAL_FORMS = {"es-ES": "{n}.º", "pt-BR": "{n}º"}

Locale = Enum | str | None


def catalog_name(locale: Locale) -> str | None:
    """The catalog `locale` reads, or None for English (and any locale without a catalog)."""
    if locale is None:
        return None
    key = str(locale.value) if isinstance(locale, Enum) else str(locale)
    return CATALOGS.get(key)


@functools.cache
def catalog(name: str) -> dict[str, str]:
    """The translations of one catalog: English template -> translation."""
    path = LOCALES_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.exception("could not read the %s catalog; English is used", name)
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str) and v}


@functools.cache
def _language(name: str | None) -> Language:
    if name is None:
        return ENGLISH
    entries = catalog(name)
    form = _ORDINAL_FORMS.get(name)

    def ordinal(n: int) -> str:
        return form.format(n=n) if form else english_ordinal(n)

    return Language(lambda template: entries.get(template, template), ordinal)


def language(locale: Locale) -> Language:
    return _language(catalog_name(locale))


def t(locale: Locale, template: str, /, **values: Value) -> str:
    """`template` (English, `{name}` placeholders) in `locale`, with `values` filled in."""
    return markup(notice(template, **values), language(locale))


def text(locale: Locale, message: Notice | str) -> str:
    """A notice from the core in `locale`, in Discord's markup; a plain string as it is."""
    return markup(message, language(locale))


def plain_text(locale: Locale, message: Notice) -> str:
    """A notice in `locale` without markup (a choice's name, a menu's label)."""
    lang = language(locale)

    def part(value: Part) -> str:
        return lang.ordinal(value.n) if isinstance(value, Ordinal) else plain_part(value)

    return render(message, lang.translate, part)


def catalogs_digest() -> str:
    """A digest of every catalog file: part of the command hash, so a changed translation
    syncs the commands again."""
    digest = hashlib.sha256()
    for path in sorted(LOCALES_DIR.glob("*.json")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def translated(locale: Locale, template: str) -> str | None:
    """The catalog's own translation of `template` (for command names and descriptions), or
    None when `locale` has no catalog or the catalog lacks it."""
    name = catalog_name(locale)
    return None if name is None else catalog(name).get(template)
