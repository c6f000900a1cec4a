"""JobView -> discord.Embed. The job's wording lives in bot.jobview; this lays it out, and adds
what only the message shows: where a waiting or running job stands (`Standing`: its place in
line, when it should be done, an estimated bar, when it started) and a cancelled job's title."""

from __future__ import annotations

from dataclasses import dataclass

import discord

from bot.jobview import JobView
from bot.notice import When, notice
from bot.progress import EMPTY, FULL
from bot.prompt import visible_text
from bot.queueview import Outlook, in_line
from bot.store import Job
from discordbot.i18n import Locale, t, text

COLOURS = {
    "working": discord.Colour.blurple(),
    "done": discord.Colour.green(),
    "failed": discord.Colour.red(),
}
CANCELLED_COLOUR = discord.Colour.dark_grey()
BAR_WIDTH = 20
DELETED_STATUS = notice("🗑️ Deleted by its owner: the video is gone from the video service.")


def public_text(text: str, limit: int) -> str:
    """A member's or a server's words as the bot shows them in public: no invisible or
    direction-changing characters, and every markdown mark escaped, so a masked link shows its
    real address and the text reads exactly as typed; at most `limit` characters."""
    shown = discord.utils.escape_markdown(visible_text(text))
    if len(shown) > limit:
        shown = shown[: limit - 1].rstrip("\\") + "…"
    return shown


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a waiting or running job stands, beyond its JobView. `place`: its 1-based place in
    line; `finish`: when it should be done (Unix seconds); `estimate`: a percentage from elapsed
    / expected where the service reports no progress (shown as an estimate); `started`: when it
    was asked for, shown as a relative time that Discord keeps moving between edits."""

    place: int | None = None
    finish: float | None = None
    estimate: int | None = None
    started: float | None = None


def standing_of(job: Job, outlook: Outlook | None, place: int | None) -> Standing | None:
    """What `job`'s message shows of where it stands, from the tracker's `outlook` (None when it
    gave none) and the store's `place` in line (the outlook's may be a moment older than the
    job). None for a job that has ended."""
    if not job.active:
        return None
    estimate: int | None = None
    finish: float | None = None
    if outlook is not None:
        if outlook.finish is not None:
            finish = outlook.finish.at
        at_service = job.state == "running" or (
            job.state == "creating" and job.create_attempted_at is not None
        )
        if outlook.estimated and outlook.estimated_progress is not None and at_service:
            estimate = max(0, min(99, outlook.estimated_progress))
    return Standing(
        place=place if job.state == "queued_local" else None,
        finish=finish,
        estimate=estimate,
        started=job.created_at,
    )


def estimated_bar(percent: int) -> str:
    """The bar of an estimate: filled to `percent`, its number said in words beside it."""
    filled = round(BAR_WIDTH * max(0, min(100, percent)) / 100)
    return FULL * filled + EMPTY * (BAR_WIDTH - filled)


def status_text(
    view: JobView, standing: Standing | None, *, cancelled: bool = False, locale: Locale = None
) -> str:
    """The Status field: the job's status, its bar, and where it stands, in `locale`."""
    if cancelled:
        return t(locale, "Cancelled")
    lines = [text(locale, view.status)]
    if standing is not None and standing.estimate is not None:
        lines.append(
            f"`{estimated_bar(standing.estimate)}` "
            + t(locale, "about {percent}% (estimate)", percent=standing.estimate)
        )
    elif view.bar:
        lines.append(f"`{view.bar}`")
    if standing is not None:
        details: list[str] = []
        if standing.place is not None:
            details.append(text(locale, in_line(standing.place)))
        if standing.finish is not None:
            details.append(t(locale, "should be done {when}", when=When(standing.finish)))
        if standing.started is not None:
            details.append(t(locale, "started {when}", when=When(standing.started)))
        if details:
            lines.append(" · ".join(details))
    return "\n".join(lines)[:1024]


def job_embed(
    view: JobView,
    *,
    thumbnail_name: str | None = None,
    source: str | None = None,
    standing: Standing | None = None,
    cancelled: bool = False,
    locale: Locale = None,
) -> discord.Embed:
    """The job's message in `locale` (the language of the member who asked). `standing`: where
    a waiting or running job stands; `cancelled`: the job ended by its member's Cancel (titled
    so, not as a failure)."""
    embed = discord.Embed(
        title=t(locale, "Cancelled") if cancelled else text(locale, view.title),
        description=public_text(view.prompt, 4096),
        colour=CANCELLED_COLOUR if cancelled else COLOURS[view.tone],
    )
    embed.add_field(name=t(locale, "Model"), value=view.model)
    embed.add_field(name=t(locale, "Length"), value=t(locale, "{seconds} s", seconds=view.seconds))
    embed.add_field(name=t(locale, "Size"), value=view.size)
    if view.seed is not None:
        embed.add_field(name=t(locale, "Seed"), value=view.seed)
    if source:
        embed.add_field(name=t(locale, "Made from"), value=source[:1024], inline=False)
    embed.add_field(
        name=t(locale, "Status"),
        value=status_text(view, standing, cancelled=cancelled, locale=locale),
        inline=False,
    )
    if view.note:
        note = text(locale, view.note)
        embed.add_field(name=t(locale, "Note"), value=public_text(note, 1024), inline=False)
    if thumbnail_name:
        embed.set_image(url=f"attachment://{thumbnail_name}")
    embed.set_footer(text=t(locale, "job {id} · {elapsed}", id=view.job_id, elapsed=view.elapsed))
    return embed


def jump_url(guild_id: int | None, channel_id: int, message_id: int) -> str:
    return f"https://discord.com/channels/{guild_id or '@me'}/{channel_id}/{message_id}"


def source_line(job: Job, source: Job | None, locale: Locale = None) -> str | None:
    """For a remix, edit or extension: what it was made from, linking to the source's message
    when it is known, in `locale`. None for a job made from a prompt."""
    if job.kind == "create" or job.source_job_id is None:
        return None
    label = t(locale, "job {id}", id=job.source_job_id)
    added: int | None = None
    if source is not None:
        if job.kind == "extend":
            added = int(job.seconds) - int(source.seconds)
        message_id = source.delivered_message_id or source.response_message_id
        if message_id is not None:
            label = f"[{label}]({jump_url(source.guild_id, source.channel_id, message_id)})"
    if job.kind == "remix":
        return t(locale, "Remix of {source}", source=label)
    if job.kind == "edit":
        return t(locale, "Edit of {source}", source=label)
    if added is not None:
        return t(locale, "Extension (+{seconds} s) of {source}", seconds=added, source=label)
    return t(locale, "Extension of {source}", source=label)


def deleted_embed(shown: discord.Embed | None, locale: Locale = None) -> discord.Embed:
    """The embed of a result whose video its owner deleted: everything it said, minus the
    preview image, with the status saying the video is gone (in `locale`, the language the
    embed was written in)."""
    if shown is None:
        embed = discord.Embed(title=t(locale, "Your video"))
    else:
        embed = discord.Embed.from_dict(shown.to_dict())
    embed.colour = discord.Colour.dark_grey()
    embed.set_image(url=None)
    status, gone = t(locale, "Status"), text(locale, DELETED_STATUS)
    for index, field in enumerate(embed.fields):
        if field.name == status:
            embed.set_field_at(index, name=status, value=gone, inline=False)
            break
    else:
        embed.add_field(name=status, value=gone, inline=False)
    return embed
