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

from bot.catalog import SEED_LIMIT, Catalog, NotOffered, size_label
from bot.options import option_refusal
from bot.prompt import clean_prompt, prompt_problem
from bot.reference import ReferenceRejected, check_declared_size
from cogs.actions import PROMPT_LIMIT, bot_of, report_failure
from cogs.video import (
    CHOICE_LIMIT,
    REFERENCE_LIMIT_BYTES,
    TOKEN_LIFETIME,
    acknowledged,
    fetch_reference,
    passes_precheck,
    refuse,
    submit_and_present,
)

if TYPE_CHECKING:
    from discordbot.client import VideoBot

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


def find_image(message: discord.Message) -> ImageSource | str:
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


# The options field of the form (a modal holds five fields, all taken by the prompt, the three
# menus and the fit, so where some model takes options they share one field with the fit).
OPTIONS_LABEL = "Options"
OPTIONS_HELP = "One per line: seed 1234 · sound on / sound off · avoid: what not to show · pad"
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


@dataclass(frozen=True)
class FormOptions:
    """What a member wrote in the form's options field."""

    fit: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    sound: bool | None = None


def parse_options(text: str) -> FormOptions | str:
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
                return f"A seed is a whole number from 0 to {SEED_LIMIT - 1}."
            name, value = "seed", int(digits)
        else:
            shown = (part if len(part) <= 40 else part[:40] + "…").replace("`", "'")
            return f"Could not read `{shown}` in {OPTIONS_LABEL}. {OPTIONS_HELP}."
        if name in found:
            return f"{OPTIONS_LABEL} gives {name.replace('_', ' ')} twice."
        found[name] = value
    return FormOptions(**found)


class AnimateModal(discord.ui.Modal):
    """The prompt, and optionally model, seconds, size and fit (and, where some model takes
    them, a negative prompt, a seed and sound on or off); anything left empty takes the model's
    default, as `/video` does."""

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
        self.options: discord.ui.TextInput[AnimateModal] | None = None
        self.add_item(discord.ui.Label(text="Model", component=self.model))
        self.add_item(discord.ui.Label(text="Length", component=self.seconds))
        self.add_item(discord.ui.Label(text="Size", component=self.size))
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
                    text=OPTIONS_LABEL, description=OPTIONS_HELP, component=self.options
                )
            )
        else:
            self.add_item(discord.ui.Label(text="Fitting the image", component=self.fit))

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot = self.bot
        catalog = bot.catalog
        text = clean_prompt(self.prompt.value)
        problem = prompt_problem(text)
        if problem:
            await refuse(interaction, problem)
            return
        extras = parse_options(self.options.value) if self.options is not None else FormOptions()
        if isinstance(extras, str):
            await refuse(interaction, extras)
            return
        fit = extras.fit or _pick(self.fit)
        avoid = clean_prompt(extras.negative_prompt) if extras.negative_prompt else None
        model = _pick(self.model)
        spec = catalog.get(model) if model else catalog.default
        problem = (
            option_refusal(spec, negative_prompt=avoid, seed=extras.seed, audio=extras.sound)
            if spec is not None
            else None
        )
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
                model,
                _pick(self.seconds),
                size,
                aspect_ratio=aspect,
                resolution=resolution,
                negative_prompt=avoid,
                seed=extras.seed,
                audio=extras.sound,
            )
        except NotOffered as exc:
            await refuse(interaction, str(exc))
            return
        dims = picked.size
        async with acknowledged(bot, interaction):
            request = picked.request(text, sound_asked=extras.sound is not None)
            if not await passes_precheck(bot, interaction, request):
                return
            fitted = await fetch_reference(
                bot,
                interaction,
                self.image.url,
                dims,
                mode="pad" if fit == "pad" else "crop",
                declared_size=self.image.declared_size,
            )
            if fitted is None:
                return
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
    if found.declared_size is not None:
        try:
            check_declared_size(found.declared_size, REFERENCE_LIMIT_BYTES)
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
