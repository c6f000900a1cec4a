"""Telling one member something privately: a refusal, a problem, an error's reference, or a
private reply. One helper, `tell`, whatever the state of the interaction:

- not answered yet: an ephemeral response;
- a button or menu (answered or deferred): an ephemeral follow-up, because the interaction's
  original message is the message the button sits on (a finished video) and must stay as it is;
- behind a public "thinking…" placeholder (`defer_publicly`, what `/video` and its forms show):
  the placeholder is resolved, the notice follows privately, and the placeholder is removed, so
  nobody else sees why a request was turned away;
- behind a private placeholder: the placeholder becomes the notice.

The core words what to say (`bot.notice.Notice`); it is shown here in the language of the
member's client (`interaction.locale`, `discordbot/i18n.py`), in Discord's markup.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import discord

from bot.notice import Notice, NoticeError, notice
from discordbot.i18n import Locale, t, text

log = logging.getLogger(__name__)

# Set in `Interaction.extras` by `defer_publicly`: the placeholder is visible to everyone.
PUBLIC_PLACEHOLDER = "public_placeholder"
# What a public placeholder says for the moment between resolving it and removing it.
NOT_STARTED = notice("Not started.")
SOMETHING_WENT_WRONG = notice("Something went wrong on our side; the bot's owner can look it up.")


def notice_embed(
    message: Notice | str, *, reference: str | None = None, locale: Locale = None
) -> discord.Embed:
    """A short private notice in `locale`, with a reference id when the log has details."""
    embed = discord.Embed(description=text(locale, message), colour=discord.Colour.orange())
    if reference:
        embed.set_footer(text=t(locale, "reference {reference}", reference=reference))
    return embed


def explained(error: ValueError) -> Notice | str:
    """What a refused input says to the member: the core's notice, or the error's text."""
    return error.notice if isinstance(error, NoticeError) else str(error)


def new_reference() -> str:
    """An id shown to the member and logged with the details, to find one in the other."""
    return secrets.token_hex(4)


async def defer_publicly(interaction: discord.Interaction[Any]) -> None:
    """Answer with a public "thinking…" placeholder (Discord's 3 seconds), remembering that it
    is public so that a later `tell` does not show the notice to everyone."""
    interaction.extras[PUBLIC_PLACEHOLDER] = True
    await interaction.response.defer(thinking=True)


async def tell(
    interaction: discord.Interaction[Any],
    message: Notice | str | discord.Embed,
    *,
    reference: str | None = None,
) -> None:
    """Tell the member behind `interaction`, and only them, in their language: a notice, or an
    embed as it is (a plain string is shown as it is: the notice is what gets translated)."""
    embed = (
        message
        if isinstance(message, discord.Embed)
        else notice_embed(message, reference=reference, locale=interaction.locale)
    )
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(embed=embed, ephemeral=True)
        elif interaction.type is discord.InteractionType.component:
            await interaction.followup.send(embed=embed, ephemeral=True)
        elif interaction.extras.get(PUBLIC_PLACEHOLDER):
            # The first follow-up would replace the public placeholder (its ephemeral flag
            # ignored): resolve the placeholder first, answer privately, then remove it.
            await interaction.edit_original_response(content=text(interaction.locale, NOT_STARTED))
            await interaction.followup.send(embed=embed, ephemeral=True)
            try:
                await interaction.delete_original_response()
            except discord.HTTPException:
                log.debug("could not remove the placeholder reply", exc_info=True)
        else:
            # Replace the private "thinking…" placeholder rather than leave it spinning.
            await interaction.edit_original_response(content=None, embed=embed, attachments=[])
    except discord.HTTPException:
        log.warning("could not tell user %s (reference %s)", interaction.user.id, reference)


async def report(interaction: discord.Interaction[Any], error: BaseException, where: str) -> None:
    """An unexpected error: the details in the log under a new reference, the member told only
    that something went wrong, with that reference. Never a traceback or an exception's text."""
    reference = new_reference()
    original = getattr(error, "original", error)
    log.error(
        "reference %s: %s by user %s failed",
        reference,
        where,
        interaction.user.id,
        exc_info=original,
    )
    await tell(interaction, SOMETHING_WENT_WRONG, reference=reference)
