"""One model as the catalog offers it: its sizes (or aspect ratios and resolutions), durations,
prices per second and the options it takes, checked when the catalog is loaded.

A model is offered either by sizes (`"sizes": ["1280x720"]`, as the OpenAI shape has it) or by
aspect ratios and resolutions (`"aspect_ratios": ["16:9"], "resolutions": ["720p"]`, as Veo, Wan,
Kling and Seedance are), or both. Each aspect ratio at each resolution stands for one frame size
(see `standard_size`, or the model's own `frame_sizes`), so a model's `sizes` lists every frame
size it makes. Prices are per second, per size or per resolution.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.api.models import parse_size
from bot.api.openrouter import shape_from_size
from bot.shapes import parse_aspect, parse_resolution, standard_size

# Discord limits a choice's name and value to 100 characters.
NAME_LIMIT = 100


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
    # The owner's hint of how long a job usually takes at their service, in seconds, by clip
    # length ("8": 95); used for ETAs and polling until the bot has finished jobs of the kind.
    expected_job_seconds: dict[str, float] = Field(default_factory=dict)
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
        return shape_from_size(size)

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
        return ordered_union([[shape[0]] for s in self.sizes if (shape := self.shape_of(s))])

    def offered_resolutions(self) -> list[str]:
        return ordered_union([[self.resolution_of(s)] for s in self.sizes])


def ordered_union(groups: Iterable[Iterable[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for group in groups:
        for item in group:
            seen.setdefault(item, None)
    return list(seen)
