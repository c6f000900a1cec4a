"""The simulated API's error answers: the envelope each kind of server wraps an error in, and
the reference API's wording for the errors every profile shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from aiohttp import web

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
AZURE_AUTH_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)

# How a server wraps its errors: OpenAI's `{"error": {message, type, param, code}}`, vLLM's (the
# same with an integer `code`), FastAPI's `{"detail": message}` (SGLang, FastVideo, and any
# FastAPI app's own refusals such as an unknown route), or Azure's `{"error": {code, message}}`.
ErrorShape = Literal["openai", "vllm", "fastapi", "azure", "openrouter"]


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
