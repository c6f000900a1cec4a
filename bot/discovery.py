"""Which catalog the bot offers, and where it came from: the owner's, or the server's own account.

Precedence: `VIDEO_CATALOG_FILE` > `VIDEO_CATALOG` (presets by name) > discovered from the server >
a profile's fallback presets > the bundled default. Discovery is a cheap read at start, like the
probe (never a create):

- OpenRouter tells its whole catalog at `GET /videos/models`: per model its durations, aspect
  ratios and resolutions or sizes, first/last frame images, sound and seed, per-second prices
  (`pricing_skus`: `per-video-second`, `per-video-second-1080p` ...) and the extra parameters it
  passes through. Each entry becomes a catalog model (`from_openrouter`).
- vLLM-Omni and SGLang serve one model, named at `GET /models`: its id is matched to a preset
  (`Wan-AI/Wan2.2-T2V-A14B` -> wan-2.2, renamed to the served id); an unknown one gets the
  `served` template (`from_served`).

What a server sends is untrusted: the list is bounded (entries read, models kept, lengths of ids
and names, numbers in sane ranges), an entry that does not parse is skipped with its reason, and
when nothing usable is left the bot falls back, saying why in the log and in `doctor`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.api.client import VideosClient
from bot.api.errors import VideoAPIError
from bot.api.models import parse_size
from bot.api.probe import VIDEO_MODELS_PATH
from bot.api.profiles import ProfileName
from bot.catalog import (
    NAME_LIMIT,
    Catalog,
    CatalogError,
    ModelOptions,
    ModelSpec,
    load_catalog,
    load_preset,
    load_presets,
    parse_aspect,
    parse_resolution,
    preset_names,
)
from bot.redact import redact
from bot.settings import Settings

log = logging.getLogger(__name__)

# Entries of a model list read at most, and models kept from them.
MAX_ENTRIES = 200
MAX_MODELS = 50
# Per model: durations, aspect ratios, resolutions, sizes and price keys read at most.
MAX_VALUES = 25
MAX_PRICE_KEYS = 50
# Longest video (seconds), largest frame side (pixels) and dearest second (USD) believed.
MAX_SECONDS = 600
MAX_SIDE = 8192
MAX_PRICE_PER_SECOND = Decimal(100)
# Served models of a self-hosted server mapped at most (they serve one).
MAX_SERVED = 10
MODELS_PATH = "/models"

# Ids as servers name models: `google/veo-3.1`, `Wan-AI/Wan2.2-T2V-A14B-Diffusers`.
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+\-]{0,99}$")
# What a label may keep: letters, digits, spaces and plain punctuation (no markdown, no mentions).
_LABEL_DROP = re.compile(r"[^\w .,:;()/+&'\-]", re.UNICODE)
_DIGITS = re.compile(r"^[0-9]{1,4}$")

# Served model -> preset, by the family its id names (case-insensitive).
SERVED_PRESETS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"wan[-_ ]?2[._-]?2(?![0-9])", re.IGNORECASE), "wan-2.2"),
    (re.compile(r"wan[-_ ]?2[._-]?5(?![0-9])", re.IGNORECASE), "wan-2.5"),
    (re.compile(r"wan[-_ ]?2[._-]?6(?![0-9])", re.IGNORECASE), "wan-2.6"),
    (re.compile(r"wan[-_ ]?2[._-]?7(?![0-9])", re.IGNORECASE), "wan-2.7"),
    (re.compile(r"ltx", re.IGNORECASE), "ltx-video"),
)
SERVED_TEMPLATE = "served"
# Profiles whose servers tell their catalog.
DISCOVERING: frozenset[ProfileName] = frozenset({"openrouter", "vllm-omni", "sglang"})
# Where a server's list cannot be read, the presets its models most likely are.
FALLBACK_PRESETS: dict[ProfileName, tuple[str, ...]] = {"openrouter": ("sora-2", "sora-2-pro")}


@dataclass
class CatalogChoice:
    """The catalog the bot offers, where it came from (one line), and what the owner should know
    (each model's origin, entries skipped and why, a fallback's reason)."""

    catalog: Catalog
    origin: str
    notes: list[str] = field(default_factory=list)
    discovered: bool = False
    # Where a model came from when the catalog has several sources (a preset's name).
    model_origins: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The catalog as `doctor` prints it."""
        out = [f"catalog: {self.origin}"]
        for spec in self.catalog.models:
            shapes = (
                f"{', '.join(spec.aspect_ratios)} at {', '.join(spec.resolutions)}"
                if spec.by_shape
                else ", ".join(spec.sizes)
            )
            prices = ", ".join(
                f"{key} ${value.normalize():f}/s" for key, value in _shown_prices(spec).items()
            )
            whence = self.model_origins.get(spec.id)
            name = f"{spec.id} ({whence})" if whence else spec.id
            out.append(f"- {name}: {', '.join(spec.seconds)} s; {shapes}; {prices}")
        out.extend(f"- note: {note}" for note in self.notes)
        return out


