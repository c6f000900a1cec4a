"""`/video`: parse, defer, hand to the job service, render. No SQL, no HTTP here."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, Optional, Unpack

import discord
from discord import app_commands
from discord.ext import commands

from bot.api.models import SEED_LIMIT, ReferenceImage
from bot.catalog import NEGATIVE_PROMPT_LIMIT, Catalog
from discordbot.client import VideoBot
from discordbot.menus import autocompleter, command_menus
from discordbot.notices import tell
from discordbot.requests import (
    PROMPT_LIMIT,
    Checked,
    RequestFlow,
    VideoOptions,
    checked_request,
)

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
        inspect.Parameter("prompt", optional, annotation=app_commands.Range[str, 1, PROMPT_LIMIT]),
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


VideoCallback = Callable[..., Coroutine[Any, Any, None]]


def build_video_command(
    catalog: Catalog, run: VideoCallback
) -> app_commands.Command[Any, ..., None]:
    """`/video` as the catalog in use shapes it: its models, durations and sizes as choices
    (autocomplete past Discord's 25), aspect ratio and resolution when a model is specified
    that way, and the per-model options some model takes. Any change of those changes the
    command tree's hash, so it is synced again. `run` takes the interaction and the options."""

    async def video(interaction: discord.Interaction, **options: Any) -> None:
        await run(interaction, **options)

    # discord.py reads the options from the callback's signature: this one offers exactly the
    # options the catalog calls for (`run` takes them all, each defaulting to None).
    params = video_parameters(catalog)
    video.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    names = {p.name for p in params}
    callback: VideoCallback = video
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
            **{option: autocompleter(catalog, option) for option in autocomplete}
        )(callback)
    return app_commands.Command(
        name="video",
        description="Generate a video from a prompt",
        callback=callback,
    )


class VideoCommand(commands.Cog):
    """`/video`. Its options follow the catalog in use, so the command is built when the cog is
    made, from the catalog alone (its shape can be checked without a running bot), and added
    to the tree in `cog_load`, which also takes the services its requests go through."""

    flow: RequestFlow

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.catalog = bot.catalog
        self.command = build_video_command(self.catalog, self.video)

    async def cog_load(self) -> None:
        bot = self.bot
        self.flow = RequestFlow(bot.services, bot.cdn, bot.decoder, bot.sink)
        bot.tree.add_command(self.command)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.command.name)

    async def video(
        self,
        interaction: discord.Interaction,
        *,
        prompt: str,
        reference: discord.Attachment | None = None,
        fit: str | None = None,
        **options: Unpack[VideoOptions],
    ) -> None:
        # Checks that need no I/O answer at once and privately; everything slower comes after
        # the defer, which must reach Discord within 3 seconds.
        checked = checked_request(self.catalog, prompt, **options)
        if not isinstance(checked, Checked):
            await tell(interaction, checked)
            return
        request = checked.request
        flow = self.flow
        async with flow.acknowledged(interaction):
            fitted: ReferenceImage | None = None
            if reference is not None:
                if not await flow.passes_precheck(interaction, request):
                    return
                fitted = await flow.fetch_reference(
                    interaction,
                    reference.url,
                    checked.size,
                    mode="pad" if fit == "pad" else "crop",
                    declared_size=reference.size,
                )
                if fitted is None:
                    return
            await flow.submit_and_present(interaction, request, fitted)


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(VideoCommand(bot))
