"""A member's request for a new video, from the interaction to the job's first look: the steps
`/video`, "Animate image" and the Remix and Extend forms share.

The request is kept in the store's intake before the public "thinking…" reply (so a stop right
after it is answered on the next start); a request that would be refused is refused before its
reference image is downloaded; the image is read from Discord's CDN with a size cap and fitted
behind the process-wide decode gate; the job's first embed becomes the job's message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

import aiohttp
import discord

from bot.api.models import CreateVideo, ReferenceImage
from bot.catalog import Catalog, NotOffered
from bot.jobview import job_view
from bot.notice import Notice, notice
from bot.options import option_refusal
from bot.prompt import clean_prompt, prompt_problem
from bot.reference import DecodeGate, FitMode, ReferenceRejected, check_declared_size
from bot.services import Services
from bot.store import Intake, Job
from bot.submit import Origin, Refused
from discordbot.attachments import AttachmentUnavailable, read_capped
from discordbot.buttons import cancel_view
from discordbot.notices import defer_publicly, tell
from discordbot.render import job_embed, source_line, standing_of
from discordbot.sink import DiscordSink

log = logging.getLogger(__name__)

# Discord allows an interaction's token to be used for 15 minutes after the interaction.
TOKEN_LIFETIME = 15 * 60
REFERENCE_LIMIT_BYTES = 20 * 1024 * 1024
# The longest prompt a form (Animate image, Remix, Extend) takes, as `/video`'s option does.
PROMPT_LIMIT = 4000
# How long the defer waits for the request's intake row (see RequestFlow.acknowledged).
INTAKE_WAIT = 1.0


def token_expiry(interaction: discord.Interaction[Any]) -> float:
    """When the interaction's token stops working (Unix seconds)."""
    return interaction.created_at.timestamp() + TOKEN_LIFETIME


def origin_of(interaction: discord.Interaction[Any]) -> Origin:
    return Origin(
        user_id=interaction.user.id,
        channel_id=interaction.channel_id or 0,
        guild_id=interaction.guild_id,
        interaction_id=interaction.id,
        interaction_token=interaction.token,
        token_expires_at=token_expiry(interaction),
        application_id=interaction.application_id,
        upload_limit=interaction.filesize_limit,
        role_ids=tuple(r.id for r in getattr(interaction.user, "roles", ())),
        parent_channel_id=getattr(interaction.channel, "parent_id", None),
        locale=interaction.locale.value,
    )


@dataclass(frozen=True)
class Checked:
    """A request the catalog offers, with the frame size a reference image is fitted to."""

    request: CreateVideo
    size: str


class VideoOptions(TypedDict, total=False):
    """A request's options besides its prompt (`/video`'s, or the "Animate image" form's);
    each one left out is the catalog's default."""

    model: str | None
    seconds: str | None
    size: str | None
    aspect_ratio: str | None
    resolution: str | None
    negative_prompt: str | None
    seed: int | None
    sound: bool | None


def checked_request(
    catalog: Catalog, prompt: str, **options: Unpack[VideoOptions]
) -> Checked | Notice:
    """The create request `/video` and "Animate image" send, every default filled in by the
    catalog, or why it is refused. Only checks that need no I/O: they are answered at once,
    before the defer."""
    text = clean_prompt(prompt)
    problem = prompt_problem(text)
    if problem:
        return problem
    model, negative_prompt = options.get("model"), options.get("negative_prompt")
    seed, sound = options.get("seed"), options.get("sound")
    avoid = clean_prompt(negative_prompt) if negative_prompt else None
    # Every option the model does not take, named at once (resolve stops at the first).
    spec = catalog.get(model) if model else catalog.default
    if spec is not None:
        problem = option_refusal(spec, negative_prompt=avoid, seed=seed, audio=sound)
        if problem:
            return problem
    try:
        picked = catalog.resolve(
            model,
            options.get("seconds"),
            options.get("size"),
            aspect_ratio=options.get("aspect_ratio"),
            resolution=options.get("resolution"),
            negative_prompt=avoid,
            seed=seed,
            audio=sound,
        )
    except NotOffered as exc:
        return exc.notice
    return Checked(picked.request(text, sound_asked=sound is not None), picked.size)


def image_refusal(reason: Notice) -> Notice:
    return notice("That image can't be used: {reason}", reason=reason)


