"""`/videos`: the caller's recent jobs, a page at a time, ephemeral; picking one shows it again."""

from __future__ import annotations

import datetime as dt
import math
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.jobview import job_view, safe_prompt
from bot.store import Job
from cogs.errors import SafeView, tell
from discordbot.render import job_embed, public_text

if TYPE_CHECKING:
    from discordbot.client import VideoBot

PAGE_SIZE = 5
STATE_ICONS = {
    "succeeded": "✅",
    "failed": "❌",
    "running": "⏳",
    "creating": "⏳",
    "queued_local": "🕒",
}


def history_embed(jobs: list[Job], page: int, pages: int) -> discord.Embed:
    embed = discord.Embed(title="Your recent videos", colour=discord.Colour.blurple())
    if not jobs:
        embed.description = "You have not made any videos yet. Try `/video`."
    for job in jobs:
        when = dt.datetime.fromtimestamp(job.created_at, tz=dt.UTC)
        icon = STATE_ICONS.get(job.state, "•")
        embed.add_field(
            name=f"{icon} job {job.id} · {discord.utils.format_dt(when, 'R')}",
            value=public_text(safe_prompt(job.prompt, 200), 1024) or "—",
            inline=False,
        )
    embed.set_footer(text=f"page {page + 1} of {max(pages, 1)}")
    return embed


class HistoryView(SafeView):
    def __init__(self, bot: VideoBot, owner_id: int, jobs: list[Job], page: int, total: int):
        super().__init__(timeout=300)
        self.bot = bot
        self.owner_id = owner_id
        self.page = page
        self.pages = max(1, -(-total // PAGE_SIZE))
        self.previous.disabled = page <= 0
        self.next.disabled = page + 1 >= self.pages
        if jobs:
            options: list[discord.SelectOption] = [
                discord.SelectOption(
                    label=f"job {j.id}", description=safe_prompt(j.prompt, 90), value=str(j.id)
                )
                for j in jobs
            ]
            self.pick.options = options  # type: ignore[assignment]
        else:
            self.remove_item(self.pick)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id != self.owner_id:
            await tell(interaction, "This list belongs to someone else.")
            return False
        return True

    async def _show_page(self, interaction: discord.Interaction, page: int) -> None:
        jobs, total = await load_page(self.bot, self.owner_id, page)
        view = HistoryView(self.bot, self.owner_id, jobs, page, total)
        await interaction.response.edit_message(
            embed=history_embed(jobs, page, view.pages), view=view
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
        job = await self.bot.store.get_job(int(select.values[0]))
        if job is None or job.user_id != self.owner_id:
            await tell(interaction, "That job is not yours.")
            return
        wait = self.bot.show_again.take(interaction.user.id)
        if wait > 0:
            # Each pick downloads the video again (and may re-encode it): one a minute or so.
            await tell(
                interaction,
                f"You can show a video again in {math.ceil(wait)} second"
                f"{'s' if math.ceil(wait) != 1 else ''}.",
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        view = job_view(job, now=time.time())
        path = await self.bot.deliverer.refetch(job)
        if path is None:
            note = "The video is no longer available from the video service."
            embed = job_embed(view)
            if job.state == "succeeded":
                embed.add_field(name="Note", value=note, inline=False)
            await interaction.followup.send(embed=embed, ephemeral=True)
            return
        try:
            await interaction.followup.send(
                embed=job_embed(view),
                file=discord.File(path, filename=f"video-{job.id}.mp4"),
                ephemeral=True,
            )
        finally:
            await self.bot.deliverer.discard(path)


async def load_page(bot: VideoBot, user_id: int, page: int) -> tuple[list[Job], int]:
    total = await bot.store.count_jobs(user_id)
    page = max(0, page)
    jobs = await bot.store.recent_jobs(user_id, PAGE_SIZE, page * PAGE_SIZE)
    return jobs, total


def build_videos_command(bot: VideoBot) -> app_commands.Command[Any, ..., None]:
    async def videos(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs, total = await load_page(bot, interaction.user.id, 0)
        view = HistoryView(bot, interaction.user.id, jobs, 0, total)
        await interaction.followup.send(
            embed=history_embed(jobs, 0, view.pages), view=view, ephemeral=True
        )

    return app_commands.Command(name="videos", description="Your recent videos", callback=videos)


async def setup(bot: VideoBot) -> None:
    bot.tree.add_command(build_videos_command(bot))


async def teardown(bot: VideoBot) -> None:
    bot.tree.remove_command("videos")
