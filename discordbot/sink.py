"""Where job updates and results reach Discord.

While the interaction token is alive (15 minutes) the bot edits its original reply. After that the
token is useless, so updates and the result go to the channel as a reply that mentions the user,
and if the channel refuses, to the user's DMs. Edits are coalesced per message and spaced out so
even a hundred jobs in one channel stay inside Discord's rate limits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
import discord

from bot.delivery import Result
from bot.jobview import JobView, job_view
from bot.notice import Notice, notice
from bot.queueview import Outlook
from bot.store import Intake, Job
from discordbot.buttons import actions_view, cancel_view
from discordbot.host import Host
from discordbot.i18n import t, text
from discordbot.notices import notice_embed
from discordbot.render import Standing, job_embed, source_line, standing_of

log = logging.getLogger(__name__)

# A token this close to expiry is treated as expired: a slow upload must not straddle the end.
TOKEN_MARGIN = 30.0
# How far back in a channel an interrupted delivery looks for the result it may have posted.
RESULT_SEARCH_LIMIT = 50
# A progress edit that takes longer than this is given up (the job's next change tries again).
EDIT_TIMEOUT = 60.0
ORIGINAL = cast(int, "@original")  # discord.py formats the id into the URL; Discord wants this


# What a job's message shows: its view, where it stands, and whether Cancel is on it.
_Shown = tuple[JobView, Standing | None, bool]


@dataclass
class _MessageState:
    shown: _Shown | None = None
    last_edit: float = 0.0
    # The newest state (and outlook) waiting for the edit interval; it replaces an older one.
    pending: tuple[Job, Outlook | None] | None = None
    timer: asyncio.Task[None] | None = field(default=None, repr=False)
    # Held while an edit is under way; the result takes it too, so no progress edit can land
    # after the result, and `closed` keeps any later one from starting.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    closed: bool = False


def _token_dead(exc: discord.HTTPException) -> bool:
    return exc.status == 401 or exc.code in (50027, 10015, 10008)


class DiscordSink:
    MIN_EDIT_INTERVAL = 3.0
    ELAPSED_STEP = 10

    def __init__(self, client: discord.Client, host: Host, *, clock: Any = time.time) -> None:
        # `client` reaches Discord; `host` has the core's services (opened after this sink,
        # which they deliver through).
        self.client = client
        self.host = host
        self.clock = clock
        self._messages: dict[int, _MessageState] = {}

    # ------------------------------------------------------------------ progress

    def first_shown(self, job_id: int) -> None:
        """The job's first look reached Discord just now (the command's own reply): the first
        progress edit keeps the interval from it."""
        state = self._messages.setdefault(job_id, _MessageState())
        state.last_edit = max(state.last_edit, self.clock())

    async def show_progress(self, job: Job, outlook: Outlook | None = None) -> None:
        """Edit the job's message to show `job` and, from `outlook`, its place in line, when it
        should be done and an estimated bar; with Cancel while cancelling it is offered."""
        state = self._messages.get(job.id)
        if state is None:
            # A job shown before this process started (or whose first look is still on its
            # way): its first embed went out when the create was sent, at the earliest.
            first = job.create_attempted_at or job.created_at
            state = self._messages[job.id] = _MessageState(last_edit=first)
        # The newest state replaces any older one still waiting for the interval.
        state.pending = (job, outlook)
        if state.timer is not None:
            return
        if state.last_edit + self.MIN_EDIT_INTERVAL > self.clock():
            state.timer = asyncio.create_task(self._edit_later(job.id))
            return
        state.pending = None
        await self._show_now(job, outlook, state)

    async def _edit_later(self, job_id: int) -> None:
        # Until the interval since the last edit has passed; an edit or a first look recorded
        # meanwhile moves the end of the wait.
        while True:
            state = self._messages.get(job_id)
            if state is None:
                return
            wait = state.last_edit + self.MIN_EDIT_INTERVAL - self.clock()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        state.timer = None
        pending, state.pending = state.pending, None
        if pending is not None and self.client.is_closed():
            # Stopping: the connection to Discord is gone; the next start shows the job anew.
            return
        if pending is not None:
            job, outlook = pending
            try:
                # Bounded: an edit Discord never answers must not keep the message's lock (the
                # result waits for it). asyncio.timeout, not wait_for: on 3.11 wait_for can
                # swallow a cancel that arrives as the edit ends.
                async with asyncio.timeout(EDIT_TIMEOUT):
                    await self._show_now(job, outlook, state)
            except Exception:
                log.exception("progress edit for job %s failed", job_id)

    async def _show_now(self, job: Job, outlook: Outlook | None, state: _MessageState) -> None:
        # Claim the edit slot before the first await: a progress update arriving meanwhile then
        # waits for the interval instead of editing the same message a moment later.
        previous, state.last_edit = state.last_edit, self.clock()
        async with state.lock:
            if state.closed:
                return  # the result is being (or has been) posted
            if not self._token_alive(job):
                # Past the token's life the original reply can no longer be edited; progress
                # then waits for the result, which is posted as a new message (a status message
                # per poll would spam). Nothing is sent, so nothing is worked out either.
                state.last_edit = previous
                return
            services = self.host.services
            place = outlook.place if outlook is not None else None
            if place is None and job.state == "queued_local":
                place = await services.store.queue_position(job.id)
            # The place is shown by `standing` ("2nd in line"), not by the view's status.
            view = job_view(
                job,
                now=self.clock(),
                service_ok=services.tracker.service_ok,
                elapsed_step=self.ELAPSED_STEP,
            )
            standing = standing_of(job, outlook, place)
            buttons = cancel_view(job, services.backend.client.caps)
            shown: _Shown = (view, standing, buttons is not None)
            if shown == state.shown:
                state.last_edit = previous  # nothing was sent, so the slot is still free
                return
            embed = job_embed(
                view, source=await self._source(job), standing=standing, locale=job.locale
            )
            try:
                # Cancel while it is offered; `view=None` takes it off the message.
                await self._webhook(job).edit_message(ORIGINAL, embed=embed, view=buttons)
            except discord.HTTPException as exc:
                if not _token_dead(exc):
                    # Not marked as shown: the job's next change tries this edit again.
                    raise
                await services.store.clear_token(job.id)
            state.shown = shown

    # ------------------------------------------------------------------ results

    async def send_result(self, job: Job, result: Result) -> int | None:
        state = self._forget(job.id)
        if state is not None:
            async with state.lock:
                pass  # an edit under way ends before the result is posted
        view = job_view(job, now=self.clock())
        files: list[discord.File] = []
        thumb_name: str | None = None
        if result.thumbnail is not None:
            thumb_name = f"thumbnail-{job.id}{result.thumbnail.suffix}"
        # The thumbnail is the embed's picture (Discord shows no preview of an mp4 inside an
        # embed); with the video too large, it is what the member sees instead.
        embed = job_embed(
            view,
            thumbnail_name=thumb_name,
            source=await self._source(job),
            cancelled=job.cancelled,
            locale=job.locale,
        )
        for extra in (result.note, result.failure):
            # A failure the job's own view already says is not said twice.
            if extra is not None and text(None, extra) not in text(None, view.note or ""):
                embed.add_field(
                    name=t(job.locale, "Note"), value=text(job.locale, extra)[:1024], inline=False
                )
        # Remix, Extend and Delete under a video that arrived (or its preview, when too large);
        # none under a failure, which takes Cancel off the message.
        buttons = (
            actions_view(job, self.host.services.backend.client.caps)
            if result.failure is None
            else None
        )

        def attachments() -> list[discord.File]:
            # A File can be sent once; each attempt gets fresh handles.
            out: list[discord.File] = []
            if result.video is not None:
                out.append(discord.File(result.video, filename=f"video-{job.id}.mp4"))
            if result.thumbnail is not None and thumb_name is not None:
                out.append(discord.File(result.thumbnail, filename=thumb_name))
            return out

        if self._token_alive(job):
            try:
                files = attachments()
                message = await self._webhook(job).edit_message(
                    ORIGINAL, embed=embed, attachments=files, view=buttons
                )
                return message.id
            except discord.HTTPException as exc:
                if not _token_dead(exc):
                    raise
                await self.host.services.store.clear_token(job.id)
            finally:
                for f in files:
                    f.close()
        if job.cancelled:
            # Its member cancelled it with the button on the job's message, and the click's own
            # answer shows it there (cogs/actions.py): a reply saying so again would be noise.
            return job.response_message_id
        done = view.tone == "done" and result.failure is None
        said = notice("your video is ready") if done else notice("your video could not be made")
        return await self._post_reply(job, said, embed, attachments, buttons)

    async def _post_reply(
        self,
        job: Job,
        said: Notice,
        embed: discord.Embed,
        attachments: Any,
        buttons: discord.ui.View | None = None,
    ) -> int:
        """A new message replying to the original, mentioning only the job's owner, in their
        language."""
        mention = discord.AllowedMentions(
            users=[discord.Object(id=job.user_id)], everyone=False, roles=False, replied_user=False
        )
        reference = None
        if job.response_message_id is not None:
            reference = discord.MessageReference(
                message_id=job.response_message_id,
                channel_id=job.channel_id,
                guild_id=job.guild_id,
                fail_if_not_exists=False,
            )
        # Discord drops a second message with the same nonce, so a retry after a crash between
        # sending and recording the delivery does not post the result twice.
        nonce = f"job{job.id}"[:25]
        try:
            channel = self.client.get_channel(job.channel_id) or await self.client.fetch_channel(
                job.channel_id
            )
            if isinstance(channel, discord.abc.Messageable):
                kwargs: dict[str, Any] = {
                    "content": t(
                        job.locale, "{member} {news}", member=f"<@{job.user_id}>", news=said
                    ),
                    "embed": embed,
                    "files": attachments(),
                    "allowed_mentions": mention,
                    "nonce": nonce,
                }
                if reference is not None:
                    kwargs["reference"] = reference
                if buttons is not None:
                    kwargs["view"] = buttons
                message = await channel.send(**kwargs)
                return message.id
        except (discord.Forbidden, discord.NotFound):
            pass
        log.info("job %s: channel unusable, sending the result by DM", job.id)
        user = self.client.get_user(job.user_id) or await self.client.fetch_user(job.user_id)
        dm_kwargs: dict[str, Any] = {}
        if buttons is not None:
            dm_kwargs["view"] = buttons
        dm = await user.send(
            content=t(job.locale, "About your /video request: {news}", news=said),
            embed=embed,
            files=attachments(),
            nonce=nonce,
            **dm_kwargs,
        )
        return dm.id

    async def answer_unrecorded(self, intake: Intake) -> bool:
        """Tell a member whose request was acknowledged but never recorded (the bot stopped in
        between) that nothing was made or charged. False when the token could not be used."""
        if intake.token_expires_at - TOKEN_MARGIN <= self.clock():
            return False
        webhook = discord.Webhook.partial(intake.application_id, intake.token, client=self.client)
        edit = webhook.edit_message(
            ORIGINAL,
            content=None,
            embed=notice_embed(
                notice(
                    "The bot restarted before your request was recorded. Nothing was sent "
                    "to the video service and nothing was charged; please send it again."
                ),
                locale=intake.locale,
            ),
        )
        try:
            # Bounded, and any failure contained: the start waits for every such answer.
            async with asyncio.timeout(EDIT_TIMEOUT):
                await edit
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            log.info("could not answer unrecorded request %s: %s", intake.interaction_id, exc)
            return False
        return True

    async def find_result(self, job: Job) -> int | None:
        """Whether an interrupted delivery already reached the user: in the original reply while
        its token lives, else among the channel's recent messages from the bot."""
        if self._token_alive(job):
            try:
                original = await self._webhook(job).fetch_message(ORIGINAL)
            except discord.HTTPException:
                original = None
            if original is not None and self._carries_result(job, original):
                return original.id
        try:
            channel = self.client.get_channel(job.channel_id) or await self.client.fetch_channel(
                job.channel_id
            )
            if not isinstance(channel, discord.abc.Messageable):
                return None
            own_ids = {
                self.client.application_id,
                self.client.user.id if self.client.user else None,
            }
            async for message in channel.history(limit=RESULT_SEARCH_LIMIT):
                if message.author.id in own_ids and self._carries_result(job, message):
                    return message.id
        except discord.HTTPException:
            log.info("job %s: could not search the channel for a delivered result", job.id)
        return None

    @staticmethod
    def _carries_result(job: Job, message: discord.Message) -> bool:
        if any(a.filename == f"video-{job.id}.mp4" for a in message.attachments):
            return True
        # A failure or an over-limit result has no video; its embed names the job and its outcome
        # (in the member's language, or in English when it was written before that was known).
        marks = {
            (t(locale, "job {id}", id=job.id) + " ", t(locale, "Note"))
            for locale in (None, job.locale)
        }
        return any(
            (e.footer.text or "").startswith(job_mark) and any(f.name == note for f in e.fields)
            for e in message.embeds
            for job_mark, note in marks
        )

    # ------------------------------------------------------------------ helpers

    async def _source(self, job: Job) -> str | None:
        """For a remix, edit or extension: the line linking back to what it was made from."""
        if job.source_job_id is None:
            return None
        source = await self.host.services.store.get_job(job.source_job_id)
        return source_line(job, source, job.locale)

    def _token_alive(self, job: Job) -> bool:
        return (
            job.interaction_token is not None
            and job.application_id is not None
            and job.token_expires_at is not None
            and job.token_expires_at - TOKEN_MARGIN > self.clock()
        )

    def _webhook(self, job: Job) -> discord.Webhook:
        assert job.application_id is not None and job.interaction_token is not None
        return discord.Webhook.partial(
            job.application_id, job.interaction_token, client=self.client
        )

    def _forget(self, job_id: int) -> _MessageState | None:
        state = self._messages.pop(job_id, None)
        if state is not None:
            state.closed = True
            if state.timer is not None:
                state.timer.cancel()
        return state