class RequestFlow:
    def __init__(
        self,
        services: Services,
        cdn: aiohttp.ClientSession,
        decoder: DecodeGate,
        sink: DiscordSink,
    ) -> None:
        self.services = services
        self.sink = sink
        # Members' images from Discord's CDN, read with a size cap (discordbot/attachments.py).
        self.cdn = cdn
        self.decoder = decoder

    @contextlib.asynccontextmanager
    async def acknowledged(self, interaction: discord.Interaction[Any]) -> AsyncIterator[None]:
        """Keep the request in the store's intake, then defer (Discord's 3 seconds), and drop
        the intake once the block has made the request a job or answered it. The row comes
        first so a stop at any moment after the defer is answered on the next start instead of
        leaving "thinking…" forever; the store writes a burst's intakes together, ahead of other
        work, so this costs the acknowledgement about one trip to the database thread (~20 ms
        in a burst of 200, see docs/benchmarks.md). Should the database be slower than
        INTAKE_WAIT, the defer goes anyway: the 3 seconds matter more than that narrow window."""
        store = self.services.store
        intake = Intake(
            interaction_id=interaction.id,
            application_id=interaction.application_id,
            token=interaction.token,
            token_expires_at=token_expiry(interaction),
            user_id=interaction.user.id,
            received_at=time.time(),
            locale=interaction.locale.value,
        )
        recording = asyncio.ensure_future(store.record_intake(intake))
        try:
            await asyncio.wait({recording}, timeout=INTAKE_WAIT)
            if not recording.done():
                log.warning(
                    "intake of %s still not written after %.1f s", interaction.id, INTAKE_WAIT
                )
            await defer_publicly(interaction)
            await recording
            yield
        finally:
            if not recording.done():
                recording.cancel()
            await store.drop_intake(interaction.id)

    async def passes_precheck(
        self, interaction: discord.Interaction[Any], request: CreateVideo
    ) -> bool:
        """Budget, cooldown, active jobs, channel and model first: a request that would be
        refused is refused before its reference image is downloaded or decoded."""
        refused = await self.services.jobs.precheck(
            origin_of(interaction), request, has_reference=True
        )
        if refused is not None:
            await tell(interaction, refused.message)
            return False
        return True

    async def fetch_reference(
        self,
        interaction: discord.Interaction[Any],
        url: str,
        size: str,
        *,
        mode: FitMode,
        declared_size: int | None = None,
    ) -> ReferenceImage | None:
        """The member's image read from Discord's CDN with a size cap (checked before and while
        reading) and fitted to `size` behind the process-wide decode gate; None after telling
        the member why it cannot be used."""
        try:
            if declared_size is not None:
                check_declared_size(declared_size, REFERENCE_LIMIT_BYTES)
            data = await read_capped(self.cdn, url, REFERENCE_LIMIT_BYTES)
            return await self.decoder.fit(data, size, mode=mode, max_bytes=REFERENCE_LIMIT_BYTES)
        except ReferenceRejected as exc:
            await tell(interaction, image_refusal(exc.notice))
        except AttachmentUnavailable as exc:
            log.info("could not fetch a reference image for %s: %s", interaction.id, exc)
            await tell(
                interaction,
                notice(
                    "The image could not be fetched from Discord; the message may have been "
                    "deleted."
                ),
            )
        return None

    async def submit_and_present(
        self,
        interaction: discord.Interaction[Any],
        request: CreateVideo,
        reference: ReferenceImage | None,
    ) -> None:
        """The common end of `/video` and "Animate image": reserve and send, then show the job
        (or why it was refused)."""
        result = await self.services.jobs.submit(origin_of(interaction), request, reference)
        if isinstance(result, Refused):
            await tell(interaction, result.message)
            return
        await self.present_job(interaction, result)

    async def present_job(
        self, interaction: discord.Interaction[Any], job: Job, source: Job | None = None
    ) -> None:
        """The first look of a new job in the deferred reply (as `/video` shows it), remembered
        as the job's message; a job that failed at once goes straight to delivery."""
        services = self.services
        position = await services.store.queue_position(job.id)
        view = job_view(job, now=time.time(), service_ok=services.tracker.service_ok)
        # Its place in line and Cancel from the first look, as the sink shows them later.
        embed = job_embed(
            view,
            source=source_line(job, source, job.locale),
            standing=standing_of(job, None, position),
            locale=job.locale,
        )
        message = await interaction.edit_original_response(
            embed=embed, view=cancel_view(job, services.backend.client.caps)
        )
        self.sink.first_shown(job.id)
        await services.store.set_response_message(job.id, message.id)
        if job.state == "failed":
            services.deliverer.schedule(job)
