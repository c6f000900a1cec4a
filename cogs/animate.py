"""Apps -> "Animate image": the `/video` flow with a message's image as the reference.

The image is an attachment of the message, or an embed's image when that image is itself a Discord
attachment. It is fetched through discord.py from Discord's CDN only: an embed pointing anywhere
else is refused, so the bot never fetches an address a member chose.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import discord
from discord import app_commands
from discord.ext import commands

from bot.api.models import SEED_LIMIT
from bot.catalog import Catalog
from bot.notice import Code, Notice, notice
from bot.reference import ReferenceRejected, check_declared_size
from discordbot.client import VideoBot
from discordbot.i18n import Locale, plain_text, t, text
from discordbot.menus import CHOICE_LIMIT, seconds_label, size_label
from discordbot.notices import report, tell
from discordbot.requests import (
    PROMPT_LIMIT,
    REFERENCE_LIMIT_BYTES,
    TOKEN_LIFETIME,
    Checked,
    RequestFlow,
    checked_request,
    image_refusal,
)

log = logging.getLogger(__name__)

COMMAND_NAME = "Animate image"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})
# Where Discord serves attachments; `discord.Asset.BASE` is added at run time (it is where this
# discord.py fetches its CDN assets from).
CDN_HOSTS = frozenset({"cdn.discordapp.com", "media.discordapp.net"})
ATTACHMENT_PATHS = ("/attachments/", "/ephemeral-attachments/")

NO_IMAGE = notice(
    "That message has no image to animate. Use **Animate image** on a message with an image "
    "attachment (png, jpeg, webp or gif)."
)
FOREIGN_IMAGE = notice(
    "That image is not stored on Discord, and the bot only fetches images from Discord. "
    "Upload the picture itself, then use **Animate image** on that message."
)


@dataclass(frozen=True)
class ImageSource:
    """The image a message offers: an attachment's URL, or the Discord attachment URL of an
    embed (checked to be one by `find_image`), and its size where Discord declared one."""

    filename: str
    url: str
    declared_size: int | None = None


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


def find_image(message: discord.Message) -> ImageSource | Notice:
    """The image to animate, or why there is none (for the member)."""
    for attachment in message.attachments:
        if _is_image_attachment(attachment):
            return ImageSource(
                filename=attachment.filename, url=attachment.url, declared_size=attachment.size
            )
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


def size_options(catalog: Catalog, locale: Locale = None) -> list[discord.SelectOption]:
    """The size menu: every size, or, when there are more than a menu holds, every aspect ratio
    at every resolution some model makes (each model maps them onto its own sizes)."""
    sizes = catalog.all_sizes()
    if len(sizes) <= CHOICE_LIMIT:
        return [
            discord.SelectOption(label=plain_text(locale, size_label(s)), value=s) for s in sizes
        ]
    offered = {
        shape
        for spec in catalog.models
        for size in spec.sizes
        if (shape := spec.shape_of(size)) is not None
    }
    return [
        discord.SelectOption(
            label=t(locale, "{aspect} at {resolution}", aspect=aspect, resolution=res),
            value=f"{aspect}{SHAPE_MARK}{res}",
        )
        for res in catalog.all_resolutions()
        for aspect in catalog.all_aspect_ratios()
        if (aspect, res) in offered
    ][:CHOICE_LIMIT]


# The options field of the form (a modal holds five fields, all taken by the prompt, the three
# menus and the fit, so where some model takes options they share one field with the fit). Its
# keywords (seed, sound on, avoid:, pad) are read in English whatever the member's language.
OPTIONS_LABEL = notice("Options")
OPTIONS_HELP = notice(
    "One per line: seed 1234 · sound on / sound off · avoid: what not to show · pad"
)
OPTIONS_LIMIT = 2100
_AVOID_WORDS = ("avoid", "negative", "negative prompt", "not")
_SOUND_WORDS = {
    "sound on": True,
    "audio on": True,
    "with sound": True,
    "sound off": False,
    "audio off": False,
    "no sound": False,
    "without sound": False,
    "silent": False,
}


_OPTION_NAMES = {
    "negative_prompt": notice("negative prompt"),
    "fit": notice("fit"),
    "sound": notice("sound"),
    "seed": notice("seed"),
}


@dataclass(frozen=True)
class FormOptions:
    """What a member wrote in the form's options field."""

    fit: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    sound: bool | None = None


