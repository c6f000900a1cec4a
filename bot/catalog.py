"""The model catalog: which models, sizes and durations a server owner offers, and what they cost.

The catalog is configuration (JSON), not code, because every backend that speaks the Videos API
serves different models at different prices. It comes from one of three places: a file the owner
wrote (`VIDEO_CATALOG_FILE`), bundled presets picked by name (`VIDEO_CATALOG=veo-3.1,wan-2.5`,
files in `bot/presets/`), or the bundled default (`bot/default_catalog.json`).

A model is offered either by sizes (`"sizes": ["1280x720"]`, as the OpenAI shape has it) or by
aspect ratios and resolutions (`"aspect_ratios": ["16:9"], "resolutions": ["720p"]`, as Veo, Wan,
Kling and Seedance are), or both. Each aspect ratio at each resolution stands for one frame size
(see `standard_size`, or the model's own `frame_sizes`), so everything downstream (the ledger, the
reference fitting, the jobs table) keeps speaking WxH, and a model's `sizes` lists every frame size
it makes. Prices are per second, per size or per resolution.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from math import gcd
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.api.models import CreateVideo, parse_size

# Amounts are integer micro-dollars in the ledger so sums are exact; the catalog file uses Decimal.
MICROS_PER_DOLLAR = 1_000_000
# Discord limits a choice's name and value to 100 characters.
NAME_LIMIT = 100
NEGATIVE_PROMPT_LIMIT = 2000
# Seeds a member may give (and the range a random one is drawn from): unsigned 32-bit, which
# every server that takes a seed accepts.
SEED_LIMIT = 2**32
PRESET_DIR = "presets"

_ASPECT = re.compile(r"^([1-9][0-9]{0,2}):([1-9][0-9]{0,2})$")
_RESOLUTION = re.compile(r"^([1-9][0-9]{1,3})p$")


class CatalogError(ValueError):
    """The catalog file is missing, unreadable or inconsistent, or a preset name is unknown."""


class NotOffered(ValueError):
    """A request the catalog does not offer; the message is for the member."""


def parse_aspect(aspect: str) -> tuple[int, int]:
    """'16:9' -> (16, 9); ValueError for anything else."""
    match = _ASPECT.match(aspect)
    if match is None:
        raise ValueError(f"aspect ratio must look like 16:9, got {aspect!r}")
    return int(match[1]), int(match[2])


def parse_resolution(resolution: str) -> int:
    """'720p' -> 720 (the short side); ValueError for anything else."""
    match = _RESOLUTION.match(resolution)
    if match is None:
        raise ValueError(f"resolution must look like 720p, got {resolution!r}")
    return int(match[1])


def standard_size(aspect: str, resolution: str) -> str:
    """The frame size of an aspect ratio at a resolution: the resolution is the short side, the
    long side follows the ratio, rounded to an even number (16:9 at 720p -> 1280x720, 9:16 at
    1080p -> 1080x1920, 1:1 at 720p -> 720x720). Models that make other frames say so in their
    `frame_sizes`."""
    a, b = parse_aspect(aspect)
    short = parse_resolution(resolution)
    long = 2 * round(short * max(a, b) / min(a, b) / 2)
    return f"{long}x{short}" if a >= b else f"{short}x{long}"


def size_label(size: str) -> str:
    """'1280x720' -> '1280x720 (landscape)' for choice menus."""
    w, h = parse_size(size)
    shape = "landscape" if w > h else "portrait" if h > w else "square"
    return f"{size} ({shape})"


def format_dollars(micros: int) -> str:
    return f"${Decimal(micros) / MICROS_PER_DOLLAR:.2f}"


def _strings(value: object) -> object:
    # Accept 4 or "4" in the file; the wire format is always a string.
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return value


class ModelOptions(BaseModel):
    """The optional parameters a model takes. Only what is marked here is ever offered to a
    member or sent to the server for this model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    negative_prompt: bool = False
    seed: bool = False
    # Send a random seed when the member gives none: the server would otherwise fix one
    # (SGLang uses 1024), making every rerun of a prompt the same video.
    random_seed: bool = False
    # Whether sound can be turned on or off for this model.
    audio: bool = False
    # Whether the model makes sound when nothing is asked (or always, when `audio` is false).
    audio_default: bool = False

    @model_validator(mode="after")
    def _random_seed_needs_seed(self) -> ModelOptions:
        if self.random_seed and not self.seed:
            raise ValueError("random_seed needs seed: a model that takes no seed cannot get one")
        return self


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=NAME_LIMIT)
    label: str = Field(min_length=1, max_length=NAME_LIMIT)
    # Every frame size the model makes, those its aspect ratios and resolutions stand for too.
    sizes: tuple[str, ...] = Field(min_length=1)
    seconds: tuple[str, ...] = Field(min_length=1)
    # Per second, keyed by size ("1280x720") or by resolution ("720p": every size whose
    # resolution that is).
    price_per_second: dict[str, Decimal]
    aspect_ratios: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    # "16:9@480p": "832x480" where the model's frame differs from `standard_size`.
    frame_sizes: dict[str, str] = Field(default_factory=dict)
    # Durations allowed only at some resolutions ("1080p": ["8"]); others allow all `seconds`.
    seconds_by_resolution: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    default_seconds: str | None = None
    default_size: str | None = None
    options: ModelOptions = ModelOptions()
    note: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _expand_shapes(cls, data: Any) -> Any:
        """Add the frame size of each aspect ratio at each resolution to `sizes`, so the rest of
        the catalog (and the bot) deals in sizes only."""
        if not isinstance(data, dict):
            return data
        aspects = _strings(data.get("aspect_ratios") or ())
        resolutions = _strings(data.get("resolutions") or ())
        if not aspects and not resolutions:
            return data
        if not aspects or not resolutions:
            raise ValueError("aspect_ratios and resolutions go together: give both or neither")
        assert isinstance(aspects, tuple) and isinstance(resolutions, tuple)
        frames = data.get("frame_sizes") or {}
        if not isinstance(frames, dict):
            return data  # the field's own validation says what is wrong
        given = _strings(data.get("sizes") or ())
        if not isinstance(given, tuple):
            return data  # the field's own validation says what is wrong
        sizes = list(given)
        for resolution in resolutions:
            for aspect in aspects:
                size = frames.get(f"{aspect}@{resolution}") or standard_size(aspect, resolution)
                if size not in sizes:
                    sizes.append(size)
        return {**data, "sizes": tuple(sizes)}

    @field_validator("sizes")
    @classmethod
    def _sizes_are_wxh(cls, sizes: tuple[str, ...]) -> tuple[str, ...]:
        for size in sizes:
            parse_size(size)
        if len(set(sizes)) != len(sizes):
            raise ValueError("sizes must not repeat")
        return sizes

    @field_validator("seconds", "aspect_ratios", "resolutions", mode="before")
    @classmethod
    def _as_strings(cls, value: object) -> object:
        return _strings(value)

    @field_validator("seconds_by_resolution", mode="before")
    @classmethod
    def _seconds_lists_as_strings(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: _strings(v) for k, v in value.items()}
        return value

    @field_validator("default_seconds", mode="before")
    @classmethod
    def _default_seconds_as_string(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("seconds")
    @classmethod
    def _seconds_are_positive_ints(cls, seconds: tuple[str, ...]) -> tuple[str, ...]:
        for s in seconds:
            if not s.isdigit() or int(s) <= 0:
                raise ValueError(f"seconds must be positive whole numbers, got {s!r}")
        return seconds

    @field_validator("aspect_ratios")
    @classmethod
    def _aspects_parse(cls, aspects: tuple[str, ...]) -> tuple[str, ...]:
        for aspect in aspects:
            parse_aspect(aspect)
        return aspects

    @field_validator("resolutions")
    @classmethod
    def _resolutions_parse(cls, resolutions: tuple[str, ...]) -> tuple[str, ...]:
        for resolution in resolutions:
            parse_resolution(resolution)
        return resolutions

    @field_validator("price_per_second")
    @classmethod
    def _prices_not_negative(cls, prices: dict[str, Decimal]) -> dict[str, Decimal]:
        for key, price in prices.items():
            if price < 0:
                raise ValueError(f"price for {key} must not be negative")
        return prices

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        for key in self.frame_sizes:
            aspect, sep, resolution = key.partition("@")
            if not sep or aspect not in self.aspect_ratios or resolution not in self.resolutions:
                raise ValueError(
                    f"model {self.id}: frame_sizes key {key!r} is not one of its "
                    "aspect ratios @ resolutions"
                )
        prices = {size: self.price_of(size) for size in self.sizes}
        missing = [size for size, price in prices.items() if price is None]
        if missing:
            raise ValueError(f"model {self.id}: no price for size(s) {', '.join(missing)}")
        # Every size gets its own entry too, so a lookup by size alone (as the ledger's callers
        # do) finds the price of a size priced by its resolution.
        for size, price in prices.items():
            if price is not None:
                self.price_per_second.setdefault(size, price)
        known = set(self.sizes) | {self.resolution_of(s) for s in self.sizes}
        unused = [k for k in self.price_per_second if k not in known]
        if unused:
            raise ValueError(
                f"model {self.id}: price for {', '.join(unused)}, which it does not make"
            )
        for resolution, allowed in self.seconds_by_resolution.items():
            if resolution not in {self.resolution_of(s) for s in self.sizes}:
                raise ValueError(f"model {self.id}: seconds_by_resolution names {resolution}")
            if not allowed or not set(allowed) <= set(self.seconds):
                raise ValueError(
                    f"model {self.id}: seconds_by_resolution {resolution} must be some of "
                    f"its seconds ({', '.join(self.seconds)})"
                )
        if self.default_seconds is not None and self.default_seconds not in self.seconds:
            raise ValueError(f"model {self.id}: default_seconds is not one of its seconds")
        if self.default_size is not None and self.default_size not in self.sizes:
            raise ValueError(f"model {self.id}: default_size is not one of its sizes")
        return self

    # ------------------------------------------------------------------ derived facts

    def shapes(self) -> dict[str, tuple[str, str]]:
        """Size -> (aspect ratio, resolution) for every size the model makes by aspect ratio
        and resolution."""
        out: dict[str, tuple[str, str]] = {}
        for resolution in self.resolutions:
            for aspect in self.aspect_ratios:
                key = f"{aspect}@{resolution}"
                out.setdefault(
                    self.frame_sizes.get(key) or standard_size(aspect, resolution),
                    (aspect, resolution),
                )
        return out

    def shape_of(self, size: str) -> tuple[str, str] | None:
        """(aspect ratio, resolution) of one of the model's sizes: as the model declares it, or
        read from the size itself when the size is an exact ratio (1280x720 -> 16:9, 720p)."""
        declared = self.shapes().get(size)
        if declared is not None:
            return declared
        w, h = parse_size(size)
        d = gcd(w, h)
        a, b = w // d, h // d
        if max(a, b) > 32:
            return None
        return f"{a}:{b}", f"{min(w, h)}p"

    def resolution_of(self, size: str) -> str:
        shape = self.shape_of(size)
        return shape[1] if shape else f"{min(parse_size(size))}p"

    def price_of(self, size: str) -> Decimal | None:
        """Price per second at `size`: its own price, else its resolution's."""
        if size in self.price_per_second:
            return self.price_per_second[size]
        return self.price_per_second.get(self.resolution_of(size))

    def seconds_at(self, size: str) -> tuple[str, ...]:
        return self.seconds_by_resolution.get(self.resolution_of(size), self.seconds)

    @property
    def by_shape(self) -> bool:
        """Whether the model is specified by aspect ratio and resolution."""
        return bool(self.aspect_ratios)

    def first_size(self) -> str:
        return self.default_size or self.sizes[0]

    def first_seconds(self, size: str | None = None) -> str:
        allowed = self.seconds_at(size) if size else self.seconds
        if self.default_seconds is not None and self.default_seconds in allowed:
            return self.default_seconds
        return allowed[0]

    def offered_aspects(self) -> list[str]:
        return _ordered_union([[shape[0]] for s in self.sizes if (shape := self.shape_of(s))])

    def offered_resolutions(self) -> list[str]:
        return _ordered_union([[self.resolution_of(s)] for s in self.sizes])


@dataclass(frozen=True)
class Resolved:
    """One request as the catalog offers it: every default filled in, every value checked."""

    spec: ModelSpec
    seconds: str
    size: str
    aspect_ratio: str | None
    resolution: str
    negative_prompt: str | None = None
    # What to send: None = nothing (the model takes no such parameter, or the server's default).
    seed: int | None = None
    audio: bool | None = None

    @property
    def model(self) -> str:
        return self.spec.id

    def request(self, prompt: str, *, sound_asked: bool) -> CreateVideo:
        """The create request for these choices. Sound on/off is sent only when the member
        asked: the model's own default needs no field, and strict servers refuse one they do
        not know."""
        return CreateVideo(
            prompt=prompt,
            model=self.model,
            seconds=self.seconds,
            size=self.size,
            negative_prompt=self.negative_prompt,
            seed=self.seed,
            audio=self.audio if sound_asked else None,
        )

    @property
    def cost_micros(self) -> int:
        price = self.spec.price_of(self.size)
        assert price is not None  # every size has a price (checked when loaded)
        return int(price * int(self.seconds) * MICROS_PER_DOLLAR)


class Catalog(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    models: tuple[ModelSpec, ...] = Field(min_length=1)
    # Where this catalog came from and what the owner should know (presets carry both).
    name: str | None = None
    source: str | None = None
    note: str | None = None
    # A template whose model id is whatever the server serves: VIDEO_CATALOG=name:<model id>.
    needs_model_id: bool = False

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalog:
        ids = [m.id for m in self.models]
        if len(set(ids)) != len(ids):
            raise ValueError("model ids must be unique")
        return self

    @property
    def default(self) -> ModelSpec:
        return self.models[0]

    def get(self, model_id: str) -> ModelSpec | None:
        return next((m for m in self.models if m.id == model_id), None)

    def all_sizes(self) -> list[str]:
        return _ordered_union(m.sizes for m in self.models)

    def all_seconds(self) -> list[str]:
        return sorted(_ordered_union(m.seconds for m in self.models), key=int)

    def all_aspect_ratios(self) -> list[str]:
        return _ordered_union(m.aspect_ratios for m in self.models)

    def all_resolutions(self) -> list[str]:
        return sorted(_ordered_union(m.resolutions for m in self.models), key=parse_resolution)

    @property
    def by_shape(self) -> bool:
        """Whether any model is specified by aspect ratio and resolution."""
        return any(m.by_shape for m in self.models)

    def resolve(
        self,
        model: str | None = None,
        seconds: str | None = None,
        size: str | None = None,
        *,
        aspect_ratio: str | None = None,
        resolution: str | None = None,
        negative_prompt: str | None = None,
        seed: int | None = None,
        audio: bool | None = None,
        rng: random.Random | None = None,
    ) -> Resolved:
        """The request with every default filled in, or NotOffered saying (to the member) what
        the model does offer. A size and an aspect ratio / resolution may both be given only
        when they agree."""
        spec = self.get(model) if model else self.default
        if spec is None:
            offered = ", ".join(m.id for m in self.models)
            raise NotOffered(
                f"Model `{_shown(model)}` is not offered here. Choose one of: {offered}."
            )
        dims = _pick_size(
            spec,
            size and size.strip().lower(),
            aspect_ratio and aspect_ratio.strip(),
            resolution and resolution.strip().lower(),
        )
        allowed = spec.seconds_at(dims)
        secs = seconds.strip() if seconds else spec.first_seconds(dims)
        if secs not in allowed:
            at = f" at {spec.resolution_of(dims)}" if allowed != spec.seconds else ""
            raise NotOffered(
                f"{spec.label} does not make {_shown(secs)}-second videos{at}. "
                f"Durations: {', '.join(allowed)} seconds."
            )
        options = spec.options
        if negative_prompt is not None:
            negative_prompt = negative_prompt.strip() or None
        if negative_prompt is not None:
            if not options.negative_prompt:
                raise NotOffered(f"{spec.label} does not take a negative prompt.")
            if len(negative_prompt) > NEGATIVE_PROMPT_LIMIT:
                raise NotOffered(
                    f"The negative prompt is too long: at most {NEGATIVE_PROMPT_LIMIT} characters."
                )
        if seed is not None:
            if not options.seed:
                raise NotOffered(f"{spec.label} does not take a seed.")
            if not 0 <= seed < SEED_LIMIT:
                raise NotOffered(f"A seed is a whole number from 0 to {SEED_LIMIT - 1}.")
        elif options.random_seed:
            seed = (rng or random).randrange(SEED_LIMIT)
        if audio is not None and not options.audio:
            if audio != options.audio_default:
                state = "with" if options.audio_default else "without"
                raise NotOffered(f"{spec.label} always makes videos {state} sound.")
            audio = None
        elif audio is None and options.audio:
            audio = options.audio_default
        shape = spec.shape_of(dims)
        return Resolved(
            spec=spec,
            seconds=secs,
            size=dims,
            aspect_ratio=shape[0] if shape else None,
            resolution=spec.resolution_of(dims),
            negative_prompt=negative_prompt,
            seed=seed,
            audio=audio,
        )

    def check(self, model_id: str, seconds: str, size: str) -> str | None:
        """Return why this combination is not offered, or None when it is."""
        try:
            self.resolve(model_id, seconds, size)
        except NotOffered as exc:
            return str(exc)
        return None

    def cost_micros(self, model_id: str, size: str, seconds: str) -> int:
        """Price of one request in micro-dollars (exact integer arithmetic)."""
        spec = self.get(model_id)
        price = spec.price_of(size) if spec is not None and size in spec.sizes else None
        if price is None:
            raise KeyError(f"no price for {model_id} at {size}")
        return int(price * int(seconds) * MICROS_PER_DOLLAR)


def _describe_sizes(spec: ModelSpec) -> str:
    if spec.by_shape:
        return (
            f"Aspect ratios: {', '.join(spec.aspect_ratios)}; "
            f"resolutions: {', '.join(spec.resolutions)}."
        )
    return f"Sizes: {', '.join(spec.sizes)}."


def _pick_size(
    spec: ModelSpec, size: str | None, aspect: str | None, resolution: str | None
) -> str:
    if size:
        if size not in spec.sizes:
            raise NotOffered(
                f"{spec.label} does not make {_shown(size)} videos. {_describe_sizes(spec)}"
            )
        shape = spec.shape_of(size)
        if (aspect and (shape is None or shape[0] != aspect)) or (
            resolution and spec.resolution_of(size) != resolution
        ):
            raise NotOffered(
                f"{size} is not {_shown(' at '.join(p for p in (aspect, resolution) if p))}: "
                "choose a size, or an aspect ratio and resolution."
            )
        return size
    if not aspect and not resolution:
        return spec.first_size()
    matching = [
        s
        for s in spec.sizes
        if (not aspect or (spec.shape_of(s) or ("", ""))[0] == aspect)
        and (not resolution or spec.resolution_of(s) == resolution)
    ]
    if not matching:
        wanted = _shown(" at ".join(p for p in (aspect, resolution) if p))
        offered = spec.offered_aspects()
        if spec.by_shape or offered:
            choices = (
                f"Aspect ratios: {', '.join(offered)}; "
                f"resolutions: {', '.join(spec.offered_resolutions())}."
            )
        else:
            choices = _describe_sizes(spec)
        raise NotOffered(f"{spec.label} does not make {wanted} videos. {choices}")
    # The model's own default where it fits, else its first such size at its first resolution.
    default = spec.first_size()
    return default if default in matching else matching[0]


def _shown(value: str | None, limit: int = 40) -> str:
    """A value the member typed, as a refusal quotes it: short, and unable to close the code
    span it is shown in."""
    text = (value or "").replace("`", "'")
    return text if len(text) <= limit else text[:limit] + "…"


def _ordered_union(groups: Iterable[Iterable[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item, None)
    return list(seen)


def _validated(data: object, where: str) -> Catalog:
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise CatalogError(f"catalog {where}: {loc + ': ' if loc else ''}{message}") from None


def _parse(text: str, where: str) -> Catalog:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"catalog {where} is not valid JSON: {exc.msg} at line {exc.lineno}"
        ) from None
    return _validated(data, where)


def load_catalog(path: Path | None = None) -> Catalog:
    """Read the catalog from `path`, or the bundled default when no path is configured."""
    try:
        if path is None:
            text = resources.files("bot").joinpath("default_catalog.json").read_text("utf-8")
        else:
            text = path.read_text("utf-8")
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from None
    return _parse(text, str(path) if path is not None else "default")


# ---------------------------------------------------------------------- presets


def preset_names() -> list[str]:
    """The bundled presets, by the name `VIDEO_CATALOG` uses."""
    folder = resources.files("bot").joinpath(PRESET_DIR)
    return sorted(
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    )


def load_preset(name: str) -> Catalog:
    """One bundled preset as it is written (a template keeps its placeholder id)."""
    if name not in preset_names():
        raise CatalogError(f"unknown preset {name!r}; known presets: {', '.join(preset_names())}")
    text = resources.files("bot").joinpath(PRESET_DIR, f"{name}.json").read_text("utf-8")
    return _parse(text, f"preset {name}")


def load_presets(names: Sequence[str]) -> Catalog:
    """The presets named (in order) merged into one catalog. `name:model-id` gives a one-model
    preset the id the server knows it by (a self-hosted server's served model)."""
    if not names:
        raise CatalogError(f"no preset named; known presets: {', '.join(preset_names())}")
    models: list[ModelSpec] = []
    origin: dict[str, str] = {}
    for entry in names:
        name, sep, model_id = (part.strip() for part in entry.partition(":"))
        preset = load_preset(name)
        if sep:
            if len(preset.models) != 1:
                raise CatalogError(
                    f"preset {name!r} has {len(preset.models)} models; only a one-model "
                    "preset takes a model id"
                )
            if not model_id or len(model_id) > NAME_LIMIT:
                raise CatalogError(
                    f"preset {name!r}: write the model id after the colon, as {name}:<model id>"
                )
            update = {"id": model_id}
            if preset.needs_model_id:
                # A template's label says nothing; the served model's own name does.
                update["label"] = model_id.rsplit("/", 1)[-1] or model_id
            preset = preset.model_copy(
                update={"models": (preset.models[0].model_copy(update=update),)}
            )
        elif preset.needs_model_id:
            raise CatalogError(
                f"preset {name!r} needs the id of the model your server serves: "
                f"VIDEO_CATALOG={name}:<model id>"
            )
        for spec in preset.models:
            if spec.id in origin:
                raise CatalogError(
                    f"model {spec.id!r} is in both preset {origin[spec.id]!r} and {name!r}"
                )
            origin[spec.id] = name
            models.append(spec)
    return Catalog(models=tuple(models), name=",".join(names))