def configured(settings: Settings) -> CatalogChoice | None:
    """The owner's catalog (file, then presets), or None when the owner named none. Raises
    CatalogError as `settings.catalog()` does."""
    if settings.video_catalog_file is not None:
        path = settings.video_catalog_file
        return CatalogChoice(load_catalog(path), f"the file {path} (VIDEO_CATALOG_FILE)")
    if settings.video_catalog:
        names = ",".join(settings.video_catalog)
        choice = CatalogChoice(
            load_presets(settings.video_catalog), f"presets {names} (VIDEO_CATALOG)"
        )
        for entry in settings.video_catalog:
            for spec in load_presets([entry]).models:
                choice.model_origins[spec.id] = f"preset {entry.partition(':')[0].strip()}"
        return choice
    return None


def default_choice(profile: ProfileName, reason: str | None = None) -> CatalogChoice:
    fallback = FALLBACK_PRESETS.get(profile)
    if fallback:
        choice = CatalogChoice(
            load_presets(fallback), f"presets {','.join(fallback)} ({profile}'s fallback)"
        )
    else:
        choice = CatalogChoice(load_catalog(None), "the bundled default")
    if reason:
        choice.notes.append(reason)
    return choice


async def choose_catalog(
    settings: Settings, client: VideosClient, profile: ProfileName
) -> CatalogChoice:
    """The catalog to offer (see the module's precedence). Never raises for what a server
    sends; CatalogError only for the owner's own catalog, as at start-up."""
    own = configured(settings)
    if own is not None:
        return own
    if profile == "openrouter":
        return await _discover_openrouter(client, profile)
    if profile in ("vllm-omni", "sglang"):
        return await _discover_served(client, profile)
    return default_choice(profile)


async def _discover_openrouter(client: VideosClient, profile: ProfileName) -> CatalogChoice:
    where = f"GET {VIDEO_MODELS_PATH}"
    try:
        body = await client.read_catalog(VIDEO_MODELS_PATH)
    except VideoAPIError as exc:
        return _fallback(profile, f"{where} failed ({redact(exc.message, 200)})")
    models, skipped = from_openrouter(body)
    if not models:
        why = "; ".join(skipped[:3]) or "it lists no models"
        return _fallback(profile, f"{where} gave no usable model ({why})")
    choice = CatalogChoice(
        Catalog(
            models=tuple(models), name="discovered", source=f"{where} at {client.config.base_url}"
        ),
        f"discovered from {where} ({len(models)} models)",
        notes=skipped,
        discovered=True,
    )
    _log_skipped(skipped)
    return choice


async def _discover_served(client: VideosClient, profile: ProfileName) -> CatalogChoice:
    where = f"GET {MODELS_PATH}"
    try:
        body = await client.read_catalog(MODELS_PATH)
    except VideoAPIError as exc:
        return _fallback(profile, f"{where} failed ({redact(exc.message, 200)})")
    served, skipped = served_ids(body)
    if not served:
        why = "; ".join(skipped[:3]) or "it names no model"
        return _fallback(profile, f"{where} gave no usable model ({why})")
    catalog, mapped = from_served(served)
    origin = ", ".join(
        f"{model} -> " + ("the bundled default" if preset == "default" else f"preset {preset}")
        for model, preset in mapped
    )
    _log_skipped(skipped)
    return CatalogChoice(
        catalog,
        f"discovered from {where} ({origin})",
        notes=skipped,
        discovered=True,
        model_origins={
            model: "the bundled default" if preset == "default" else f"preset {preset}"
            for model, preset in mapped
        },
    )


def _fallback(profile: ProfileName, reason: str) -> CatalogChoice:
    choice = default_choice(profile, reason)
    log.warning("catalog discovery: %s; offering %s", reason, choice.origin)
    return choice


def _log_skipped(skipped: Sequence[str]) -> None:
    for reason in skipped[:10]:
        log.warning("catalog discovery: %s", reason)


# ---------------------------------------------------------------------- OpenRouter's list


