"""OpenRouter's account of its video models (`GET /videos/models`) as catalog models.

Per model it tells its durations, aspect ratios and resolutions or sizes, first/last frame
images, sound and seed, per-second prices (`pricing_skus`: `per-video-second`,
`per-video-second-1080p` ...) and the extra parameters it passes through. What it sends is
untrusted: the list is bounded (entries read, models kept, lengths of ids and names, numbers in
sane ranges), and an entry that does not parse is skipped with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.api.models import parse_size
from bot.model_spec import NAME_LIMIT, ModelOptions, ModelSpec
from bot.redact import redact
from bot.shapes import parse_aspect, parse_resolution

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

# Ids as servers name models: `google/veo-3.1`, `Wan-AI/Wan2.2-T2V-A14B-Diffusers`.
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+\-]{0,99}$")
# What a label may keep: letters, digits, spaces and plain punctuation (no markdown, no mentions).
_LABEL_DROP = re.compile(r"[^\w .,:;()/+&'\-]", re.UNICODE)
_DIGITS = re.compile(r"^[0-9]{1,4}$")


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
        if isinstance(raw, str) and MODEL_ID.match(raw):
            return raw
    return f"entry {index + 1}"


def _model_id(value: object) -> str:
    if not isinstance(value, str) or not MODEL_ID.match(value):
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
