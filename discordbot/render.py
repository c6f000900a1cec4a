"""JobView -> discord.Embed. All wording lives in bot.jobview; this only lays it out."""

from __future__ import annotations

import discord

from bot.jobview import JobView
from bot.prompt import visible_text
from bot.store import Job

COLOURS = {
    "working": discord.Colour.blurple(),
    "done": discord.Colour.green(),
    "failed": discord.Colour.red(),
}
SOURCE_FIELD = "Made from"
STATUS_FIELD = "Status"
SEED_FIELD = "Seed"
DELETED_STATUS = "🗑️ Deleted by its owner: the video is gone from the video service."
_KIND_WORDS = {"remix": "Remix", "edit": "Edit", "extend": "Extension"}


def public_text(text: str, limit: int) -> str:
    """A member's or a server's words as the bot shows them in public: no invisible or
    direction-changing characters, and every markdown mark escaped, so a masked link shows its
    real address and the text reads exactly as typed; at most `limit` characters."""
    shown = discord.utils.escape_markdown(visible_text(text))
    if len(shown) > limit:
        shown = shown[: limit - 1].rstrip("\\") + "…"
    return shown


def job_embed(
    view: JobView, *, thumbnail_name: str | None = None, source: str | None = None
) -> discord.Embed:
    embed = discord.Embed(
        title=view.title, description=public_text(view.prompt, 4096), colour=COLOURS[view.tone]
    )
    embed.add_field(name="Model", value=view.model)
    embed.add_field(name="Length", value=f"{view.seconds} s")
    embed.add_field(name="Size", value=view.size)
    if view.seed is not None:
        embed.add_field(name=SEED_FIELD, value=view.seed)
    if source:
        embed.add_field(name=SOURCE_FIELD, value=source[:1024], inline=False)
    status = view.status if not view.bar else f"{view.status}\n`{view.bar}`"
    embed.add_field(name=STATUS_FIELD, value=status, inline=False)
    if view.note:
        embed.add_field(name="Note", value=public_text(view.note, 1024), inline=False)
    if thumbnail_name:
        embed.set_image(url=f"attachment://{thumbnail_name}")
    embed.set_footer(text=f"job {view.job_id} · {view.elapsed}")
    return embed


def jump_url(guild_id: int | None, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def source_line(job: Job, source: Job | None) -> str | None:
    """For a remix, edit or extension: what it was made from, linking to the source's message
    when it is known. None for a job made from a prompt."""
    if job.kind == "create" or job.source_job_id is None:
        return None
    word = _KIND_WORDS[job.kind]
    label = f"job {job.source_job_id}"
    if source is not None:
        if job.kind == "extend":
            word += f" (+{int(job.seconds) - int(source.seconds)} s)"
        message_id = source.delivered_message_id or source.response_message_id
        if message_id is not None:
            label = f"[{label}]({jump_url(source.guild_id, source.channel_id, message_id)})"
    return f"{word} of {label}"


def deleted_embed(shown: discord.Embed | None) -> discord.Embed:
    """The embed of a result whose video its owner deleted: everything it said, minus the
    preview image, with the status saying the video is gone."""
    if shown is None:
        embed = discord.Embed(title="Your video")
    else:
        embed = discord.Embed.from_dict(shown.to_dict())
    embed.colour = discord.Colour.dark_grey()
    embed.set_image(url=None)
    for index, field in enumerate(embed.fields):
        if field.name == STATUS_FIELD:
            embed.set_field_at(index, name=STATUS_FIELD, value=DELETED_STATUS, inline=False)
            break
    else:
        embed.add_field(name=STATUS_FIELD, value=DELETED_STATUS, inline=False)
    return embed


def notice_embed(text: str, *, reference: str | None = None) -> discord.Embed:
    """A short ephemeral refusal or error, with a reference id when the log has details."""
    embed = discord.Embed(description=text, colour=discord.Colour.orange())
    if reference:
        embed.set_footer(text=f"reference {reference}")
    return embed