def from_openrouter(body: Any) -> tuple[list[ModelSpec], list[str]]:
    """Catalog models from OpenRouter's `GET /videos/models` answer, and why entries were
    skipped. At most MAX_MODELS models from the first MAX_ENTRIES entries."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return [], ["the answer has no list of models (`data`)"]
    skipped: list[str] = []
    if len(data) > MAX_ENTRIES:
        skipped.append(f"only the first {MAX_ENTRIES} of {len(data)} entries were read")
    models: list[ModelSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(data[:MAX_ENTRIES]):
        if len(models) >= MAX_MODELS:
            skipped.append(f"only the first {MAX_MODELS} usable models are offered")
            break
        try:
            spec = openrouter_model(entry)
        except (ValueError, TypeError, ArithmeticError, RecursionError) as exc:
            name = _entry_name(entry, index)
            skipped.append(f"skipped {name}: {redact(str(exc), 200)}")
            continue
        if spec.id in seen:
            skipped.append(f"skipped {spec.id}: listed twice")
            continue
        seen.add(spec.id)
        models.append(spec)
    return models, skipped


def openrouter_model(entry: object) -> ModelSpec:
    """One entry of OpenRouter's video models list as a catalog model; ValueError saying why it
    cannot be one."""
    if not isinstance(entry, dict):
        raise ValueError("not an object")
    model_id = _model_id(entry.get("id"))
    label = _label(entry.get("name"), model_id)
    seconds = _bounded(entry.get("supported_durations"), _duration, "durations")
    if not seconds:
        raise ValueError("no supported durations")
    aspects = _bounded(entry.get("supported_aspect_ratios"), _aspect, "aspect ratios")
    resolutions = _bounded(entry.get("supported_resolutions"), _resolution, "resolutions")
    sizes = _bounded(entry.get("supported_sizes"), _size, "sizes")
    by_shape = bool(aspects and resolutions)
    if not by_shape and not sizes:
        raise ValueError("neither sizes nor aspect ratios with resolutions")
    skus = _skus(entry.get("pricing_skus"))
    frames = _bounded(entry.get("supported_frame_images"), _word, "frame images")
    passthrough = _bounded(entry.get("allowed_passthrough_parameters"), _word, "parameters")
    audio = entry.get("generate_audio") is True
    options = ModelOptions(
        negative_prompt="negative_prompt" in passthrough,
        seed=entry.get("seed") is True,
        audio=audio,
        # OpenRouter makes sound by default where the model can.
        audio_default=audio,
    )
    draft: dict[str, Any] = {
        "id": model_id,
        "label": label,
        "seconds": tuple(str(s) for s in sorted(set(seconds))),
        "sizes": tuple(dict.fromkeys(sizes)) if not by_shape else (),
        "aspect_ratios": tuple(dict.fromkeys(aspects)) if by_shape else (),
        "resolutions": tuple(dict.fromkeys(resolutions)) if by_shape else (),
        "price_per_second": {},
        "options": options,
        "note": _frames_note(frames),
    }
    # The sizes the model will make, to price each one's resolution.
    sketch = ModelSpec.model_construct(**draft)
    if by_shape:
        sketch = ModelSpec.model_construct(**{**draft, "sizes": tuple(sketch.shapes())})
    prices: dict[str, Decimal] = {}
    for size in sketch.sizes:
        resolution = sketch.resolution_of(size)
        if resolution in prices:
            continue
        price = skus.get(f"per-video-second-{resolution}", skus.get("per-video-second"))
        if price is None and "per-video" in skus:
            # Priced per video: as a per-second price over its shortest length, the dearest
            # reading (quotas budget high rather than low).
            price = (skus["per-video"] / min(seconds)).quantize(Decimal("0.000001"))
        if price is None:
            raise ValueError(f"no per-second price for {resolution}")
        if price > MAX_PRICE_PER_SECOND:
            raise ValueError(f"the price at {resolution} is not a sane amount")
        prices[resolution] = price
    draft["price_per_second"] = prices
    if by_shape:
        del draft["sizes"]
    return ModelSpec.model_validate(draft)


def _entry_name(entry: object, index: int) -> str:
    if isinstance(entry, dict):
        raw = entry.get("id")
        if isinstance(raw, str) and _MODEL_ID.match(raw):
            return raw
    return f"entry {index + 1}"


def _model_id(value: object) -> str:
    if not isinstance(value, str) or not _MODEL_ID.match(value):
        raise ValueError("its id is not a model id")
    return value


def _label(value: object, model_id: str) -> str:
    if isinstance(value, str):
        text = " ".join(_LABEL_DROP.sub("", " ".join(value.split())).split())
        text = text[:NAME_LIMIT].strip()
        if text:
            return text
    return model_id


def _bounded(value: object, parse: Any, what: str) -> list[Any]:
    """A list of at most MAX_VALUES values, each checked by `parse` (ValueError if one is not)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"its {what} are not a list")
    if len(value) > MAX_VALUES:
        raise ValueError(f"more than {MAX_VALUES} {what}")
    return [parse(item) for item in value]


