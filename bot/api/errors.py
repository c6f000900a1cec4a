"""One exception hierarchy for the Videos API, mapped in one place from responses and transport
errors.

A server's words are untrusted: an error's message is the server's text only after redaction (no
key, no token, one bounded line; an HTML page becomes "HTTP 502 from the video service"), and what
the bot shows people comes from `describe_error`, which uses the bot's own wording wherever the
server's text says nothing useful to them (401, 403, 5xx).
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from typing import Any

import httpx

from bot.redact import redact

# A server's error text is kept to this many characters (after folding onto one line).
MESSAGE_LIMIT = 300
# Codes, types and params are identifiers, never prose.
_FIELD_LIMIT = 64


class VideoAPIError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, {self.message!r})"


class BadRequestError(VideoAPIError):
    """400/409/413/415/422: the request is wrong; `param` names the field when the server says."""


class AuthenticationError(VideoAPIError):
    """401: the key is missing or wrong."""


class PermissionDeniedError(VideoAPIError):
    """403: the key may not do this."""


class NotFoundError(VideoAPIError):
    """404: no such video, or its assets are gone."""


class RateLimitError(VideoAPIError):
    """429: too many requests; `retry_after` is the server's advice in seconds, when given."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(VideoAPIError):
    """5xx: the server failed; for a create the outcome is unknown."""


class APITimeoutError(VideoAPIError):
    """No answer in time."""


class APIConnectionError(VideoAPIError):
    """The connection failed; `sent` says whether the request may have reached the server."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class UnsupportedOperation(VideoAPIError):
    """The configured backend profile does not offer this operation; nothing was sent."""


class InvalidResponseError(VideoAPIError):
    """The server answered, but with something the client cannot use: a redirect, a body that is
    not JSON or is too large, a value that does not validate or is out of range, an unsafe id.
    It concerns the request that got it (one job), never the service as a whole."""


class CreateOutcomeUnknown(VideoAPIError):
    """A create failed ambiguously and no matching job was found (yet).

    The server may or may not have started a billed job. Callers must not send the create again;
    they keep the attempt time and reconcile later with `VideosClient.find_created`.
    """

    def __init__(self, message: str, *, attempted_at: float, cause: VideoAPIError) -> None:
        super().__init__(message, status=cause.status, code=cause.code)
        self.attempted_at = attempted_at
        self.cause = cause


def is_outage(err: BaseException) -> bool:
    """Whether `err` says the service as a whole may be down (no connection, no answer in time,
    a 5xx), as opposed to something about one request or one job."""
    return isinstance(err, APIConnectionError | APITimeoutError | ServerError)


_BY_STATUS: dict[int, type[VideoAPIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: BadRequestError,
    413: BadRequestError,
    415: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}


def _finite_seconds(text: str, scale: float = 1.0) -> float | None:
    # A header is the server's word: "inf", "nan", "1e400" or a negative number means nothing.
    try:
        value = float(text) / scale
    except (ValueError, OverflowError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date) or `retry-after-ms`; None when
    absent or not a finite, non-negative number (callers cap it)."""
    ms = headers.get("retry-after-ms")
    if ms:
        seconds = _finite_seconds(ms, 1000)
        if seconds is not None:
            return seconds
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite_seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def error_from_parts(status: int, headers: httpx.Headers, body: bytes) -> VideoAPIError:
    """Map a non-2xx answer to the hierarchy from its status, headers and (bounded) body."""
    message, etype, param, code = _envelope(status, headers.get("content-type", ""), body)
    kwargs: dict[str, Any] = {"status": status, "type": etype, "param": param, "code": code}
    if status == 429:
        return RateLimitError(message, retry_after=parse_retry_after(headers), **kwargs)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else BadRequestError
    return cls(message, **kwargs)


def error_from_response(response: httpx.Response) -> VideoAPIError:
    """Map a non-2xx response (its body already read, and bounded by the caller) to the
    hierarchy."""
    return error_from_parts(response.status_code, response.headers, response.content)


