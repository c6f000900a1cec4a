"""The simulated API's wire rules: the values a request may carry and how each field of a
request is validated, with the reference API's wording wherever it is known."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from aiohttp import web

from bot.sim.errors import JSON_PARSE_MESSAGE, ApiError
from bot.sim.records import ENTRY

SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
SECONDS = ("4", "8", "12")
# An extension's added length; the stitched total may then exceed the create limits.
EXTEND_SECONDS = ("4", "8", "12", "16", "20")
VARIANTS = ("video", "thumbnail", "spritesheet")
DEFAULT_MODEL = "sora-2"
DEFAULT_SIZE = "720x1280"
DEFAULT_SECONDS = "4"
MAX_PROMPT_CHARS = 32000
DEFAULT_PAGE_LIMIT = 20


def type_name(value: object) -> str:
    """How the reference API names a JSON value's type in its messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, web.FileField):
        return "a file"
    return "an unsupported value"


def quoted(values: Collection[str], last: str) -> str:
    items = [f"'{v}'" for v in values]
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + f", {last} " + items[-1]


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, JSON_PARSE_MESSAGE) from None
    if not isinstance(body, dict):
        raise ApiError(
            400,
            f"Invalid type for body: expected an object, but got {type_name(body)} instead.",
            code="invalid_type",
        )
    return body


def reject_unknown(fields: Mapping[str, Any], allowed: Collection[str]) -> None:
    for name in fields:
        if name not in allowed:
            raise ApiError(
                400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter"
            )


def missing(name: str) -> ApiError:
    return ApiError(
        400,
        f"Missing required parameter: '{name}'.",
        param=name,
        code="missing_required_parameter",
    )


def string_field(
    fields: Mapping[str, Any],
    name: str,
    *,
    required: bool,
    max_length: int | None = None,
) -> str | None:
    """A non-empty string of at most `max_length` characters; None when absent and optional."""
    if name not in fields:
        if required:
            raise missing(name)
        return None
    value = fields[name]
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ApiError(
            400,
            f"Invalid type for '{name}': expected a string, but got {type_name(value)} instead.",
            param=name,
            code="invalid_type",
        )
    if not value:
        raise ApiError(
            400,
            f"Invalid '{name}': string too short. Expected a string with minimum length 1, "
            "but got an empty string instead.",
            param=name,
            code="string_below_min_length",
        )
    if max_length is not None and len(value) > max_length:
        raise ApiError(
            400,
            f"Invalid '{name}': string too long. Expected a string with maximum length "
            f"{max_length}, but got a string with length {len(value)} instead.",
            param=name,
            code="string_above_max_length",
        )
    return value


def prompt_field(fields: Mapping[str, Any]) -> str:
    prompt = string_field(fields, "prompt", required=True, max_length=MAX_PROMPT_CHARS)
    assert prompt is not None
    return prompt


def choice_field(
    fields: Mapping[str, Any],
    name: str,
    allowed: Collection[str],
    default: str | None,
    *,
    param: str | None = None,
) -> str:
    """One of `allowed` (strings only: a JSON number is a type error, as on the real API)."""
    param = param or name
    if name not in fields or fields[name] is None:
        if default is None:
            raise missing(param)
        return default
    value = fields[name]
    if not isinstance(value, str):
        raise ApiError(
            400,
            f"Invalid type for '{param}': expected one of {quoted(allowed, 'or')}, "
            f"but got {type_name(value)} instead.",
            param=param,
            code="invalid_type",
        )
    if value not in allowed:
        raise ApiError(
            400,
            f"Invalid value: '{value}'. Supported values are: {quoted(allowed, 'and')}.",
            param=param,
            code="invalid_value",
        )
    return value


def offered_default(allowed: Sequence[str], preferred: str) -> str:
    """The reference API's default where it is allowed, else the first allowed value (a
    simulator given another catalog's values)."""
    return preferred if preferred in allowed else allowed[0]


def parse_size(size: str) -> tuple[int, int]:
    w, _, h = size.partition("x")
    return int(w), int(h)


def video_id_field(fields: Mapping[str, Any], *, form: bool) -> str:
    """The `video: {id}` of an edit or extension (a form may send `video[id]` or JSON text)."""
    value = fields.get("video")
    if form and value is None and isinstance(fields.get("video[id]"), str):
        value = {"id": fields["video[id]"]}
    if form and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = {"id": value} if value.startswith("video_") else value
    if value is None:
        raise missing("video")
    if isinstance(value, web.FileField):
        raise ApiError(
            400,
            'The simulator edits and extends its own videos only: send video as {"id": ...}.',
            param="video",
            code="invalid_value",
        )
    if not isinstance(value, dict):
        raise ApiError(
            400,
            f"Invalid type for 'video': expected an object, but got {type_name(value)} instead.",
            param="video",
            code="invalid_type",
        )
    video_id = string_field(value, "id", required=False)
    if video_id is None:
        raise missing("video.id")
    return video_id


def parse_limit(raw: str | None, maximum: int) -> int:
    if raw is None:
        return min(DEFAULT_PAGE_LIMIT, maximum)
    try:
        limit = int(raw)
    except ValueError:
        raise ApiError(
            400,
            f"Invalid 'limit': expected an integer, but got '{raw}' instead.",
            param="limit",
            code="invalid_type",
        ) from None
    if limit < 0:
        raise ApiError(
            400,
            f"Invalid 'limit': integer below minimum value. Expected a value >= 0, "
            f"but got {limit} instead.",
            param="limit",
            code="integer_below_min_value",
        )
    if limit > maximum:
        raise ApiError(
            400,
            f"Invalid 'limit': integer above maximum value. Expected a value <= {maximum}, "
            f"but got {limit} instead.",
            param="limit",
            code="integer_above_max_value",
        )
    return limit


async def read_fields(request: web.Request) -> tuple[dict[str, Any], bool]:
    """The body's fields and whether it was JSON; the request log records what came."""
    entry = request[ENTRY]
    ctype = request.content_type
    if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
        try:
            form = await request.post()
        except ValueError as exc:
            raise ApiError(400, f"Could not parse the form body: {exc}") from None
        fields: dict[str, Any] = {}
        for name, value in form.items():
            fields.setdefault(name, value)
            if isinstance(value, web.FileField):
                entry.files[name] = value.content_type
            else:
                entry.form_fields.append(name)
        return fields, False
    if ctype in ("application/json", "application/octet-stream", ""):
        body = parse_json_object(await request.read())
        entry.json = body
        return body, True
    raise ApiError(
        400,
        f"Unsupported content type: '{ctype}'. This API method only accepts "
        "'application/json' and 'multipart/form-data' requests.",
        code="unsupported_content_type",
    )
