"""The catalog's values as `/video` offers them: fixed choices where they fit in Discord's 25,
else autocomplete suggestions narrowed by what the member has picked and typed."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import discord
from discord import app_commands

from bot.api.models import parse_size
from bot.catalog import Catalog
from bot.model_spec import ModelSpec
from bot.notice import Notice, notice
from bot.shapes import parse_aspect
from discordbot.i18n import Locale, plain_text
from discordbot.translator import choice_text

# Discord shows at most 25 choices for an option; past that the option autocompletes instead.
CHOICE_LIMIT = 25
# The options whose values come from the catalog, in the order `/video` shows them.
CATALOG_OPTIONS = ("model", "seconds", "size", "aspect_ratio", "resolution")


Label = Notice | str


def shape_label(shown: str, width: int, height: int) -> Notice:
    """'1280x720' -> '1280x720 (landscape)' (or portrait, or square), in the reader's words."""
    if width > height:
        return notice("{shape} (landscape)", shape=shown)
    if height > width:
        return notice("{shape} (portrait)", shape=shown)
    return notice("{shape} (square)", shape=shown)


def aspect_label(aspect: str) -> Notice:
    """'16:9' -> '16:9 (landscape)'."""
    a, b = parse_aspect(aspect)
    return shape_label(aspect, a, b)


def size_label(size: str) -> Notice:
    w, h = parse_size(size)
    return shape_label(size, w, h)


def seconds_label(seconds: str) -> Notice:
    return notice("{seconds} seconds", seconds=seconds)


def menu(catalog: Catalog, option: str, spec: ModelSpec | None = None) -> list[tuple[Label, str]]:
    """(name, value) of every value `option` offers: the catalog's, or only `spec`'s. Names made
    of words are notices, shown in each member's language."""
    if option == "model":
        return [(m.label, m.id) for m in catalog.models]
    if option == "seconds":
        values = list(spec.seconds) if spec else catalog.all_seconds()
        return [(seconds_label(s), s) for s in values]
    if option == "size":
        return [(size_label(s), s) for s in (spec.sizes if spec else catalog.all_sizes())]
    if option == "aspect_ratio":
        aspects = (spec.aspect_ratios or spec.offered_aspects()) if spec else None
        return [(aspect_label(a), a) for a in aspects or catalog.all_aspect_ratios()]
    if option == "resolution":
        resolutions = (spec.resolutions or spec.offered_resolutions()) if spec else None
        return [(r, r) for r in resolutions or catalog.all_resolutions()]
    raise ValueError(f"no catalog option {option!r}")


def choice(name: Label, value: str) -> app_commands.Choice[str]:
    return app_commands.Choice(name=choice_text(name), value=value)


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
            choices[option] = [choice(n, v) for n, v in values]
    return choices, autocomplete


def suggestions(
    catalog: Catalog,
    option: str,
    current: str,
    *,
    model: str | None = None,
    aspect_ratio: str | None = None,
    resolution: str | None = None,
    locale: Locale = None,
) -> list[tuple[str, str]]:
    """What an autocompleting option suggests, named in `locale`: the values of the model
    already picked (every model's when none is), sizes narrowed by an aspect ratio or
    resolution already picked, then those matching what the member has typed; at most 25."""
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
    named = [(n if isinstance(n, str) else plain_text(locale, n), v) for n, v in values]
    typed = current.strip().lower()
    if typed:
        named = [(n, v) for n, v in named if typed in n.lower() or typed in v.lower()]
    return named[:CHOICE_LIMIT]


def autocompleter(
    catalog: Catalog, option: str
) -> Callable[[discord.Interaction, str], Coroutine[Any, Any, list[app_commands.Choice[str]]]]:
    """The autocomplete callback of `option`: `suggestions` for what the member picked so far."""

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
            locale=interaction.locale,
        )
        return [app_commands.Choice(name=n, value=v) for n, v in found]

    return complete


def _text(value: object) -> str | None:
    # A namespace value is whatever the member's client sent: use it only when it is text.
    return value if isinstance(value, str) and value else None
