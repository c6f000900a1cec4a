"""The commands in the member's language: discord.py's `Translator`, reading the same message
catalog as every reply (`discordbot/i18n.py`).

discord.py asks it for every command's description, every option's name and description, every
choice and the "Animate image" menu's name, in every Discord locale, while it builds the payload
it syncs; a locale without a catalog, or a string its catalog lacks, keeps the English. Choices
made from the catalog in use ("4 seconds", "1280x720 (landscape)") carry their notice
(`choice_text`), translated with its values; a model's name is shown as it is.

Slash command and group names (`/video`, `/video-admin quota set`) are not localized: replies,
refusals and the README name them, so they stay one word everywhere. Option names are, checked
against Discord's rule for names (lowercase, no spaces); one that breaks it keeps the English.
"""

from __future__ import annotations

import re
from typing import Any

import discord
from discord import app_commands
from discord.app_commands import TranslationContextLocation as Where

from bot.notice import Notice
from discordbot.i18n import catalog_name, plain_text, translated

# Discord's rule for command and option names (chat input): lowercase letters, digits, - and _.
NAME = re.compile(r"^[-_'\w]{1,32}$")
# Discord's limits on a description and a choice's name.
TEXT_LIMIT = 100
_NAMES = (Where.command_name, Where.group_name, Where.parameter_name)


def choice_text(message: Notice | str) -> app_commands.locale_str:
    """A choice's name made from the catalog in use, for the translator: a notice, translated
    with its values, or a name (a model's, a resolution) shown as it is everywhere."""
    if isinstance(message, str):
        return app_commands.locale_str(message, verbatim=True)
    return app_commands.locale_str(message.plain(), notice=message)


def valid_name(name: str) -> bool:
    return bool(NAME.match(name)) and name == name.lower()


class CatalogTranslator(app_commands.Translator):
    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        return command_text(string, locale, context.location, context.data)


def command_text(
    string: app_commands.locale_str, locale: discord.Locale, where: Where, data: Any = None
) -> str | None:
    """The translation discord.py syncs for `string` in `locale`, or None to keep the English."""
    if catalog_name(locale) is None or string.extras.get("verbatim"):
        return None
    message = string.extras.get("notice")
    if isinstance(message, Notice):
        said = plain_text(locale, message)
        return said[:TEXT_LIMIT] if said != message.plain() else None
    if where in (Where.command_name, Where.group_name) and not isinstance(
        data, app_commands.ContextMenu
    ):
        return None
    found = translated(locale, string.message)
    if found is None:
        return None
    if where in _NAMES and not isinstance(data, app_commands.ContextMenu):
        return found if valid_name(found) else None
    return found[:TEXT_LIMIT] if where != Where.command_name else found[:32]
