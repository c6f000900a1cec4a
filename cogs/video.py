"""`/video`: parse, defer, hand to the job service, render. No SQL, no HTTP here."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.api.models import CreateVideo, ReferenceImage
from bot.catalog import Catalog, ModelSpec, NotOffered, parse_aspect, size_label
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


# Discord shows at most 25 choices for an option; past that the option autocompletes instead.
CHOICE_LIMIT = 25
# The options whose values come from the catalog, in the order `/video` shows them.
CATALOG_OPTIONS = ("model", "seconds", "size", "aspect_ratio", "resolution")


def aspect_label(aspect: str) -> str:
    """'16:9' -> '16:9 (landscape)'."""
    a, b = parse_aspect(aspect)
    return f"{aspect} ({'landscape' if a > b else 'portrait' if b > a else 'square'})"


def menu(catalog: Catalog, option: str, spec: ModelSpec | None = None) -> list[tuple[str, str]]:
    """(name, value) of every value `option` offers: the catalog's, or only `spec`'s."""
    if option == "model":
        return [(m.label, m.id) for m in catalog.models]
    if option == "seconds":
        values = list(spec.seconds) if spec else catalog.all_seconds()
        return [(f"{s} seconds", s) for s in values]
    if option == "size":
        return [(size_label(s), s) for s in (spec.sizes if spec else catalog.all_sizes())]
    if option == "aspect_ratio":
        aspects = (spec.aspect_ratios or spec.offered_aspects()) if spec else None
        return [(aspect_label(a), a) for a in aspects or catalog.all_aspect_ratios()]
    if option == "resolution":
        resolutions = (spec.resolutions or spec.offered_resolutions()) if spec else None
        return [(r, r) for r in resolutions or catalog.all_resolutions()]
    raise ValueError(f"no catalog option {option!r}")


def command_menus(
    catalog: Catalog,
) -> tuple[dict[str, list[app_commands.Choice[str]]], list[str]]:
    """For `/video`: the options offered as fixed choices, and those that autocomplete (more
    values than Discord shows as choices)."""
    options = CATALOG_OPTIONS if catalog.by_shape else CATALOG_OPTIONS[:3]
    choices: dict[str, list[app_commands.Choice[str]]] = {}
    autocomplete: list[str] = []
    for option in options:
        values = menu(catalog, option)
        if len(values) > CHOICE_LIMIT:
            autocomplete.append(option)
        else:
            choices[option] = [app_commands.Choice(name=n, value=v) for n, v in values]
    return choices, autocomplete


def suggestions(
    catalog: Catalog,
    option: str,
    current: str,
    *,
    model: str | None = None,
    aspect_ratio: str | None = None,
    resolution: str | None = None,
) -> list[tuple[str, str]]:
    """What an autocompleting option suggests: the values of the model already picked (every
    model's when none is), sizes narrowed by an aspect ratio or resolution already picked,
    then those matching what the member has typed; at most 25."""
    spec = catalog.get(model) if model and option != "model" else None
    values = menu(catalog, option, spec)
    if option == "size" and spec is not None and (aspect_ratio or resolution):
        narrowed = [
            (n, s)
            for n, s in values
            if (not aspect_ratio or (spec.shape_of(s) or ("", ""))[0] == aspect_ratio)
            and (not resolution or spec.resolution_of(s) == resolution)
        ]
        values = narrowed or values
    typed = current.strip().lower()
    if typed:
        values = [(n, v) for n, v in values if typed in n.lower() or typed in v.lower()]
    return values[:CHOICE_LIMIT]


def _autocompleter(
    catalog: Catalog, option: str
) -> Callable[[discord.Interaction, str], Coroutine[Any, Any, list[app_commands.Choice[str]]]]:
    async def complete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        picked = interaction.namespace
        found = suggestions(
            catalog,
            option,
            current,
            model=_text(picked.model),
            aspect_ratio=_text(picked.aspect_ratio),
            resolution=_text(picked.resolution),
        )
        return [app_commands.Choice(name=n, value=v) for n, v in found]

    return complete


def _text(value: object) -> str | None:
    # A namespace value is whatever the member's client sent: use it only when it is text.
    return value if isinstance(value, str) and value else None


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


DESCRIPTIONS = {
    "prompt": "What the video should show",
    "model": "Which model makes it",
    "seconds": "How long it is",
    "size": "Width x height",
    "aspect_ratio": "Shape, for models chosen by aspect ratio (instead of a size)",
    "resolution": "Resolution, for models chosen by resolution (instead of a size)",
    "reference": "An image to start from (jpeg, png, webp or gif)",
    "fit": "How the reference is fitted to the size: crop (default) or pad",
}


def build_video_command(bot: VideoBot) -> app_commands.Command[Any, ..., None]:
    """`/video` as the catalog in use shapes it: its models, durations and sizes as choices
    (autocomplete past Discord's 25), and aspect ratio and resolution when a model is specified
    that way. Any change of those changes the command tree's hash, so it is synced again."""
    catalog = bot.catalog

    async def run(  # noqa: PLR0917 - one value per option
        interaction: discord.Interaction,
        prompt: str,
        model: str | None,
        seconds: str | None,
        size: str | None,
        aspect_ratio: str | None,
        resolution: str | None,
        reference: discord.Attachment | None,
        fit: str | None,
    ) -> None:
        # Checks that need no I/O answer at once and privately; everything slower comes after
        # the defer, which must reach Discord within 3 seconds.
        text = clean_prompt(prompt)
        problem = prompt_problem(text)
        if problem:
            await refuse(interaction, problem)
            return
        try:
            picked = catalog.resolve(
                model, seconds, size, aspect_ratio=aspect_ratio, resolution=resolution
            )
        except NotOffered as exc:
            await refuse(interaction, str(exc))
            return
        async with acknowledged(bot, interaction):
            fitted: ReferenceImage | None = None
            if reference is not None:
                try:
                    check_declared_size(reference.size, REFERENCE_LIMIT_BYTES)
                    data = await reference.read()
                    fitted = await fit_reference_async(
                        data, picked.size, mode="pad" if fit == "pad" else "crop"
                    )
                except ReferenceRejected as exc:
                    await refuse(interaction, f"That reference image can't be used: {exc.reason}")
                    return
            request = CreateVideo(
                prompt=text, model=picked.model, seconds=picked.seconds, size=picked.size
            )
            await submit_and_present(bot, interaction, request, fitted)

    async def video_by_shape(  # noqa: PLR0917 - Discord passes options as parameters
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 4000],
        model: str | None = None,
        seconds: str | None = None,
        size: str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        reference: discord.Attachment | None = None,
        fit: str | None = None,
    ) -> None:
        await run(
            interaction, prompt, model, seconds, size, aspect_ratio, resolution, reference, fit
        )

    async def video_by_size(  # noqa: PLR0917 - Discord passes options as parameters
        interaction: discord.Interaction,
        prompt: app_commands.Range[str, 1, 4000],
        model: str | None = None,
        seconds: str | None = None,
        size: str | None = None,
        reference: discord.Attachment | None = None,
        fit: str | None = None,
    ) -> None:
        await run(interaction, prompt, model, seconds, size, None, None, reference, fit)

    # Aspect ratio and resolution are offered only where some model is specified that way.
    callback: Callable[..., Coroutine[Any, Any, None]] = (
        video_by_shape if catalog.by_shape else video_by_size
    )
    choices, autocomplete = command_menus(catalog)
    callback = app_commands.describe(
        **{k: v for k, v in DESCRIPTIONS.items() if k in inspect.signature(callback).parameters}
    )(callback)
    callback = app_commands.choices(
        **choices,
        fit=[
            app_commands.Choice(name="crop to fill", value="crop"),
            app_commands.Choice(name="pad with blurred edges", value="pad"),
        ],
    )(callback)
    if autocomplete:
        callback = app_commands.autocomplete(
            **{option: _autocompleter(catalog, option) for option in autocomplete}
        )(callback)
    return app_commands.Command(
        name="video",
        description="Generate a video from a prompt",
        callback=callback,
    )


async def setup(bot: VideoBot) -> None:
    bot.tree.add_command(build_video_command(bot))


async def teardown(bot: VideoBot) -> None:
    bot.tree.remove_command("video")
