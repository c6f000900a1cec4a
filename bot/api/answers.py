"""Reading a server's answers safely: bodies streamed and capped while they are read, JSON decoded
and validated into the API's models, a download's type checked by its header and first bytes.

Anything a server sends that cannot be used becomes an `InvalidResponseError` about that one
request, never an exception of another kind.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
from pydantic import ValidationError

from bot.api.config import MAX_POLL_AFTER
from bot.api.errors import InvalidResponseError
from bot.redact import redact

_T = TypeVar("_T")

# An error body says what went wrong in a line or two; more than this is not read at all.
ERROR_BODY_LIMIT = 64 * 1024
# A job or a page of 100 jobs is a few kilobytes; a JSON answer larger than this is refused.
JSON_BODY_LIMIT = 4 * 1024 * 1024
# Bytes needed to tell a video or an image by its start.
MAGIC_BYTES = 16


@dataclass(frozen=True)
class Answer:
    """A whole (capped) answer: status, headers and body."""

    status: int
    headers: httpx.Headers
    body: bytes


def parse_poll_after(value: str | None, *, cap: float = MAX_POLL_AFTER) -> float | None:
    """`openai-poll-after-ms` in seconds, capped at `cap`; None when absent or not a
    finite, non-negative number."""
    if not value:
        return None
    try:
        ms = float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(ms) or ms < 0:
        return None
    return min(ms / 1000, cap)


def invalid(what: str, status: int | None = None) -> InvalidResponseError:
    suffix = f" (HTTP {status})" if status is not None else ""
    return InvalidResponseError(f"the video service answered with {what}{suffix}", status=status)


def too_large(limit: int, status: int) -> InvalidResponseError:
    return invalid(f"a download larger than {limit // (1024 * 1024)} MB", status)


def parse_answer(parser: Callable[[Any], _T], answer: Answer) -> _T:
    """Decode and validate a JSON answer; anything unusable is InvalidResponseError."""
    status = answer.status
    try:
        body = json.loads(answer.body)
    except (ValueError, RecursionError):
        # Not JSON, not UTF-8, or nested deeper than anything the API sends.
        raise invalid("something that is not JSON", status) from None
    try:
        return parser(body)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise invalid(f"an unreadable answer: {_reason(exc)}", status) from None


def _reason(exc: Exception) -> str:
    # Only the field's place and the kind of problem: a validation error's text may quote the
    # server's values.
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return redact(f"{where}: {first['type']}", 120)
    return type(exc).__name__


async def read_capped(response: httpx.Response, limit: int, *, truncate: bool) -> bytes:
    """At most `limit` bytes of the body; beyond it the rest is left unread (and the
    connection closed), or, for a body that must be whole, InvalidResponseError."""
    declared = response.headers.get("content-length")
    if (
        not truncate
        and declared is not None
        and declared.strip().isdigit()
        and int(declared) > limit
    ):
        raise invalid(f"an answer larger than {limit // 1024} KiB", response.status_code)
    body = bytearray()
    async for chunk in chunks(response):
        body += chunk
        if len(body) > limit:
            if truncate:
                return bytes(body[:limit])
            raise invalid(f"an answer larger than {limit // 1024} KiB", response.status_code)
    return bytes(body)


async def chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    # A body that claims an encoding it does not have is the server's fault, not a crash.
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.DecodingError as exc:
        raise invalid(
            f"a body that could not be decoded ({type(exc).__name__})", response.status_code
        ) from None


# Media types a server may give a download; a body typed as anything else (HTML, JSON, text)
# is an error page, whatever its status.
_GENERIC_TYPES = frozenset(
    {"application/octet-stream", "binary/octet-stream", "application/binary", "application/mp4"}
)


def check_content_type(value: str | None, kind: Literal["video", "image"], status: int) -> None:
    if not value:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media in _GENERIC_TYPES or media.startswith(f"{kind}/"):
        return
    wanted = "a video" if kind == "video" else "an image"
    raise invalid(f"{redact(media, 60)} where {wanted} was expected", status)


# Top-level boxes an ISO media file (mp4, mov) may start with; `ftyp` in all recent encoders.
_ISO_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"})


def check_magic(head: bytes, kind: Literal["video", "image"], status: int) -> None:
    if kind == "video":
        if head[4:8] in _ISO_BOXES or head.startswith(b"\x1a\x45\xdf\xa3"):
            return
        raise invalid("a body that is not a video (mp4, mov or webm)", status)
    if (
        (head.startswith(b"RIFF") and head[8:12] == b"WEBP")
        or head.startswith(b"\xff\xd8\xff")
        or head.startswith(b"\x89PNG\r\n\x1a\n")
    ):
        return
    raise invalid("a body that is not an image (webp, jpeg or png)", status)
