"""Apps -> "Animate image": the `/video` flow with a message's image as the reference.

The image is an attachment of the message, or an embed's image when that image is itself a Discord
attachment. It is fetched through discord.py from Discord's CDN only: an embed pointing anywhere
else is refused, so the bot never fetches an address a member chose.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import discord
from discord import app_commands

from bot.api.models import CreateVideo, ReferenceImage
from bot.catalog import Catalog, NotOffered, size_label
from bot.prompt import clean_prompt, prompt_problem
from bot.reference import ReferenceRejected, check_declared_size, fit_reference_async
from cogs.actions import PROMPT_LIMIT, bot_of, report_failure
from cogs.video import (
    CHOICE_LIMIT,
    REFERENCE_LIMIT_BYTES,
    TOKEN_LIFETIME,
    acknowledged,
    refuse,
    submit_and_present,
)

if TYPE_CHECKING:
    from bot.app import VideoBot

log = logging.getLogger(__name__)

COMMAND_NAME = "Animate image"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})
# Where Discord serves attachments; `discord.Asset.BASE` is added at run time (it is where this
# discord.py fetches its CDN assets from).
CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
ATTACHMENT_PATHS = ("/attachments/", "/ephemeral-attachments/")

NO_IMAGE = (
    "That message has no image to animate. Use **Animate image** on a message with an image "
    "attachment (png, jpeg, webp or gif)."
)
FOREIGN_IMAGE = (
    "That image is not stored on Discord, and the bot only fetches images from Discord. "
    "Upload the picture itself, then use **Animate image** on that message."
)


@dataclass(frozen=True)
class ImageSource:
    """The image a message offers: an attachment, or the Discord attachment URL of an embed."""

    filename: str
    attachment: discord.Attachment | None = None
    url: str | None = None

    async def read(self, client: discord.Client) -> bytes:
        if self.attachment is not None:
            return await self.attachment.read()
        assert self.url is not None and is_discord_attachment_url(self.url)
        # discord.py's own HTTP session: no second client, and the address is Discord's CDN.
        return await client.http.get_from_cdn(self.url)


def _is_image_attachment(attachment: discord.Attachment) -> bool:
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type:
        return content_type in IMAGE_TYPES
    return PurePosixPath(attachment.filename.lower()).suffix in IMAGE_SUFFIXES


def is_discord_attachment_url(url: str) -> bool:
    """Whether `url` is an attachment on Discord's CDN (or the CDN discord.py is pointed at)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.username or parts.password or not parts.path.startswith(ATTACHMENT_PATHS):
        return False
    if parts.scheme == "https" and port is None and parts.hostname in CDN_HOSTS:
        return True
    base = urlsplit(discord.Asset.BASE)
    return (parts.scheme, parts.hostname, port) == (base.scheme, base.hostname, base.port)


def find_image(message: discord.Message) -> ImageSource | str:
    """The image to animate, or why there is none (for the member)."""
    for attachment in message.attachments:
        if _is_image_attachment(attachment):
            return ImageSource(filename=attachment.filename, attachment=attachment)
    foreign = False
    for embed in message.embeds:
        for url in (embed.image.url, embed.thumbnail.url):
            if not url:
                continue
            if is_discord_attachment_url(url):
                name = PurePosixPath(urlsplit(url).path).name or "image"
                return ImageSource(filename=name, url=url)
            foreign = True
    return FOREIGN_IMAGE if foreign else NO_IMAGE


def _pick(select: discord.ui.Select[Any]) -> str | None:
    return select.values[0] if select.values else None


# A shape in the size menu: "16:9@720p" (aspect ratio @ resolution).
SHAPE_MARK = "@"


def size_options(catalog: Catalog) -> list[discord.SelectOption]:
    """The size menu: every size, or, when there are more than a menu holds, every aspect ratio
    at every resolution some model makes (each model maps them onto its own sizes)."""
    sizes = catalog.all_sizes()
    if len(sizes) <= CHOICE_LIMIT:
        return [discord.SelectOption(label=size_label(s), value=s) for s in sizes]
    offered = {
        shape
        for spec in catalog.models
        for size in spec.sizes
        if (shape := spec.shape_of(size)) is not None
    }
    return [
        discord.SelectOption(label=f"{aspect} at {res}", value=f"{aspect}{SHAPE_MARK}{res}")
        for res in catalog.all_resolutions()
        for aspect in catalog.all_aspect_ratios()
        if (aspect, res) in offered
    ][:CHOICE_LIMIT]


