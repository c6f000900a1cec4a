"""`/video`: parse, defer, hand to the job service, render. No SQL, no HTTP here."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Optional

import discord
from discord import app_commands

from bot.api.models import CreateVideo, ReferenceImage
from bot.catalog import (
    NEGATIVE_PROMPT_LIMIT,
    SEED_LIMIT,
    Catalog,
    ModelSpec,
    NotOffered,
    parse_aspect,
    size_label,
)
from bot.jobview import job_view
from bot.options import option_refusal
from bot.prompt import clean_prompt, prompt_problem
from bot.reference import FitMode, ReferenceRejected, check_declared_size
from bot.store import Intake, Job
from bot.submit import Origin, Refused
from discordbot.attachments import AttachmentUnavailable, read_capped
from discordbot.render import job_embed, notice_embed, source_line

if TYPE_CHECKING:
    from discordbot.client import VideoBot

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


async def passes_precheck(
    bot: VideoBot, interaction: discord.Interaction, request: CreateVideo
) -> bool:
    """Budget, cooldown, active jobs, channel and model first: a request that would be refused
    is refused before its reference image is downloaded or decoded."""
    refused = await bot.jobs.precheck(origin_of(interaction), request, has_reference=True)
    if refused is not None:
        await refuse(interaction, refused.message)
        return False
    return True


async def fetch_reference(
    bot: VideoBot,
    interaction: discord.Interaction,
    url: str,
    size: str,
    *,
    mode: FitMode,
    declared_size: int | None = None,
) -> ReferenceImage | None:
    """The member's image read from Discord's CDN with a size cap (checked before and while
    reading) and fitted to `size` behind the process-wide decode gate; None after telling the
    member why it cannot be used."""
    try:
        if declared_size is not None:
            check_declared_size(declared_size, REFERENCE_LIMIT_BYTES)
        data = await read_capped(bot.cdn, url, REFERENCE_LIMIT_BYTES)
        return await bot.decoder.fit(data, size, mode=mode, max_bytes=REFERENCE_LIMIT_BYTES)
    except ReferenceRejected as exc:
        await refuse(interaction, f"That image can't be used: {exc.reason}")
    except AttachmentUnavailable as exc:
        log.info("could not fetch a reference image for %s: %s", interaction.id, exc)
        await refuse(
            interaction,
            "The image could not be fetched from Discord; the message may have been deleted.",
        )
    return None


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
    "negative_prompt": "What the video should not show (models that take a negative prompt)",
    "seed": "A number that makes the same request give the same video (models that take one)",
    "sound": "Sound on or off (models that make sound)",
    "reference": "An image to start from (jpeg, png, webp or gif)",
    "fit": "How the reference is fitted to the size: crop (default) or pad",
}


def video_parameters(catalog: Catalog) -> list[inspect.Parameter]:
    """`/video`'s options as the catalog in use calls for: aspect ratio and resolution only
    where some model is specified that way, and each per-model option only where some model
    takes it (a member is never offered what no model here can use)."""
    optional = inspect.Parameter.KEYWORD_ONLY

    def option(name: str, annotation: object) -> inspect.Parameter:
        return inspect.Parameter(name, optional, default=None, annotation=annotation)

    params = [
        inspect.Parameter(
            "interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=discord.Interaction
        ),
        inspect.Parameter("prompt", optional, annotation=app_commands.Range[str, 1, 4000]),
        option("model", Optional[str]),  # noqa: UP045 - discord.py reads the annotation object
        option("seconds", Optional[str]),  # noqa: UP045
        option("size", Optional[str]),  # noqa: UP045
    ]
    if catalog.by_shape:
        params += [option("aspect_ratio", Optional[str]), option("resolution", Optional[str])]  # noqa: UP045
    taken = [m.options for m in catalog.models]
    if any(o.negative_prompt for o in taken):
        params.append(option("negative_prompt", app_commands.Range[str, 1, NEGATIVE_PROMPT_LIMIT]))
    if any(o.seed for o in taken):
        params.append(option("seed", app_commands.Range[int, 0, SEED_LIMIT - 1]))
    if any(o.audio for o in taken):
        params.append(option("sound", Optional[bool]))  # noqa: UP045
    params += [option("reference", Optional[discord.Attachment]), option("fit", Optional[str])]  # noqa: UP045
    return params


def build_video_command(bot: VideoBot) -> app_commands.Command[Any, ..., None]:
    """`/video` as the catalog in use shapes it: its models, durations and sizes as choices
    (autocomplete past Discord's 25), aspect ratio and resolution when a model is specified
    that way, and the per-model options some model takes. Any change of those changes the
    command tree's hash, so it is synced again."""
    catalog = bot.catalog

    async def video(
        interaction: discord.Interaction,
        *,
        prompt: str,
        model: str | None = None,
        seconds: str | None = None,
        size: str | None = None,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        sound: bool | None = None,
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
        avoid = clean_prompt(negative_prompt) if negative_prompt is not None else None
        spec = catalog.get(model) if model else catalog.default
        problem = (
            option_refusal(spec, negative_prompt=avoid, seed=seed, audio=sound)
            if spec is not None
            else None
        )
        if problem:
            await refuse(interaction, problem)
            return
        try:
            picked = catalog.resolve(
                model,
                seconds,
                size,
                aspect_ratio=aspect_ratio,
                resolution=resolution,
                negative_prompt=avoid,
                seed=seed,
                audio=sound,
            )
        except NotOffered as exc:
            await refuse(interaction, str(exc))
            return
        async with acknowledged(bot, interaction):
            request = picked.request(text, sound_asked=sound is not None)
            fitted: ReferenceImage | None = None
            if reference is not None:
                if not await passes_precheck(bot, interaction, request):
                    return
                fitted = await fetch_reference(
                    bot,
                    interaction,
                    reference.url,
                    picked.size,
                    mode="pad" if fit == "pad" else "crop",
                    declared_size=reference.size,
                )
                if fitted is None:
                    return
            await submit_and_present(bot, interaction, request, fitted)

    # discord.py reads the options from the callback's signature: this one offers exactly the
    # options the catalog calls for (the function takes them all, each defaulting to None).
    params = video_parameters(catalog)
    video.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    names = {p.name for p in params}
    callback: Callable[..., Coroutine[Any, Any, None]] = video
    choices, autocomplete = command_menus(catalog)
    callback = app_commands.describe(**{k: v for k, v in DESCRIPTIONS.items() if k in names})(
        callback
    )
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
