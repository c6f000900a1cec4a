"""`/video`: parse, defer, hand to the job service, render. No SQL, no HTTP here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.api.models import CreateVideo, ReferenceImage
from bot.catalog import Catalog, size_label
from bot.jobview import job_view
from bot.prompt import clean_prompt, prompt_problem
from bot.reference import ReferenceRejected, check_declared_size, fit_reference_async
from bot.store import Intake, Job
from bot.submit import Origin, Refused
from cogs.render import job_embed, notice_embed, source_line

if TYPE_CHECKING:
    from bot.app import VideoBot

log = logging.getLogger(__name__)

# Discord allows an interaction's token to be used for 15 minutes after the interaction.
TOKEN_LIFETIME = 15 * 60
REFERENCE_LIMIT_BYTES = 20 * 1024 * 1024
# How long the defer waits for the request's intake row (see acknowledged()).
INTAKE_WAIT = 1.0


def model_choices(catalog: Catalog) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=m.label, value=m.id) for m in catalog.models][:25]


def seconds_choices(catalog: Catalog) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=f"{s} seconds", value=s) for s in catalog.all_seconds()][:25]


def size_choices(catalog: Catalog) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=size_label(s), value=s) for s in catalog.all_sizes()][:25]


def origin_of(interaction: discord.Interaction) -> Origin:
    return Origin(
        user_id=interaction.user.id,
        channel_id=interaction.channel_id or 0,
        guild_id=interaction.guild_id,
        interaction_id=interaction.id,
        interaction_token=interaction.token,
        token_expires_at=interaction.created_at.timestamp() + TOKEN_LIFETIME,
        application_id=interaction.application_id,
        upload_limit=interaction.filesize_limit,
        role_ids=tuple(r.id for r in getattr(interaction.user, "roles", ())),
        parent_channel_id=getattr(interaction.channel, "parent_id", None),
    )


async def refuse(interaction: discord.Interaction, text: str, reference: str | None = None) -> None:
    """Tell only the invoker why nothing was started."""
    embed = notice_embed(text, reference=reference)
    if not interaction.response.is_done():
        await interaction.response.send_message(embed=embed, ephemeral=True)
        return
    # After a public defer, the first followup replaces the "thinking…" reply and its ephemeral
    # flag is ignored; so resolve the placeholder first, answer privately, then remove it.
    await interaction.edit_original_response(content="Not started.")
    await interaction.followup.send(embed=embed, ephemeral=True)
    try:
        await interaction.delete_original_response()
    except discord.HTTPException:
        log.debug("could not remove the placeholder reply", exc_info=True)


async def present_job(
    bot: VideoBot, interaction: discord.Interaction, job: Job, source: Job | None = None
) -> None:
    """The first look of a new job in the deferred reply (as `/video` shows it), remembered as
    the job's message; a job that failed at once goes straight to delivery."""
    position = await bot.store.queue_position(job.id)
    view = job_view(
        job, now=time.time(), queue_position=position, service_ok=bot.tracker.service_ok
    )
    embed = job_embed(view, source=source_line(job, source))
    message = await interaction.edit_original_response(embed=embed)
    await bot.store.set_response_message(job.id, message.id)
    if job.state == "failed":
        bot.deliverer.schedule(job)


@contextlib.asynccontextmanager
async def acknowledged(bot: VideoBot, interaction: discord.Interaction) -> AsyncIterator[None]:
    """Keep the request in the store's intake, then defer (Discord's 3 seconds), and drop the
    intake once the block has made the request a job or answered it. The row comes first so a
    stop at any moment after the defer is answered on the next start instead of leaving
    "thinking…" forever; the store writes a burst's intakes together, ahead of other work, so
    this costs the acknowledgement about one trip to the database thread (~20 ms in a burst of
    200, see docs/benchmarks.md). Should the database be slower than
    INTAKE_WAIT, the defer goes anyway: the 3 seconds matter more than that narrow window."""
    intake = Intake(
        interaction_id=interaction.id,
        application_id=interaction.application_id,
        token=interaction.token,
        token_expires_at=interaction.created_at.timestamp() + TOKEN_LIFETIME,
        user_id=interaction.user.id,
        received_at=time.time(),
    )
    recording = asyncio.ensure_future(bot.store.record_intake(intake))
    try:
        await asyncio.wait({recording}, timeout=INTAKE_WAIT)
        if not recording.done():
            log.warning("intake of %s still not written after %.1f s", interaction.id, INTAKE_WAIT)
        await interaction.response.defer(thinking=True)
        await recording
        yield
    finally:
        if not recording.done():
            recording.cancel()
        await bot.store.drop_intake(interaction.id)


async def submit_and_present(
    bot: VideoBot,
    interaction: discord.Interaction,
    request: CreateVideo,
    reference: ReferenceImage | None,
) -> None:
    """The common end of `/video` and "Animate image": reserve and send, then show the job (or
    why it was refused)."""
    result = await bot.jobs.submit(origin_of(interaction), request, reference)
    if isinstance(result, Refused):
        await refuse(interaction, result.message)
        return
    await present_job(bot, interaction, result)


def build_video_command(bot: VideoBot) -> app_commands.Command[Any, ..., None]:
    catalog = bot.catalog

    @app_commands.describe(
        prompt="What the video should show",
        model="Which model makes it",
        seconds="How long it is",
        size="Width x height",
        reference="An image to start from (jpeg, png, webp or gif)",
        fit="How the reference is fitted to the size: crop (default) or pad",
    )
    @app_commands.choices(
        model=model_choices(catalog),
        seconds=seconds_choices(catalog),
        size=size_choices(catalog),
        fit=[
            app_commands.Choice(name="crop to fill", value="crop"),
            app_commands.Choice(name="pad with blurred edges", value="pad"),
        ],
    )
    async def video(  # noqa: PLR0917 - Discord passes options as parameters
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 4000],
        model: str | None = None,
        seconds: str | None = None,
        size: str | None = None,
        reference: discord.Attachment | None = None,
        fit: str | None = None,
    ) -> None:
        # Checks that need no I/O answer at once and privately; everything slower comes after
        # the defer, which must reach Discord within 3 seconds.
        text = clean_prompt(prompt)
        problem = prompt_problem(text)
        if problem:
            await refuse(interaction, problem)
            return
        spec = catalog.get(model) if model else catalog.default
        model_id = model or catalog.default.id
        secs = seconds or (spec.seconds[0] if spec else "")
        dims = size or (spec.sizes[0] if spec else "")
        problem = catalog.check(model_id, secs, dims)
        if problem:
            await refuse(interaction, problem)
            return
        async with acknowledged(bot, interaction):
            fitted: ReferenceImage | None = None
            if reference is not None:
                try:
                    check_declared_size(reference.size, REFERENCE_LIMIT_BYTES)
                    data = await reference.read()
                    fitted = await fit_reference_async(
                        data, dims, mode="pad" if fit == "pad" else "crop"
                    )
                except ReferenceRejected as exc:
                    await refuse(interaction, f"That reference image can't be used: {exc.reason}")
                    return
            request = CreateVideo(prompt=text, model=model_id, seconds=secs, size=dims)
            await submit_and_present(bot, interaction, request, fitted)

    return app_commands.Command(
        name="video",
        description="Generate a video from a prompt",
        callback=video,
    )


async def setup(bot: VideoBot) -> None:
    bot.tree.add_command(build_video_command(bot))


async def teardown(bot: VideoBot) -> None:
    bot.tree.remove_command("video")
