"""What the buttons on a job's message do: Cancel while it waits or runs; Remix, Extend and Delete
under a finished video (how they look and their custom_ids: `discordbot/buttons.py`).

One `DynamicItem` class answers every button id of that shape, so the buttons keep working on old
messages after a restart with nothing kept in memory; it hands each click to the `JobActions`
cog. Only the job's owner may use them; anyone else is told so privately.

Remix and Extend open a modal; its submission becomes a new job through `JobService
.submit_followup`, with the same guild rules, quotas, queue and tracking as `/video`, and a reply
of its own that links back to the video it was made from. Delete asks the core's deleter (which
deletes the video at the service and records it) and then takes the attachment (and the buttons)
off the message, keeping the embed marked as deleted. Cancel asks the core's canceller
(bot/cancel.py): a refusal is answered at once, privately, and the job goes on; a job it ended
shows "Cancelled" on its message, without the button; a job that had finished meanwhile is
delivered as usual and the member is told so privately.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, cast

import discord
from discord.ext import commands

from bot.catalog import format_dollars
from bot.jobview import job_view
from bot.notice import Code, notice
from bot.services import Services
from bot.store import Job
from bot.submit import EXTEND_SECONDS, FollowUpKind, Refused, followup_problem
from discordbot.access import admitted
from discordbot.buttons import TEMPLATE, Action, action_button, remix_kind
from discordbot.client import VideoBot
from discordbot.i18n import Locale, t
from discordbot.notices import report, tell
from discordbot.render import deleted_embed, job_embed, source_line
from discordbot.requests import PROMPT_LIMIT, TOKEN_LIFETIME, RequestFlow, origin_of

log = logging.getLogger(__name__)


class JobActionButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=TEMPLATE,
):
    """Cancel on job `job_id`'s message, or Remix, Extend or Delete under its video; rebuilt
    from its custom_id on every click, so it works on messages sent before a restart."""

    def __init__(self, job_id: int, action: Action) -> None:
        super().__init__(action_button(job_id, action))
        self.job_id = job_id
        self.action: Action = action

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction,
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> JobActionButton:
        return cls(int(match["id"]), cast("Action", match["action"]))

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        # A button outlives a change of ALLOWED_GUILD_IDS: it spends only where the bot may.
        return await admitted(interaction)

    async def callback(self, interaction: discord.Interaction) -> None:
        # discord.py only logs what a dynamic item raises; the member must still get an answer.
        try:
            cog = cast("VideoBot", interaction.client).get_cog(JobActions.__cog_name__)
            assert isinstance(cog, JobActions)  # registered by that cog, removed with it
            await cog.clicked(interaction, self.job_id, self.action)
        except Exception as exc:
            await report(interaction, exc, f"button {self.custom_id}")


class JobActions(commands.Cog):
    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.services: Services = bot.services
        self.flow = RequestFlow(bot.services, bot.cdn, bot.decoder, bot.sink)

    async def cog_load(self) -> None:
        # Persistent: every button of this shape, on any message however old, reaches it.
        self.bot.add_dynamic_items(JobActionButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(JobActionButton)

    async def clicked(self, interaction: discord.Interaction, job_id: int, action: Action) -> None:
        if action == "cancel":
            await self.cancel(interaction, job_id)
            return
        job = await self.services.store.get_job(job_id)
        if job is None:
            await tell(interaction, notice("This video is no longer known to the bot."))
            return
        if interaction.user.id != job.user_id:
            await tell(
                interaction,
                notice(
                    "Only {member}, who made this video, can use its buttons. "
                    "Use {command} to make one of your own.",
                    member=f"<@{job.user_id}>",
                    command=Code("/video"),
                ),
            )
            return
        if action == "delete":
            await self.delete(interaction, job)
            return
        caps = self.services.backend.client.caps
        # Remix uses the edits endpoint where the backend has it; with neither, the core words
        # the refusal as a remix.
        kind: FollowUpKind = (remix_kind(caps) or "remix") if action == "remix" else "extend"
        # The core's checks, answered before the form opens rather than after it is filled in.
        problem = followup_problem(job, kind, caps, time.time())
        if problem:
            await tell(interaction, problem)
            return
        await interaction.response.send_modal(FollowUpModal(self, job, kind, interaction.locale))

    async def delete(self, interaction: discord.Interaction, job: Job) -> None:
        """Delete the video at the service (the core records it), then take the attachment and
        the buttons off the message."""
        deleter = self.services.deleter
        refused = await deleter.check(job.id, interaction.user.id)
        if refused is not None:
            await tell(interaction, refused.notice or notice("This video can't be deleted."))
            return
        # The service may take longer than Discord waits for an answer; the message stays as it
        # is until the video is really gone.
        await interaction.response.defer()
        outcome = await deleter.delete(job.id, interaction.user.id)
        if not outcome.done:
            await tell(interaction, outcome.notice or notice("The video was not deleted."))
            return
        message = interaction.message
        shown = message.embeds[0] if message is not None and message.embeds else None
        await interaction.edit_original_response(
            embed=deleted_embed(shown, job.locale), attachments=[], view=None
        )

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        """Cancel job `job_id` for the member who clicked (bot/cancel.py), then show it on the
        message the button sits on: the job's message, which the click can edit however old the
        job's own interaction is."""
        canceller = self.services.canceller
        refused = await canceller.check(job_id, interaction.user.id)
        if refused is not None:
            # Anyone but its member: refused at once, privately; the job goes on.
            await tell(interaction, refused.notice)
            return
        # The service is asked first, which may take longer than Discord waits for an answer.
        await interaction.response.defer()
        outcome = await canceller.cancel(job_id, interaction.user.id)
        job = outcome.job
        if outcome.status == "cancelled" and job is not None:
            try:
                await interaction.edit_original_response(
                    embed=await self.cancelled_embed(job), view=None
                )
            except discord.HTTPException as exc:
                # Cancelled all the same; its delivery shows it where the job's reply can be
                # edited, and the member is told below.
                log.info("job %s: the cancelled message could not be shown: %s", job.id, exc)
            else:
                if outcome.stopped:
                    return  # the message says it all
        # Not stopped at the service, already finished (delivered as usual), or not possible
        # just now (it goes on): the member is told which, privately.
        await tell(interaction, outcome.notice)

    async def cancelled_embed(self, job: Job) -> discord.Embed:
        """The job's message once it was cancelled, as its delivery shows it."""
        source = None
        if job.source_job_id is not None:
            source = await self.services.store.get_job(job.source_job_id)
        return job_embed(
            job_view(job, now=time.time()),
            source=source_line(job, source, job.locale),
            cancelled=True,
            locale=job.locale,
        )

    def price(self, source: Job, seconds: str) -> str | None:
        """What extending `source` by `seconds` costs, where the catalog knows."""
        try:
            return format_dollars(
                self.services.catalog.cost_micros(source.model, source.size, seconds)
            )
        except KeyError:
            return None

    async def follow_up(
        self,
        interaction: discord.Interaction,
        source_id: int,
        kind: FollowUpKind,
        prompt: str,
        seconds: str | None,
    ) -> None:
        """A submitted Remix or Extend form: a new job made from job `source_id`'s video."""
        if not prompt:
            await tell(interaction, notice("The prompt is empty."))
            return
        source = await self.services.store.get_job(source_id)
        if source is None:
            await tell(interaction, notice("The video this was made from is no longer known."))
            return
        async with self.flow.acknowledged(interaction):
            result = await self.services.jobs.submit_followup(
                origin_of(interaction), source, kind, prompt, seconds=seconds
            )
            if isinstance(result, Refused):
                await tell(interaction, result.message)
                return
            await self.flow.present_job(interaction, result, source)


