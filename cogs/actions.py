"""The buttons under a finished video: Remix, Extend and Delete.

Each button's custom_id names the job and the action (`job:12:remix`), and one `DynamicItem`
class answers every such id, so the buttons keep working on old messages after a restart with
nothing kept in memory. Only the job's owner may use them; anyone else is told so privately.

Remix and Extend open a modal; its submission becomes a new job through `JobService
.submit_followup`, with the same guild rules, quotas, queue and tracking as `/video`, and a reply
of its own that links back to the video it was made from. Delete deletes the video at the API and
takes the attachment (and the buttons) off the message, keeping the embed marked as deleted.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

import discord

from bot.api.errors import NotFoundError, VideoAPIError
from bot.api.profiles import Capabilities
from bot.catalog import format_dollars
from bot.store import Job
from bot.submit import EXTEND_SECONDS, FollowUpKind, Refused
from cogs.errors import new_reference, tell
from cogs.video import TOKEN_LIFETIME, acknowledged, origin_of, present_job, refuse
from discordbot.access import admitted
from discordbot.render import deleted_embed, notice_embed

if TYPE_CHECKING:
    from discordbot.client import VideoBot

log = logging.getLogger(__name__)

Action = Literal["remix", "extend", "delete"]
ACTIONS: tuple[Action, ...] = ("remix", "extend", "delete")
TEMPLATE = r"job:(?P<id>[0-9]{1,20}):(?P<action>remix|extend|delete)"
PROMPT_LIMIT = 4000
_DEFERRED_UPDATES = (
    discord.InteractionResponseType.deferred_message_update,
    discord.InteractionResponseType.message_update,
)


def action_id(job_id: int, action: Action) -> str:
    return f"job:{job_id}:{action}"


def remix_kind(caps: Capabilities) -> FollowUpKind | None:
    """The edits endpoint where the backend has it, else remix; None where it has neither."""
    if caps.edits:
        return "edit"
    if caps.remix:
        return "remix"
    return None


def offered_actions(caps: Capabilities) -> list[Action]:
    wanted = {
        "remix": remix_kind(caps) is not None,
        "extend": caps.extensions,
        "delete": caps.delete,
    }
    return [a for a in ACTIONS if wanted[a]]


def actions_view(job: Job, caps: Capabilities) -> discord.ui.View | None:
    """The buttons for a delivered video, only those the backend can do; None if there are none."""
    if job.state != "succeeded" or job.api_video_id is None:
        return None
    actions = offered_actions(caps)
    if not actions:
        return None
    view = discord.ui.View(timeout=None)
    for action in actions:
        view.add_item(JobActionButton(job.id, action))
    return view


def bot_of(interaction: discord.Interaction) -> VideoBot:
    return cast("VideoBot", interaction.client)


async def notify(interaction: discord.Interaction, text: str, reference: str | None = None) -> None:
    """An ephemeral notice. After a deferred update the original response *is* the video's
    message, so the notice must be a separate private followup, never an edit of it."""
    if interaction.response.type in _DEFERRED_UPDATES:
        try:
            await interaction.followup.send(
                embed=notice_embed(text, reference=reference), ephemeral=True
            )
        except discord.HTTPException:
            log.warning("could not tell the user about an error (reference %s)", reference)
        return
    await tell(interaction, text, reference)


async def report_failure(
    interaction: discord.Interaction, error: BaseException, where: str
) -> None:
    reference = new_reference()
    log.error(
        "reference %s: %s by user %s failed",
        reference,
        where,
        interaction.user.id,
        exc_info=error,
    )
    await notify(
        interaction, "Something went wrong on our side; the bot's owner can look it up.", reference
    )


def _usable(job: Job, verb: str, now: float) -> str | None:
    """Why `job`'s video cannot be used for a follow-up (for the owner), or None."""
    if job.state != "succeeded" or job.api_video_id is None:
        return f"Only a finished video can be {verb}."
    if job.expires_at is not None and job.expires_at <= now:
        return f"That video has expired at the video service, so it can't be {verb}."
    return None