def parse_options(text: str) -> FormOptions | Notice:
    """The options field, one option per line (or separated by `;`), or why it cannot be read
    (for the member)."""
    found: dict[str, Any] = {}
    for raw in text.replace(";", "\n").splitlines():
        part = raw.strip()
        if not part:
            continue
        word = " ".join(part.lower().split())
        key, sep, rest = part.partition(":")
        value: str | bool | int | None
        if sep and " ".join(key.lower().split()) in _AVOID_WORDS:
            name, value = "negative_prompt", rest.strip() or None
        elif word in ("pad", "crop"):
            name, value = "fit", word
        elif word in _SOUND_WORDS:
            name, value = "sound", _SOUND_WORDS[word]
        elif word.startswith("seed"):
            digits = word.removeprefix("seed").lstrip(" :=")
            if not digits.isdigit() or int(digits) >= SEED_LIMIT:
                return notice("A seed is a whole number from 0 to {most}.", most=SEED_LIMIT - 1)
            name, value = "seed", int(digits)
        else:
            shown = part if len(part) <= 40 else part[:40] + "…"
            return notice(
                "Could not read {typed} in {field}. {help}.",
                typed=Code(shown),
                field=OPTIONS_LABEL,
                help=OPTIONS_HELP,
            )
        if name in found:
            return notice(
                "{field} gives {option} twice.", field=OPTIONS_LABEL, option=_OPTION_NAMES[name]
            )
        found[name] = value
    return FormOptions(**found)


