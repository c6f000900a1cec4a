"""The simulator's OpenRouter: its video models list, its create body and its job object.

OpenRouter's shape differs from OpenAI's (see bot/api/openrouter.py for the client's side): a
create names `duration` as an integer, the frame as `resolution` + `aspect_ratio` or a `size`, a
reference as `frame_images`, and is answered 202 `{id, polling_url, status: "pending"}`; jobs are
`pending`, `in_progress`, `completed` (with `usage.cost`), `failed`, `cancelled` or `expired`;
errors are `{"error": {"code": <int>, "message"}}`. The models are shaped like the veo-3.1,
wan-2.6 and sora-2-pro presets, as OpenRouter's `GET /videos/models` lists them.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from PIL import Image, UnidentifiedImageError

from bot.sim.errors import ApiError
from bot.sim.records import SimVideo
from bot.sim.wire import MAX_PROMPT_CHARS, type_name

# Sizes a model specified by aspect ratio and resolution makes (the wan-2.6 preset's frames).
_FRAMES = {
    ("1:1", "720p"): "960x960",
    ("4:3", "720p"): "1088x832",
    ("3:4", "720p"): "832x1088",
    ("1:1", "1080p"): "1440x1440",
    ("4:3", "1080p"): "1632x1248",
    ("3:4", "1080p"): "1248x1632",
}

MODELS: tuple[dict[str, Any], ...] = (
    {
        "id": "google/veo-3.1",
        "canonical_slug": "google/veo-3.1",
        "name": "Google: Veo 3.1",
        "created": 1_760_000_000,
        "supported_durations": [4, 6, 8],
        "supported_resolutions": ["720p", "1080p"],
        "supported_aspect_ratios": ["16:9", "9:16"],
        "supported_sizes": [],
        "supported_frame_images": ["first_frame", "last_frame"],
        "generate_audio": True,
        "seed": True,
        "pricing_skus": {"per-video-second": "0.40", "per-video-second-1080p": "0.40"},
        "allowed_passthrough_parameters": ["negative_prompt", "person_generation"],
    },
    {
        "id": "alibaba/wan-2.6",
        "canonical_slug": "alibaba/wan-2.6",
        "name": "Alibaba: Wan 2.6",
        "created": 1_765_000_000,
        "supported_durations": [5, 10, 15],
        "supported_resolutions": ["720p", "1080p"],
        "supported_aspect_ratios": ["16:9", "9:16", "1:1", "4:3", "3:4"],
        "supported_sizes": [],
        "supported_frame_images": ["first_frame"],
        "generate_audio": True,
        "seed": True,
        "pricing_skus": {"per-video-second": "0.10", "per-video-second-1080p": "0.15"},
        "allowed_passthrough_parameters": ["negative_prompt"],
    },
    {
        "id": "openai/sora-2-pro",
        "canonical_slug": "openai/sora-2-pro",
        "name": "OpenAI: Sora 2 Pro",
        "created": 1_759_000_000,
        "supported_durations": [4, 8, 12],
        "supported_resolutions": [],
        "supported_aspect_ratios": [],
        "supported_sizes": ["720x1280", "1280x720", "1024x1792", "1792x1024"],
        "supported_frame_images": [],
        "generate_audio": False,
        "seed": False,
        "pricing_skus": {"per-video-second": "0.30", "per-video-second-1024p": "0.50"},
        "allowed_passthrough_parameters": [],
    },
)
_FIELDS = frozenset(
    {
        "model",
        "prompt",
        "duration",
        "resolution",
        "aspect_ratio",
        "size",
        "frame_images",
        "input_references",
        "seed",
        "generate_audio",
        "callback_url",
        "provider",
    }
)
FRAME_TYPES = ("first_frame", "last_frame")
DEFAULT_SECONDS = 4
MAX_SECONDS = 60


@dataclass(frozen=True)
class OpenRouterJob:
    """A create as the simulator understood it."""

    model: str
    prompt: str
    seconds: int
    size: str
    resolution: str
    cost: Decimal
    frame_types: tuple[str, ...] = ()
    seed: int | None = None
    generate_audio: bool | None = None


def bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_request")


def find_model(models: tuple[dict[str, Any], ...], model_id: str) -> dict[str, Any] | None:
    return next((m for m in models if m.get("id") == model_id), None)


def parse_create(
    fields: Mapping[str, Any],
    models: tuple[dict[str, Any], ...],
    *,
    check_model: bool,
) -> OpenRouterJob:
    """Validate a create body as OpenRouter would; ApiError (400) for what it refuses."""
    model_id = fields.get("model")
    if not isinstance(model_id, str) or not model_id:
        raise bad("'model' is required and must be a string", "model")
    spec = find_model(models, model_id)
    if spec is None and check_model:
        raise bad(f"Model {model_id} is not a video generation model", "model")
    passthrough = set(spec.get("allowed_passthrough_parameters", ())) if spec else set()
    for name in fields:
        if name not in _FIELDS and name not in passthrough:
            raise bad(f"Unknown parameter: '{name}'", name)
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad("'prompt' is required and must be a non-empty string", "prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise bad("'prompt' is too long", "prompt")
    seconds = _duration(fields.get("duration"), spec)
    size, resolution = _frame(fields, spec)
    frame_types = _frame_images(fields.get("frame_images"), spec)
    seed = fields.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise bad("'seed' must be an integer from 0 to 4294967295", "seed")
        if spec is not None and not spec.get("seed"):
            raise bad(f"{model_id} does not take a seed", "seed")
    audio = fields.get("generate_audio")
    if audio is not None and not isinstance(audio, bool):
        raise bad(f"'generate_audio' must be a boolean, not {type_name(audio)}", "generate_audio")
    return OpenRouterJob(
        model=model_id,
        prompt=prompt,
        seconds=seconds,
        size=size,
        resolution=resolution,
        cost=price_per_second(spec, resolution) * seconds,
        frame_types=frame_types,
        seed=seed,
        generate_audio=audio,
    )


def price_per_second(spec: Mapping[str, Any] | None, resolution: str) -> Decimal:
    skus = spec.get("pricing_skus", {}) if spec else {}
    raw = skus.get(f"per-video-second-{resolution}", skus.get("per-video-second", "0.10"))
    return Decimal(str(raw))


def _duration(value: object, spec: Mapping[str, Any] | None) -> int:
    if value is None:
        allowed = spec.get("supported_durations") if spec else None
        return int(allowed[0]) if allowed else DEFAULT_SECONDS
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"'duration' must be an integer, not {type_name(value)}", "duration")
    allowed = spec.get("supported_durations") if spec else None
    if allowed and value not in allowed:
        shown = ", ".join(str(d) for d in allowed)
        raise bad(f"duration {value} is not supported; supported: {shown}", "duration")
    if not 1 <= value <= MAX_SECONDS:
        raise bad(f"duration must be from 1 to {MAX_SECONDS}", "duration")
    return value


def _short_side(size: str) -> str:
    w, _, h = size.partition("x")
    return f"{min(int(w), int(h))}p"


def _frame(fields: Mapping[str, Any], spec: Mapping[str, Any] | None) -> tuple[str, str]:
    """(WxH to render, resolution priced) from `size` or `aspect_ratio` + `resolution`."""
    size = fields.get("size")
    if size is not None:
        if not isinstance(size, str):
            raise bad("'size' must be a string like 1280x720", "size")
        sizes = spec.get("supported_sizes") if spec else None
        w, sep, h = size.partition("x")
        if not sep or not w.isdigit() or not h.isdigit() or (sizes and size not in sizes):
            raise bad(f"size {size} is not supported", "size")
        return size, _short_side(size)
    aspects = (spec.get("supported_aspect_ratios") if spec else None) or ["16:9"]
    resolutions = (spec.get("supported_resolutions") if spec else None) or ["720p"]
    aspect = fields.get("aspect_ratio", aspects[0])
    resolution = fields.get("resolution", resolutions[0])
    if aspect not in aspects:
        raise bad(f"aspect_ratio {aspect} is not supported", "aspect_ratio")
    if resolution not in resolutions:
        raise bad(f"resolution {resolution} is not supported", "resolution")
    framed = _FRAMES.get((aspect, resolution))
    if framed is not None:
        return framed, resolution
    a, _, b = aspect.partition(":")
    short = int(resolution.removesuffix("p"))
    long = 2 * round(short * max(int(a), int(b)) / min(int(a), int(b)) / 2)
    return (f"{long}x{short}" if int(a) >= int(b) else f"{short}x{long}"), resolution


def _frame_images(value: object, spec: Mapping[str, Any] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise bad("'frame_images' must be an array of one or two images", "frame_images")
    supported = spec.get("supported_frame_images", FRAME_TYPES) if spec else FRAME_TYPES
    types: list[str] = []
    for item in value:
        if not isinstance(item, dict) or item.get("type") != "image_url":
            raise bad(
                "each frame image is {type: image_url, image_url, frame_type}", "frame_images"
            )
        frame_type = item.get("frame_type")
        if not isinstance(frame_type, str) or frame_type not in supported or frame_type in types:
            raise bad(f"frame_type {frame_type} is not supported here", "frame_images")
        url = item.get("image_url")
        url = url.get("url") if isinstance(url, dict) else None
        _check_data_url(url)
        types.append(frame_type)
    return tuple(types)


def _check_data_url(url: object) -> None:
    if not isinstance(url, str) or not url.startswith("data:image/"):
        raise bad("the simulator takes frame images as data:image/... URLs only", "frame_images")
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise bad("a frame image's data URL must be base64", "frame_images")
    try:
        data = base64.b64decode(payload, validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        raise bad("a frame image could not be read", "frame_images") from None


STATUS_WORDS = {"queued": "pending", "in_progress": "in_progress"}


def job_object(video: SimVideo, base_url: str) -> dict[str, Any]:
    """OpenRouter's job object: no prompt, size or seconds; `pending` while queued; the
    video's URL and `usage.cost` once completed; the error as a string."""
    url = f"{base_url}/videos/{video.id}"
    body: dict[str, Any] = {
        "id": video.id,
        "polling_url": url,
        "status": STATUS_WORDS.get(video.status, video.status),
        "progress": video.progress,
        "created_at": int(video.created_at),
    }
    if video.status == "completed":
        body["unsigned_urls"] = [f"{url}/content?index=0"]
        if video.cost is not None:
            body["usage"] = {"cost": float(video.cost)}
    if video.error is not None:
        body["error"] = video.error["message"]
    return body