def redirect_error(status: int) -> InvalidResponseError:
    """A 3xx: never followed (it could lead anywhere, with the key) and never content."""
    return InvalidResponseError(
        f"the video service answered with a redirect (HTTP {status})", status=status
    )


def describe_error(err: VideoAPIError) -> str:
    """The bot's own one-line wording for `err`, for people (no markup).

    The server's text is used only where it says something a member can act on (a 400-family
    answer: validation, moderation), and then only after redaction. For 401, 403 and 5xx it
    never is: OpenAI's 401 text quotes part of the key, and a gateway may echo the headers.
    """
    status = err.status
    if isinstance(err, CreateOutcomeUnknown):
        return f"the video service did not confirm the request ({describe_error(err.cause)})"
    if isinstance(err, AuthenticationError):
        return (
            "the video service refused the bot's key (HTTP 401): "
            "check OPENAI_API_KEY and OPENAI_AUTH_HEADER"
        )
    if isinstance(err, PermissionDeniedError):
        return "the video service does not allow this for the bot's key (HTTP 403)"
    if isinstance(err, ServerError):
        return f"the video service had an internal error (HTTP {status})"
    if isinstance(err, APITimeoutError):
        return "the video service could not be reached: it did not answer in time"
    if isinstance(err, APIConnectionError):
        return "the video service could not be reached"
    if isinstance(err, RateLimitError):
        return "the video service is busy and asked the bot to slow down (HTTP 429)"
    if isinstance(err, NotFoundError):
        return "the video service does not have this video (HTTP 404)"
    return redact(err.message, MESSAGE_LIMIT) or type(err).__name__


def error_from_transport(exc: httpx.TransportError, *, sent: bool) -> VideoAPIError:
    """Map an httpx transport error; `sent` is False only where the request cannot have arrived."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"the video service did not answer in time ({name})")
    return APIConnectionError(f"could not reach the video service ({name})", sent=sent)


def _envelope(
    status: int, content_type: str, body: bytes
) -> tuple[str, str | None, str | None, str | None]:
    # The API's envelope is {error: {message, type, param, code}}; gateways sometimes send
    # {message}, {detail} or plain text instead, which must still become a readable message.
    # Every piece is redacted and bounded here, so no caller can pass on a server's raw words.
    fallback = f"HTTP {status} from the video service"
    text = body.decode("utf-8", errors="replace").strip()
    if not text or _looks_like_markup(content_type, text):
        return fallback, None, None, None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return _message(text, fallback), None, None, None
    if isinstance(parsed, dict):
        err = parsed.get("error", parsed)
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail") or err.get("error")
            return (
                _message(message, fallback),
                scalar_text(err.get("type")),
                scalar_text(err.get("param")),
                scalar_text(err.get("code")),
            )
        if isinstance(err, str):
            return _message(err, fallback), None, None, None
    return fallback, None, None, None


def _looks_like_markup(content_type: str, text: str) -> bool:
    # An HTML page (a proxy's error page, a login form) says nothing a person should read.
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind in {"text/html", "application/xhtml+xml", "text/xml", "application/xml"} or (
        text.startswith("<")
    )


def _message(value: object, fallback: str) -> str:
    if isinstance(value, list | tuple) and value:
        # FastAPI's 422: {"detail": [{"loc": [...], "msg": "..."}]}: its first entry says enough.
        first = value[0]
        value = first.get("msg") if isinstance(first, dict) else first
    if value is None or isinstance(value, dict | list | tuple):
        return fallback
    text = value if isinstance(value, str) else scalar_text(value, MESSAGE_LIMIT)
    return redact(text, MESSAGE_LIMIT) or fallback


def scalar_text(value: object, limit: int = _FIELD_LIMIT) -> str | None:
    """A scalar from a server as bounded, redacted one-line text: a string, or an int, float or
    bool written out (vLLM-Omni sends integer error codes); anything else (objects, lists,
    null, non-finite numbers) is None."""
    text: str | None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value) if abs(value) < 10**18 else None
    elif isinstance(value, float) and math.isfinite(value):
        text = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, str):
        text = value
    else:
        text = None
    if text is None:
        return None
    return redact(text, limit) or None
