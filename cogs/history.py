"""`/videos`: the caller's recent jobs, a page at a time, ephemeral; picking one shows it again.
A job its member cancelled is listed as cancelled, not as a failure."""

from __future__ import annotations

import math
import time
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.cooldown import Cooldown
from bot.jobview import job_view, safe_prompt
from bot.notice import Code, When, notice
from bot.services import Services
from bot.store import Job
from discordbot.client import VideoBot
from discordbot.i18n import Locale, t
from discordbot.notices import report, tell
from discordbot.render import job_embed, public_text

PAGE_SIZE = 5
STATE_ICONS = {
    "succeeded": "✅",
    "failed": "❌",
    "running": "⏳",
    "creating": "⏳",
    "queued_local": "🕒",
}
CANCELLED_ICON = "🚫"


def job_heading(job: Job, locale: Locale = None) -> str:
    """`✅ job 12 · <t:…:R>`; a cancelled job says so."""
    if job.cancelled:
        return t(
            locale,
            "{icon} job {id} · cancelled · {when}",
            icon=CANCELLED_ICON,
            id=job.id,
            when=When(job.created_at),
        )
    return t(
        locale,
        "{icon} job {id} · {when}",
        icon=STATE_ICONS.get(job.state, "•"),
        id=job.id,
        when=When(job.created_at),
    )


def history_embed(jobs: list[Job], page: int, pages: int, locale: Locale = None) -> discord.Embed:
    embed = discord.Embed(title=t(locale, "Your recent videos"), colour=discord.Colour.blurple())
    if not jobs:
        embed.description = t(
            locale, "You have not made any videos yet. Try {command}.", command=Code("/video")
        )
    for job in jobs:
        embed.add_field(
            name=job_heading(job, locale),
            value=public_text(safe_prompt(job.prompt, 200), 1024) or "—",
            inline=False,
        )
    embed.set_footer(text=t(locale, "page {page} of {pages}", page=page + 1, pages=max(pages, 1)))
    return embed


class HistoryView(discord.ui.View):
    def __init__(
        self,
        history: History,
        owner_id: int,
        jobs: list[Job],
        page: int,
        total: int,
        *,
        locale: Locale = None,
    ):
        super().__init__(timeout=300)
        self.locale = locale
        self.previous.label = t(locale, "Previous")
        self.next.label = t(locale, "Next")
        self.pick.placeholder = t(locale, "Show one again")  # type: ignore[assignment]
        self.history = history
        self.services = history.services
        self.owner_id = owner_id
        self.page = page
        self.pages = max(1, -(-total // PAGE_SIZE))
        self.previous.disabled = page <= 0
        self.next.disabled = page + 1 >= self.pages
        if jobs:
            options: list[discord.SelectOption] = [
                discord.SelectOption(
                    label=(
                        t(locale, "job {id} (cancelled)", id=j.id)
                        if j.cancelled
                        else t(locale, "job {id}", id=j.id)
                    ),
                    description=safe_prompt(j.prompt, 90),
                    value=str(j.id),
                )
                for j in jobs
            ]
            self.pick.options = options  # type: ignore[assignment]
        else:
            self.remove_item(self.pick)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await tell(interaction, notice("This list belongs to someone else."))
            return False
        return True

    async def _show_page(self, interaction: discord.Interaction, page: int) -> None:
        jobs, total = await self.history.load_page(self.owner_id, page)
        locale = interaction.locale
        view = HistoryView(self.history, self.owner_id, jobs, page, total, locale=locale)
        await interaction.response.edit_message(
            embed=history_embed(jobs, page, view.pages, locale), view=view
        )

    @discord.ui.button(label="Previous", style=discord.ButtonStyle.secondary)
    async def previous(
        self, interaction: discord.Interaction, button: discord.ui.Button[HistoryView]
    ) -> None:
        await self._show_page(interaction, self.page - 1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next(
        self, interaction: discord.Interaction, button: discord.ui.Button[HistoryView]
    ) -> None:
        await self._show_page(interaction, self.page + 1)

    @discord.ui.select(placeholder="Show one again")
    async def pick(
        self, interaction: discord.Interaction, select: discord.ui.Select[HistoryView]
    ) -> None:
        job = await self.services.store.get_job(int(select.values[0]))
        if job is None or job.user_id != self.owner_id:
            await tell(interaction, notice("That job is not yours."))
            return
        wait = self.history.show_again.take(interaction.user.id)
        if wait > 0:
            # Each pick downloads the video again (and may re-encode it): one a minute or so.
            seconds = math.ceil(wait)
            await tell(
                interaction,
                notice("You can show a video again in 1 second.")
                if seconds == 1
                else notice("You can show a video again in {seconds} seconds.", seconds=seconds),
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        locale = interaction.locale
        view = job_view(job, now=time.time())
        path = await self.services.deliverer.refetch(job)
        if path is None:
            note = t(locale, "The video is no longer available from the video service.")
            embed = job_embed(view, cancelled=job.cancelled, locale=locale)
            if job.state == "succeeded":
                embed.add_field(name=t(locale, "Note"), value=note, inline=False)
            await interaction.followup.send(embed=embed, ephemeral=True)
            return
        try:
            await interaction.followup.send(
                embed=job_embed(view, locale=locale),
                file=discord.File(path, filename=f"video-{job.id}.mp4"),
                ephemeral=True,
            )
        finally:
            await self.services.deliverer.discard(path)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        await report(interaction, error, f"component {getattr(item, 'custom_id', '?')}")


class History(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.services: Services = bot.services
        # Each "show again" downloads the video again: one a minute or so per member.
        self.show_again: Cooldown = bot.show_again

    async def load_page(self, user_id: int, page: int) -> tuple[list[Job], int]:
        store = self.services.store
        total = await store.count_jobs(user_id)
        page = max(0, page)
        jobs = await store.recent_jobs(user_id, PAGE_SIZE, page * PAGE_SIZE)
        return jobs, total

    @app_commands.command(name="videos", description="Your recent videos")
    async def videos(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs, total = await self.load_page(interaction.user.id, 0)
        locale = interaction.locale
        view = HistoryView(self, interaction.user.id, jobs, 0, total, locale=locale)
        await interaction.followup.send(
            embed=history_embed(jobs, 0, view.pages, locale), view=view, ephemeral=True
        )


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(History(bot))
