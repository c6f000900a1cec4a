"""The model catalog: which models, sizes and durations a server owner offers, and what they cost.

The catalog is configuration (JSON), not code, because every backend that speaks the Videos API
serves different models at different prices (bot/catalog_files.py reads it; bot/model_spec.py
is one model). `Catalog.resolve` is the one place a request's defaults are filled in and its
choices checked, for every front end (`/video`, Animate image, the command line).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.api.models import SEED_LIMIT, CreateVideo
from bot.model_spec import ModelSpec, ordered_union
from bot.notice import Code, Notice, NoticeError, notice
from bot.shapes import parse_resolution

# Amounts are integer micro-dollars in the ledger so sums are exact; the catalog file uses Decimal.
MICROS_PER_DOLLAR = 1_000_000
NEGATIVE_PROMPT_LIMIT = 2000


class NotOffered(NoticeError):
    """A request the catalog does not offer; the notice is for the member."""


def format_dollars(micros: int) -> str:
    return f"${Decimal(micros) / MICROS_PER_DOLLAR:.2f}"


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

    def expected_job_seconds(self, model_id: str, seconds: str) -> float | None:
        """The catalog's hint of how long a job of this model and length usually takes."""
        spec = self.get(model_id)
        return None if spec is None else spec.expected_job_seconds.get(seconds)

    def all_sizes(self) -> list[str]:
        return ordered_union(m.sizes for m in self.models)

    def all_seconds(self) -> list[str]:
        return sorted(ordered_union(m.seconds for m in self.models), key=int)

    def all_aspect_ratios(self) -> list[str]:
        return ordered_union(m.aspect_ratios for m in self.models)

    def all_resolutions(self) -> list[str]:
        return sorted(ordered_union(m.resolutions for m in self.models), key=parse_resolution)

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
            raise NotOffered(
                notice(
                    "Model {model} is not offered here. Choose one of: {offered}.",
                    model=Code(_shown(model)),
                    offered=", ".join(m.id for m in self.models),
                )
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
            durations = ", ".join(allowed)
            raise NotOffered(
                notice(
                    "{model} does not make {seconds}-second videos. "
                    "Durations: {durations} seconds.",
                    model=spec.label,
                    seconds=_shown(secs),
                    durations=durations,
                )
                if allowed == spec.seconds
                else notice(
                    "{model} does not make {seconds}-second videos at {resolution}. "
                    "Durations: {durations} seconds.",
                    model=spec.label,
                    seconds=_shown(secs),
                    resolution=spec.resolution_of(dims) or dims,
                    durations=durations,
                )
            )
        options = spec.options
        if negative_prompt is not None:
            negative_prompt = negative_prompt.strip() or None
        if negative_prompt is not None:
            if not options.negative_prompt:
                raise NotOffered(
                    notice("{model} does not take a negative prompt.", model=spec.label)
                )
            if len(negative_prompt) > NEGATIVE_PROMPT_LIMIT:
                raise NotOffered(
                    notice(
                        "The negative prompt is too long: at most {most} characters.",
                        most=NEGATIVE_PROMPT_LIMIT,
                    )
                )
        if seed is not None:
            if not options.seed:
                raise NotOffered(notice("{model} does not take a seed.", model=spec.label))
            if not 0 <= seed < SEED_LIMIT:
                raise NotOffered(
                    notice("A seed is a whole number from 0 to {most}.", most=SEED_LIMIT - 1)
                )
        elif options.random_seed:
            seed = (rng or random).randrange(SEED_LIMIT)
        if audio is not None and not options.audio:
            if audio != options.audio_default:
                raise NotOffered(
                    notice("{model} always makes videos with sound.", model=spec.label)
                    if options.audio_default
                    else notice("{model} always makes videos without sound.", model=spec.label)
                )
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
        """Why this combination is not offered (plain words), or None when it is."""
        try:
            self.resolve(model_id, seconds, size)
        except NotOffered as exc:
            return exc.notice.plain()
        return None

    def cost_micros(self, model_id: str, size: str, seconds: str) -> int:
        """Price of one request in micro-dollars (exact integer arithmetic)."""
        spec = self.get(model_id)
        price = spec.price_of(size) if spec is not None and size in spec.sizes else None
        if price is None:
            raise KeyError(f"no price for {model_id} at {size}")
        return int(price * int(seconds) * MICROS_PER_DOLLAR)


def _describe_sizes(spec: ModelSpec) -> Notice:
    if spec.by_shape:
        return _shapes_offered(spec.aspect_ratios, spec.resolutions)
    return notice("Sizes: {sizes}.", sizes=", ".join(spec.sizes))


def _shapes_offered(aspects: Sequence[str], resolutions: Sequence[str]) -> Notice:
    return notice(
        "Aspect ratios: {aspects}; resolutions: {resolutions}.",
        aspects=", ".join(aspects),
        resolutions=", ".join(resolutions),
    )


def _shape_words(aspect: str | None, resolution: str | None) -> str | Notice:
    """What a member asked for by shape: "16:9", "720p" or "16:9 at 720p"."""
    if aspect and resolution:
        return notice(
            "{aspect} at {resolution}", aspect=_shown(aspect), resolution=_shown(resolution)
        )
    return _shown(aspect or resolution)


def _pick_size(
    spec: ModelSpec, size: str | None, aspect: str | None, resolution: str | None
) -> str:
    if size:
        if size not in spec.sizes:
            raise NotOffered(
                notice("{model} does not make {size} videos.", model=spec.label, size=_shown(size))
                + _describe_sizes(spec)
            )
        shape = spec.shape_of(size)
        if (aspect and (shape is None or shape[0] != aspect)) or (
            resolution and spec.resolution_of(size) != resolution
        ):
            raise NotOffered(
                notice(
                    "{size} is not {shape}: choose a size, or an aspect ratio and resolution.",
                    size=size,
                    shape=_shape_words(aspect, resolution),
                )
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
        offered = spec.offered_aspects()
        if spec.by_shape or offered:
            choices = _shapes_offered(offered, spec.offered_resolutions())
        else:
            choices = _describe_sizes(spec)
        raise NotOffered(
            notice(
                "{model} does not make {shape} videos.",
                model=spec.label,
                shape=_shape_words(aspect, resolution),
            )
            + choices
        )
    # The model's own default where it fits, else its first such size at its first resolution.
    default = spec.first_size()
    return default if default in matching else matching[0]


def _shown(value: str | None, limit: int = 40) -> str:
    """A value the member typed, as a refusal quotes it: short, and unable to close the code
    span it is shown in."""
    text = (value or "").replace("`", "'")
    return text if len(text) <= limit else text[:limit] + "…"