def _duration(value: object) -> int:
    if isinstance(value, str) and _DIGITS.match(value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SECONDS:
        raise ValueError(f"a duration is not a whole number of seconds from 1 to {MAX_SECONDS}")
    return value


def _text(value: object, limit: int = 16) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError("a value is not a short string")
    return value


def _aspect(value: object) -> str:
    text = _text(value)
    parse_aspect(text)
    return text


def _resolution(value: object) -> str:
    text = _text(value)
    if not 100 <= parse_resolution(text) <= MAX_SIDE:
        raise ValueError(f"resolution {text} is out of range")
    return text


def _size(value: object) -> str:
    text = _text(value).lower()
    w, h = parse_size(text)
    if max(w, h) > MAX_SIDE:
        raise ValueError(f"size {text} is out of range")
    return text


def _word(value: object) -> str:
    return _text(value, 64)


def _skus(value: object) -> dict[str, Decimal]:
    """Per-second and per-video prices (USD); other SKUs are left alone."""
    if not isinstance(value, dict):
        raise ValueError("no pricing_skus")
    if len(value) > MAX_PRICE_KEYS:
        raise ValueError(f"more than {MAX_PRICE_KEYS} prices")
    prices: dict[str, Decimal] = {}
    for key, raw in value.items():
        if not isinstance(key, str) or not key.startswith("per-video") or len(key) > 64:
            continue
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ValueError(f"price {key} is not a number")
        try:
            price = Decimal(str(raw)) if not isinstance(raw, str) or len(raw) <= 32 else None
        except InvalidOperation:
            price = None
        limit = MAX_PRICE_PER_SECOND * (MAX_SECONDS if key == "per-video" else 1)
        if price is None or not price.is_finite() or not 0 <= price <= limit:
            raise ValueError(f"price {key} is not a sane amount")
        prices[key] = price.quantize(Decimal("0.000001"))
    return prices


def _frames_note(frames: Iterable[str]) -> str:
    kinds = [f.replace("_", " ") for f in frames]
    if not kinds:
        return "takes no reference image"
    return f"reference images: {', '.join(kinds)}"


def _shown_prices(spec: ModelSpec) -> dict[str, Decimal]:
    # Prices as the catalog states them (by resolution where given), not the per-size copies.
    keys = set(spec.resolutions) or set(spec.sizes)
    named = {k: v for k, v in spec.price_per_second.items() if k in keys}
    return named or dict(spec.price_per_second)


# ---------------------------------------------------------------------- served models


def served_ids(body: Any) -> tuple[list[str], list[str]]:
    """Model ids from a `GET /models` answer (at most MAX_SERVED), and why others were skipped."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return [], ["the answer has no list of models (`data`)"]
    ids: list[str] = []
    skipped: list[str] = []
    for index, entry in enumerate(data[:MAX_ENTRIES]):
        raw = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(raw, str) or not _MODEL_ID.match(raw):
            skipped.append(f"skipped entry {index + 1}: its id is not a model id")
            continue
        if raw not in ids:
            ids.append(raw)
    if len(ids) > MAX_SERVED:
        skipped.append(f"only the first {MAX_SERVED} of {len(ids)} served models are offered")
        ids = ids[:MAX_SERVED]
    return ids, skipped


def preset_for(model_id: str) -> str:
    """The preset a served model's id names (exactly, or by its family), or the `served`
    template."""
    for name in preset_names():
        preset = load_preset(name)
        if not preset.needs_model_id and any(m.id == model_id for m in preset.models):
            return name
    for pattern, preset_name in SERVED_PRESETS:
        if pattern.search(model_id):
            return preset_name
    return SERVED_TEMPLATE


def from_served(ids: Sequence[str]) -> tuple[Catalog, list[tuple[str, str]]]:
    """A catalog of the served models: the bundled default's where it has them all, else each
    its preset renamed to the served id."""
    default = load_catalog(None)
    if all(default.get(model_id) is not None for model_id in ids):
        models = tuple(spec for model_id in ids if (spec := default.get(model_id)) is not None)
        return default.model_copy(update={"models": models}), [(i, "default") for i in ids]
    mapped = [(model_id, preset_for(model_id)) for model_id in ids]
    try:
        catalog = load_presets([_preset_entry(model_id, preset) for model_id, preset in mapped])
    except CatalogError:
        # Presets that cannot take the ids (a many-model preset): the template does.
        mapped = [(model_id, SERVED_TEMPLATE) for model_id in ids]
        catalog = load_presets([f"{SERVED_TEMPLATE}:{model_id}" for model_id in ids])
    return catalog, mapped


def _preset_entry(model_id: str, preset: str) -> str:
    # A preset that has the model under its own id is taken as it is.
    if any(m.id == model_id for m in load_preset(preset).models):
        return preset
    return f"{preset}:{model_id}"