class JobActionButton(
    discord.ui.DynamicItem[discord.ui.Button[discord.ui.View]],
    template=TEMPLATE,
):
    """Remix, Extend or Delete under job `job_id`'s video; rebuilt from its custom_id on every
    click, so it works on messages sent before a restart."""

    LOOKS: ClassVar[dict[Action, tuple[str, str, discord.ButtonStyle]]] = {
        "remix": ("Remix", "🔁", discord.ButtonStyle.secondary),
        "extend": ("Extend", "⏩", discord.ButtonStyle.secondary),
        "delete": ("Delete", "🗑️", discord.ButtonStyle.danger),
    }

    def __init__(self, job_id: int, action: Action) -> None:
        label, emoji, style = self.LOOKS[action]
        super().__init__(
            discord.ui.Button(
                label=label, emoji=emoji, style=style, custom_id=action_id(job_id, action)
            )
        )
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
            await self._run(interaction)
        except Exception as exc:
            await report_failure(interaction, exc, f"button {self.custom_id}")

    async def _run(self, interaction: discord.Interaction) -> None:
        bot = bot_of(interaction)
        job = await bot.store.get_job(self.job_id)
        if job is None:
            await tell(interaction, "This video is no longer known to the bot.")
            return
        if interaction.user.id != job.user_id:
            await tell(
                interaction,
                f"Only <@{job.user_id}>, who made this video, can use its buttons. "
                "Use `/video` to make one of your own.",
            )
            return
        caps = bot.backend.client.caps
        if self.action == "delete":
            await delete_video(bot, interaction, job)
            return
        kind: FollowUpKind | None = remix_kind(caps) if self.action == "remix" else None
        if self.action == "extend" and caps.extensions:
            kind = "extend"
        if kind is None:
            await tell(interaction, f"The video service here can't {self.action} videos.")
            return
        problem = _usable(job, "remixed" if kind != "extend" else "extended", time.time())
        if problem:
            await tell(interaction, problem)
            return
        await interaction.response.send_modal(FollowUpModal(bot, job, kind))


class FollowUpModal(discord.ui.Modal):
    """The prompt (and, for an extension, the seconds to add) for a follow-up of one job."""

    def __init__(self, bot: VideoBot, source: Job, kind: FollowUpKind) -> None:
        verb = "Extend" if kind == "extend" else "Remix"
        super().__init__(title=f"{verb} job {source.id}"[:45], timeout=TOKEN_LIFETIME)
        self.bot = bot
        self.source_id = source.id
        self.kind: FollowUpKind = kind
        if kind == "extend":
            self.prompt: discord.ui.TextInput[FollowUpModal] = discord.ui.TextInput(
                label="What happens next",
                style=discord.TextStyle.paragraph,
                placeholder="Describe how the video continues",
                max_length=PROMPT_LIMIT,
            )
        else:
            self.prompt = discord.ui.TextInput(
                label="New prompt",
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
                        label=f"{s} more seconds",
                        value=s,
                        description=self._price(source, s),
                        default=i == 0,
                    )
                    for i, s in enumerate(EXTEND_SECONDS)
                ],
                required=True,
            )
            self.add_item(discord.ui.Label(text="Seconds to add", component=self.seconds))

    def _price(self, source: Job, seconds: str) -> str | None:
        try:
            return format_dollars(self.bot.catalog.cost_micros(source.model, source.size, seconds))
        except KeyError:
            return None

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot = self.bot
        prompt = self.prompt.value.strip()
        if not prompt:
            await refuse(interaction, "The prompt is empty.")
            return
        seconds = None
        if self.seconds is not None:
            seconds = self.seconds.values[0] if self.seconds.values else EXTEND_SECONDS[0]
        source = await bot.store.get_job(self.source_id)
        if source is None:
            await refuse(interaction, "The video this was made from is no longer known.")
            return
        async with acknowledged(bot, interaction):
            result = await bot.jobs.submit_followup(
                origin_of(interaction), source, self.kind, prompt, seconds=seconds
            )
            if isinstance(result, Refused):
                await refuse(interaction, result.message)
                return
            await present_job(bot, interaction, result, source)

    async def on_error(  # type: ignore[override]  # discord.py's Modal takes no item
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        await report_failure(interaction, error, f"{self.kind} of job {self.source_id}")


async def delete_video(bot: VideoBot, interaction: discord.Interaction, job: Job) -> None:
    """Delete the video at the API, then take the attachment and the buttons off the message."""
    if not bot.backend.client.caps.delete:
        await tell(interaction, "The video service here can't delete videos.")
        return
    if job.api_video_id is None:
        await tell(interaction, "This job has no video to delete.")
        return
    # The API call may take longer than Discord waits for an answer; the message stays as it is
    # until the video is really gone.
    await interaction.response.defer()
    try:
        await bot.backend.client.delete(job.api_video_id)
    except NotFoundError:
        log.info("job %s: video %s was already gone", job.id, job.api_video_id)
    except VideoAPIError as exc:
        log.warning("job %s: deleting video %s failed: %s", job.id, job.api_video_id, exc)
        await notify(
            interaction,
            "The video service could not delete the video just now; nothing was changed. "
            "Try again in a while.",
        )
        return
    log.info("job %s: video %s deleted by its owner", job.id, job.api_video_id)
    message = interaction.message
    shown = message.embeds[0] if message is not None and message.embeds else None
    await interaction.edit_original_response(embed=deleted_embed(shown), attachments=[], view=None)


async def setup(bot: VideoBot) -> None:
    # Persistent: every button of this shape, on any message however old, reaches this class.
    bot.add_dynamic_items(JobActionButton)


async def teardown(bot: VideoBot) -> None:
    bot.remove_dynamic_items(JobActionButton)