class AnimateModal(discord.ui.Modal):
    """The prompt, and optionally model, seconds, size and fit (and, where some model takes
    them, a negative prompt, a seed and sound on or off); anything left empty takes the model's
    default, as `/video` does."""

    def __init__(
        self, catalog: Catalog, flow: RequestFlow, image: ImageSource, locale: Locale = None
    ) -> None:
        super().__init__(title=t(locale, "Animate image"), timeout=TOKEN_LIFETIME)
        self.catalog = catalog
        self.flow = flow
        self.image = image
        self.prompt: discord.ui.TextInput[AnimateModal] = discord.ui.TextInput(
            label=t(locale, "Prompt"),
            style=discord.TextStyle.paragraph,
            placeholder=t(locale, "What should happen in the picture?"),
            max_length=PROMPT_LIMIT,
        )
        self.add_item(self.prompt)
        self.model: discord.ui.Select[AnimateModal] = discord.ui.Select(
            placeholder=t(locale, "{model} unless you choose", model=catalog.default.label),
            options=[discord.SelectOption(label=m.label, value=m.id) for m in catalog.models][
                :CHOICE_LIMIT
            ],
            required=False,
        )
        self.seconds: discord.ui.Select[AnimateModal] = discord.ui.Select(
            placeholder=t(locale, "The model's default length unless you choose"),
            options=[
                discord.SelectOption(label=plain_text(locale, seconds_label(s)), value=s)
                for s in catalog.all_seconds()
            ][:CHOICE_LIMIT],
            required=False,
        )
        self.size: discord.ui.Select[AnimateModal] = discord.ui.Select(
            placeholder=t(locale, "The model's default size unless you choose"),
            options=size_options(catalog, locale),
            required=False,
        )
        self.fit: discord.ui.Select[AnimateModal] = discord.ui.Select(
            placeholder=t(locale, "Crop to fill unless you choose"),
            options=[
                discord.SelectOption(label=t(locale, "Crop to fill"), value="crop"),
                discord.SelectOption(label=t(locale, "Pad with blurred edges"), value="pad"),
            ],
            required=False,
        )
        self.options: discord.ui.TextInput[AnimateModal] | None = None
        self.add_item(discord.ui.Label(text=t(locale, "Model"), component=self.model))
        self.add_item(discord.ui.Label(text=t(locale, "Length"), component=self.seconds))
        self.add_item(discord.ui.Label(text=t(locale, "Size"), component=self.size))
        if any(
            m.options.negative_prompt or m.options.seed or m.options.audio for m in catalog.models
        ):
            self.options = discord.ui.TextInput(
                style=discord.TextStyle.paragraph,
                placeholder="seed 1234\nsound off\navoid: blurry, text",
                max_length=OPTIONS_LIMIT,
                required=False,
            )
            self.add_item(
                discord.ui.Label(
                    text=text(locale, OPTIONS_LABEL),
                    description=text(locale, OPTIONS_HELP),
                    component=self.options,
                )
            )
        else:
            self.add_item(discord.ui.Label(text=t(locale, "Fitting the image"), component=self.fit))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        extras = parse_options(self.options.value) if self.options is not None else FormOptions()
        if isinstance(extras, Notice):
            await tell(interaction, extras)
            return
        # The size menu holds sizes, or aspect ratio @ resolution when sizes are too many.
        size = _pick(self.size)
        aspect: str | None = None
        resolution: str | None = None
        if size is not None and SHAPE_MARK in size:
            aspect, _, resolution = size.partition(SHAPE_MARK)
            size = None
        checked = checked_request(
            self.catalog,
            self.prompt.value,
            model=_pick(self.model),
            seconds=_pick(self.seconds),
            size=size,
            aspect_ratio=aspect,
            resolution=resolution,
            negative_prompt=extras.negative_prompt,
            seed=extras.seed,
            sound=extras.sound,
        )
        if not isinstance(checked, Checked):
            await tell(interaction, checked)
            return
        request = checked.request
        fit = extras.fit or _pick(self.fit)
        flow = self.flow
        async with flow.acknowledged(interaction):
            if not await flow.passes_precheck(interaction, request):
                return
            fitted = await flow.fetch_reference(
                interaction,
                self.image.url,
                checked.size,
                mode="pad" if fit == "pad" else "crop",
                declared_size=self.image.declared_size,
            )
            if fitted is None:
                return
            await flow.submit_and_present(interaction, request, fitted)

    async def on_error(  # type: ignore[override]  # discord.py's Modal takes no item
        self, interaction: discord.Interaction, error: Exception, /
    ) -> None:
        await report(interaction, error, COMMAND_NAME)


class AnimateImage(commands.Cog):
    """Apps -> "Animate image" on a message. A context menu cannot be a cog's decorated method
    in discord.py, so the cog adds it to the tree in `cog_load` and removes it in
    `cog_unload`."""

    def __init__(self, bot: VideoBot) -> None:
        self.bot = bot
        self.catalog = bot.services.catalog
        self.flow = RequestFlow(bot.services, bot.cdn, bot.decoder, bot.sink)
        self.menu = app_commands.ContextMenu(name=COMMAND_NAME, callback=self.animate_image)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def animate_image(
        self, interaction: discord.Interaction, message: discord.Message
    ) -> None:
        found = find_image(message)
        if isinstance(found, Notice):
            await tell(interaction, found)
            return
        if found.declared_size is not None:
            try:
                check_declared_size(found.declared_size, REFERENCE_LIMIT_BYTES)
            except ReferenceRejected as exc:
                await tell(interaction, image_refusal(exc.notice))
                return
        # The modal must be the first answer (within 3 seconds): the download waits for its
        # submit.
        await interaction.response.send_modal(
            AnimateModal(self.catalog, self.flow, found, interaction.locale)
        )


async def setup(bot: VideoBot) -> None:
    await bot.add_cog(AnimateImage(bot))
