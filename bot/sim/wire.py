"""The simulated API's wire rules: accepted values, request validation and the error envelope,
with the reference API's wording wherever it is known."""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from PIL import Image, UnidentifiedImageError

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
# Declared content type -> the format Pillow must find in the bytes.
IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_FORMAT_TYPES = {fmt: ctype for ctype, fmt in IMAGE_TYPES.items()}
# Declared types that say nothing about the bytes: the bytes decide.
_UNTYPED = {"", "application/octet-stream"}

JSON_PARSE_MESSAGE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
    "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
    "valid JSON. If you have trouble figuring out how to fix this, please contact us through our "
    "help center at help.openai.com.)"
)
MISSING_KEY_MESSAGE = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank "
    "username) if you're accessing the API from your browser and are prompted for a username. You "
    "can obtain an API key from https://platform.openai.com/account/api-keys."
)
# The reference API echoes a masked key here; the simulator echoes none of it.
WRONG_KEY_MESSAGE = (
    "Incorrect API key provided. You can find your API key at "
    "https://platform.openai.com/account/api-keys."
)
RATE_LIMIT_MESSAGE = "Rate limit reached for requests. Please try again later."
SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
OVERLOADED_MESSAGE = "The engine is currently overloaded, please try again later."
SIZE_MISMATCH_MESSAGE = "Inpaint image must match the requested width and height"
MODERATION_MESSAGE = (
    "Your request was blocked by our moderation system. Please revise the prompt and try again."
)


# How a server wraps its errors: OpenAI's `{"error": {message, type, param, code}}`, vLLM's (the
# same with an integer `code`), FastAPI's `{"detail": message}` (SGLang, FastVideo, and any
# FastAPI app's own refusals such as an unknown route), or Azure's `{"error": {code, message}}`.
ErrorShape = Literal["openai", "vllm", "fastapi", "azure", "openrouter"]
AZURE_AUTH_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


class ApiError(Exception):
    """An error answer, by default in the reference API's envelope; `shape` forces another (a
    FastAPI app's own 404/405 are `{"detail": ...}` whatever the API's envelope is)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        shape: ErrorShape | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        self.shape = shape

    def body(self, shape: ErrorShape = "openai") -> dict[str, Any]:
        shape = self.shape or shape
        if shape == "fastapi":
            return {"detail": self.message}
        if shape == "azure":
            return {"error": {"code": self.code or str(self.status), "message": self.message}}
        if shape == "openrouter":
            # OpenRouter's envelope: the HTTP status as an integer code, and a message.
            return {"error": {"code": self.status, "message": self.message}}
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                # vLLM's envelope carries the HTTP status as an integer code.
                "code": self.status if shape == "vllm" else self.code,
            }
        }

    def response(self, shape: ErrorShape = "openai") -> web.Response:
        return web.json_response(self.body(shape), status=self.status, headers=self.headers)


def not_found_route(method: str, path: str) -> ApiError:
    return ApiError(404, f"Invalid URL ({method} {path})")


def no_such_video(video_id: str) -> ApiError:
    return ApiError(404, f"Video with id '{video_id}' not found.", param="video_id")


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


def _quoted(values: Collection[str], last: str) -> str:
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
            f"Invalid type for '{param}': expected one of {_quoted(allowed, 'or')}, "
            f"but got {type_name(value)} instead.",
            param=param,
            code="invalid_type",
        )
    if value not in allowed:
        raise ApiError(
            400,
            f"Invalid value: '{value}'. Supported values are: {_quoted(allowed, 'and')}.",
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


@dataclass(frozen=True)
class Reference:
    data: bytes
    content_type: str


def check_reference(data: bytes, declared: str | None, size: str) -> Reference:
    """The reference image if it is a jpeg, png or webp of exactly `size`, else the API's 400."""
    declared = (declared or "").split(";")[0].strip().lower()
    supported = _quoted(list(IMAGE_TYPES), "and")

    def unsupported(mimetype: str) -> ApiError:
        return ApiError(
            400,
            f"Invalid file 'input_reference': unsupported mimetype ('{mimetype}'). "
            f"Supported file formats are {supported}.",
            param="input_reference",
            code="unsupported_file",
        )

    if declared not in IMAGE_TYPES and declared not in _UNTYPED:
        raise unsupported(declared)
    try:
        with Image.open(io.BytesIO(data)) as image:
            found, dims = image.format, image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        raise ApiError(
            400,
            "Invalid file 'input_reference': the image could not be read. "
            f"Supported file formats are {supported}.",
            param="input_reference",
            code="invalid_image",
        ) from None
    if found not in _FORMAT_TYPES:
        raise unsupported(Image.MIME.get(found or "", "unknown"))
    if dims != parse_size(size):
        raise ApiError(400, SIZE_MISMATCH_MESSAGE, param="input_reference", code="invalid_value")
    return Reference(data, _FORMAT_TYPES[found])


def reference_from_object(value: object, size: str) -> Reference:
    """A JSON `input_reference`: `{image_url}` as a data: URL (nothing is fetched)."""
    if not isinstance(value, dict):
        raise ApiError(
            400,
            "Invalid type for 'input_reference': expected an object, "
            f"but got {type_name(value)} instead.",
            param="input_reference",
            code="invalid_type",
        )
    url = value.get("image_url")
    if "file_id" in value and url is None:
        raise ApiError(
            400,
            f"File '{value['file_id']}' not found; the simulator accepts uploads and data: URLs.",
            param="input_reference",
            code="invalid_value",
        )
    if not isinstance(url, str) or not url:
        raise missing("input_reference.image_url")
    header, sep, payload = url.partition(",")
    if not url.startswith("data:") or not sep or not header.endswith(";base64"):
        raise ApiError(
            400,
            "The simulator cannot fetch remote images; send a base64 data: URL or upload the file.",
            param="input_reference",
            code="invalid_value",
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(
            400,
            "Invalid 'input_reference.image_url': the data URL is not valid base64.",
            param="input_reference",
            code="invalid_value",
        ) from None
    return check_reference(data, header[len("data:") : -len(";base64")], size)


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