class AnimateModal(discord.ui.Modal):
    """The prompt, and optionally model, seconds, size and fit; anything left empty takes the
    model's default, as `/video` does."""

    def __init__(self, bot: VideoBot, image: ImageSource) -> None:
        super().__init__(title="Animate image", timeout=TOKEN_LIFETIME)
        self.bot = bot
        self.image = image
        catalog = bot.catalog
        self.prompt: discord.ui.TextInput[AnimateModal] = discord.ui.TextInput(
            label="Prompt",
            style=discord.TextStyle.paragraph,
            placeholder="What should happen in the picture?",
            max_length=PROMPT_LIMIT,
        )
        self.add_item(self.prompt)
        self.model: discord.ui.Select[AnimateModal] = discord.ui.Select(
            placeholder=f"{catalog.default.label} unless you choose",
            options=[discord.SelectOption(label=m.label, value=m.id) for m in catalog.models][
                :CHOICE_LIMIT
            ],
            required=False,
        )
        self.seconds: discord.ui.Select[AnimateModal] = discord.ui.Select(
            placeholder="The model's default length unless you choose",
            options=[
                discord.SelectOption(label=f"{s} seconds", value=s) for s in catalog.all_seconds()
            ][:CHOICE_LIMIT],
            required=False,
        )
        self.size: discord.ui.Select[AnimateModal] = discord.ui.Select(
            placeholder="The model's default size unless you choose",
            options=size_options(catalog),
            required=False,
        )
        self.fit: discord.ui.Select[AnimateModal] = discord.ui.Select(
            placeholder="Crop to fill unless you choose",
            options=[
                discord.SelectOption(label="Crop to fill", value="crop"),
                discord.SelectOption(label="Pad with blurred edges", value="pad"),
            ],
            required=False,
        )
        self.add_item(discord.ui.Label(text="Model", component=self.model))
        self.add_item(discord.ui.Label(text="Length", component=self.seconds))
        self.add_item(discord.ui.Label(text="Size", component=self.size))
        self.add_item(discord.ui.Label(text="Fitting the image", component=self.fit))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot = self.bot
        catalog = bot.catalog
        text = clean_prompt(self.prompt.value)
        problem = prompt_problem(text)
        if problem:
            await refuse(interaction, problem)
            return
        # The size menu holds sizes, or aspect ratio @ resolution when sizes are too many.
        size = _pick(self.size)
        aspect: str | None = None
        resolution: str | None = None
        if size is not None and SHAPE_MARK in size:
            aspect, _, resolution = size.partition(SHAPE_MARK)
            size = None
        try:
            picked = catalog.resolve(
                _pick(self.model),
                _pick(self.seconds),
                size,
                aspect_ratio=aspect,
                resolution=resolution,
            )
        except NotOffered as exc:
            await refuse(interaction, str(exc))
            return
        dims = picked.size
        async with acknowledged(bot, interaction):
            try:
                data = await self.image.read(interaction.client)
                fitted: ReferenceImage = await fit_reference_async(
                    data,
                    dims,
                    mode="pad" if _pick(self.fit) == "pad" else "crop",
                    max_bytes=REFERENCE_LIMIT_BYTES,
                )
            except ReferenceRejected as exc:
                await refuse(interaction, f"That image can't be used: {exc.reason}")
                return
            except discord.HTTPException as exc:
                log.info("could not fetch %s for Animate image: %s", self.image.filename, exc)
                await refuse(
                    interaction,
                    "The image could not be fetched from Discord; "
                    "the message may have been deleted.",
                )
                return
            request = CreateVideo(
                prompt=text, model=picked.model, seconds=picked.seconds, size=dims
            )
            await submit_and_present(bot, interaction, request, fitted)

    async def on_error(  # type: ignore[override]  # discord.py's Modal takes no item
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        await report_failure(interaction, error, COMMAND_NAME)


async def animate_image(interaction: discord.Interaction, message: discord.Message) -> None:
    found = find_image(message)
    if isinstance(found, str):
        await refuse(interaction, found)
        return
    if found.attachment is not None:
        try:
            check_declared_size(found.attachment.size, REFERENCE_LIMIT_BYTES)
        except ReferenceRejected as exc:
            await refuse(interaction, f"That image can't be used: {exc.reason}")
            return
    # The modal must be the first answer (within 3 seconds): the download waits for its submit.
    await interaction.response.send_modal(AnimateModal(bot_of(interaction), found))


def build_animate_command() -> app_commands.ContextMenu:
    return app_commands.ContextMenu(name=COMMAND_NAME, callback=animate_image)


async def setup(bot: VideoBot) -> None:
    bot.tree.add_command(build_animate_command())


async def teardown(bot: VideoBot) -> None:
    bot.tree.remove_command(COMMAND_NAME, type=discord.AppCommandType.message)
