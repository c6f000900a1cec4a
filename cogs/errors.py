"""One error handler for every app command: a short message with a reference id for the user,
the details with the same id in the log. Never a traceback or raw exception text in Discord."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from discordbot.render import notice_embed

if TYPE_CHECKING:
    from discordbot.client import VideoBot

log = logging.getLogger(__name__)


def new_reference() -> str:
    return secrets.token_hex(4)


async def tell(interaction: discord.Interaction, text: str, reference: str | None = None) -> None:
    """Send an ephemeral notice whether or not the interaction was answered already."""
    embed = notice_embed(text, reference=reference)
    try:
        if interaction.response.is_done():
            if interaction.type is discord.InteractionType.component:
                # The original here is the message the button sits on (a finished video): a
                # notice must not replace it, so it goes privately to the one who clicked.
                await interaction.followup.send(embed=embed, ephemeral=True)
            else:
                # Replace the "thinking…" placeholder rather than leave it spinning forever.
                await interaction.edit_original_response(content=None, embed=embed, attachments=[])
        else:
            await interaction.response.send_message(embed=embed, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell the user about an error (reference %s)", reference)


async def on_app_command_error(
    interaction: discord.Interaction, error: app_commands.AppCommandError
) -> None:
    if isinstance(error, app_commands.CheckFailure):
        # Checks raise with user-facing text (permission and ownership refusals).
        text = str(error) or "You can't use this command here."
        await tell(interaction, text)
        return
    command = "/" + (interaction.command.qualified_name if interaction.command else "?")
    await report(interaction, error, command)


async def report(interaction: discord.Interaction, error: BaseException, where: str) -> None:
    reference = new_reference()
    original = getattr(error, "original", error)
    log.error(
        "reference %s: %s by user %s failed",
        reference,
        where,
        interaction.user.id,
        exc_info=original,
    )
    await tell(
        interaction, "Something went wrong on our side; the bot's owner can look it up.", reference
    )


class SafeView(discord.ui.View):
    """A view whose callback errors are handled like command errors."""

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        await report(interaction, error, f"component {getattr(item, 'custom_id', '?')}")


async def setup(bot: VideoBot) -> None:
    bot.tree.error(on_app_command_error)