class FollowUpModal(discord.ui.Modal):
    """The prompt (and, for an extension, the seconds to add) for a follow-up of one job."""

    def __init__(
        self, actions: JobActions, source: Job, kind: FollowUpKind, locale: Locale = None
    ) -> None:
        title = (
            t(locale, "Extend job {id}", id=source.id)
            if kind == "extend"
            else t(locale, "Remix job {id}", id=source.id)
        )
        super().__init__(title=title[:45], timeout=TOKEN_LIFETIME)
        self.actions = actions
        self.source_id = source.id
        self.kind: FollowUpKind = kind
        if kind == "extend":
            self.prompt: discord.ui.TextInput[FollowUpModal] = discord.ui.TextInput(
                label=t(locale, "What happens next"),
                style=discord.TextStyle.paragraph,
                placeholder=t(locale, "Describe how the video continues"),
                max_length=PROMPT_LIMIT,
            )
        else:
            self.prompt = discord.ui.TextInput(
                label=t(locale, "New prompt"),
                style=discord.TextStyle.paragraph,
                default=source.prompt[:PROMPT_LIMIT],
                max_length=PROMPT_LIMIT,
            )
        self.add_item(self.prompt)
        self.seconds: discord.ui.Select[FollowUpModal] | None = None
        if kind == "extend":
            self.seconds = discord.ui.Select(
                options=[
                    discord.SelectOption(
                        label=t(locale, "{seconds} more seconds", seconds=s),
                        value=s,
                        description=actions.price(source, s),
                        default=i == 0,
                    )
                    for i, s in enumerate(EXTEND_SECONDS)
                ],
                required=True,
            )
            self.add_item(
                discord.ui.Label(text=t(locale, "Seconds to add"), component=self.seconds)
            )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        seconds = None
        if self.seconds is not None:
            seconds = self.seconds.values[0] if self.seconds.values else EXTEND_SECONDS[0]
        await self.actions.follow_up(
            interaction, self.source_id, self.kind, self.prompt.value.strip(), seconds
        )

    async def on_error(  # type: ignore[override]  # discord.py's Modal takes no item
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        await report(interaction, error, f"{self.kind} of job {self.source_id}")


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(JobActions(bot))
