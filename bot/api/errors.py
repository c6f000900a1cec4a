"""One exception hierarchy for the Videos API, mapped in one place from responses and transport
errors.

Messages carry what the server said and never a request header, so an API key cannot leak through
an exception's text or repr.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx


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


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds to wait from `Retry-After` (seconds or HTTP date) or `retry-after-ms`."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def error_from_response(response: httpx.Response) -> VideoAPIError:
    """Map a non-2xx response (its body already read) to the hierarchy."""
    status = response.status_code
    message, etype, param, code = _envelope(response)
    kwargs: dict[str, Any] = {"status": status, "type": etype, "param": param, "code": code}
    if status == 429:
        return RateLimitError(message, retry_after=parse_retry_after(response.headers), **kwargs)
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else BadRequestError
    return cls(message, **kwargs)


def error_from_transport(exc: httpx.TransportError, *, sent: bool) -> VideoAPIError:
    """Map an httpx transport error; `sent` is False only where the request cannot have arrived."""
    name = type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"the video service did not answer in time ({name})")
    return APIConnectionError(f"could not reach the video service ({name})", sent=sent)


def _envelope(response: httpx.Response) -> tuple[str, str | None, str | None, str | None]:
    # The API's envelope is {error: {message, type, param, code}}; gateways sometimes send
    # {message}, {detail} or plain text instead, which must still become a readable message.
    fallback = f"HTTP {response.status_code} from the video service"
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return (text[:300] or fallback), None, None, None
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            message = err.get("message") or err.get("detail") or fallback
            return (
                str(message)[:1000],
                _opt_str(err.get("type")),
                _opt_str(err.get("param")),
                _opt_str(err.get("code")),
            )
        if isinstance(err, str):
            return err[:1000], None, None, None
    return fallback, None, None, None


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
