"""OpenRouter's wording of the Videos API: how a create is put, and how its content is asked for.

OpenRouter (`https://openrouter.ai/api/v1`) takes `POST /videos` as JSON with `duration` an integer,
the frame as `resolution` + `aspect_ratio` (or a `size`), a reference image as `frame_images`
(an image URL, here a data URL of the fitted image, marked as the first frame), and `seed` and
`generate_audio` where given. It answers 202 `{id, polling_url, status: "pending"}`; a job is read
at `GET /videos/{id}` (the same place `polling_url` names: the client never follows a URL a server
hands it, because the key would go wherever that URL points), and its video at
`GET /videos/{id}/content?index=0`. What the job object says is read by `bot.api.models.Video`
as for every server (`pending` is a running status; `usage.cost` becomes `cost_usd`).

The bot deals in frame sizes (WxH) everywhere; OpenRouter's models are specified by aspect ratio
and resolution, or by size. Which it is, and which pair a size stands for, is the catalog's
knowledge (a model may make 960x960 for 1:1 at 720p), so the client is given a lookup
(`ShapeLookup`: None means "send the size"); without one, a size that is an exact small ratio is
read as that ratio at its short side, and any other is sent as `size`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from math import gcd
from typing import Any

from bot.api.models import CreateVideo, ReferenceImage, parse_size

# (model, size) -> (aspect ratio, resolution), or None: the model is asked for by size.
ShapeLookup = Callable[[str | None, str], tuple[str, str] | None]
# The only content index the bot asks for: a job makes one video.
CONTENT_INDEX = "0"


def shape_from_size(size: str) -> tuple[str, str] | None:
    """'1280x720' -> ('16:9', '720p'); None where the size is not a small exact ratio."""
    try:
        w, h = parse_size(size)
    except ValueError:
        return None
    d = gcd(w, h)
    a, b = w // d, h // d
    if max(a, b) > 32:
        return None
    return f"{a}:{b}", f"{min(w, h)}p"


def data_url(reference: ReferenceImage) -> str:
    encoded = base64.b64encode(reference.data).decode("ascii")
    return f"data:{reference.content_type};base64,{encoded}"


def create_body(
    request: CreateVideo,
    reference: ReferenceImage | None = None,
    *,
    shapes: ShapeLookup | None = None,
) -> dict[str, Any]:
    """The JSON body of `POST /videos` for `request` (and its fitted reference image). The
    per-model options (seed, sound, negative prompt) go where the request carries them; a
    negative prompt goes as a top-level field, which OpenRouter passes through to models that
    list it in `allowed_passthrough_parameters` (only those offer it: bot/discovery.py)."""
    body: dict[str, Any] = {"prompt": request.prompt}
    if request.model is not None:
        body["model"] = request.model
    if request.seconds is not None:
        # `seconds` is a checked string of digits by now (the catalog offers whole seconds).
        body["duration"] = int(float(request.seconds))
    if request.size is not None:
        shape = (
            shapes(request.model, request.size)
            if shapes is not None
            else shape_from_size(request.size)
        )
        if shape is not None:
            body["aspect_ratio"], body["resolution"] = shape
        else:
            body["size"] = request.size
    if reference is not None:
        body["frame_images"] = [
            {
                "type": "image_url",
                "image_url": {"url": data_url(reference)},
                "frame_type": "first_frame",
            }
        ]
    if request.seed is not None:
        body["seed"] = request.seed
    if request.audio is not None:
        body["generate_audio"] = request.audio
    if request.negative_prompt:
        body["negative_prompt"] = request.negative_prompt
    return body
