"""JobView -> discord.Embed. All wording lives in bot.jobview; this only lays it out."""

from __future__ import annotations

import discord

from bot.jobview import JobView

COLOURS = {
    "working": discord.Colour.blurple(),
    "done": discord.Colour.green(),
    "failed": discord.Colour.red(),
}


def job_embed(view: JobView, *, thumbnail_name: str | None = None) -> discord.Embed:
    embed = discord.Embed(title=view.title, description=view.prompt, colour=COLOURS[view.tone])
    embed.add_field(name="Model", value=view.model)
    embed.add_field(name="Length", value=f"{view.seconds} s")
    embed.add_field(name="Size", value=view.size)
    status = view.status if not view.bar else f"{view.status}\n`{view.bar}`"
    embed.add_field(name="Status", value=status, inline=False)
    if view.note:
        embed.add_field(name="Note", value=view.note[:1024], inline=False)
    if thumbnail_name:
        embed.set_image(url=f"attachment://{thumbnail_name}")
    embed.set_footer(text=f"job {view.job_id} · {view.elapsed}")
    return embed


def notice_embed(text: str, *, reference: str | None = None) -> discord.Embed:
    """A short ephemeral refusal or error, with a reference id when the log has details."""
    embed = discord.Embed(description=text, colour=discord.Colour.orange())
    if reference:
        embed.set_footer(text=f"reference {reference}")
    return embed
