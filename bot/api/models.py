"""Wire models of the Videos API, tolerant of the small ways servers that speak it differ.

Every field a server might omit is optional here, statuses are free strings classified by `phase()`,
and IDs stay opaque strings: the client must keep working against Azure, gateways and self-hosted
model servers, not only against the reference implementation.

Tolerant does not mean trusting: a value that is the wrong type or out of range becomes None (or
is clamped) instead of failing the whole object, numbers must be finite, text a server sends is
redacted and bounded, and an id must be safe to put into a path. Only a missing or unsafe `id`,
or a status that is not a word at all, makes a video unreadable.
"""

from __future__ import annotations

import enum
import math
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

from bot.api.errors import scalar_text
from bot.redact import redact

ContentVariant = Literal["video", "thumbnail", "spritesheet"]
ListOrder = Literal["asc", "desc"]

COMPLETED_STATUSES = frozenset({"completed"})
FAILED_STATUSES = frozenset({"failed", "cancelled", "canceled", "expired", "deleted"})
_USUAL_STATUSES = (
    COMPLETED_STATUSES
    | FAILED_STATUSES
    | {
        "queued",
        "in_progress",
        "processing",
        "pending",
    }
)


class Phase(enum.Enum):
    """What a status means for the bot; unknown statuses are RUNNING until the job's deadline."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


def phase(status: str) -> Phase:
    s = status.lower()
    if s in COMPLETED_STATUSES:
        return Phase.COMPLETED
    if s in FAILED_STATUSES:
        return Phase.FAILED
    return Phase.RUNNING


def parse_size(size: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720); ValueError for anything else."""
    w, sep, h = size.lower().partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) <= 0 or int(h) <= 0:
        raise ValueError(f"size must look like 1280x720, got {size!r}")
    return int(w), int(h)


# Longest id the bot accepts: ids go into URLs, file names and database rows.
MAX_ID_LENGTH = 256
# Timestamps outside 2000-01-01 .. 2100-01-01 (UTC) are not believed.
MIN_TIMESTAMP = 946_684_800
MAX_TIMESTAMP = 4_102_444_800
# Bounds on a server's text: a status or a code is a word, a message a line. (Prompts, sizes and
# models are compared, not shown, and kept as sent; the JSON cap bounds them.)
_STATUS_LIMIT = 64
_FIELD_TEXT = 64
_TEXT_LIMIT = 300


def id_problem(value: object) -> str | None:
    """Why `value` cannot be used as a video id (it goes into URL paths and file names), or None.

    Non-empty, at most MAX_ID_LENGTH characters, printable, no `/` (nor `\\`, a separator on
    some file systems), and not `.` or `..`.
    """
    if not isinstance(value, str):
        return "not a string"
    if not value:
        return "empty"
    if len(value) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters"
    if value in {".", ".."}:
        return "a path segment"
    if "/" in value or "\\" in value:
        return "contains a slash"
    if not value.isprintable():
        return "contains control characters"
    return None


def _checked_id(value: str) -> str:
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(f"unsafe id: {problem}")
    return value


def _id_in(value: object) -> object:
    # Some servers number their jobs; an integer id is as good as a string.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _seconds_to_str(value: object) -> object:
    # `seconds` is a string on the wire; some servers send a number back. Normalise; a value
    # that is no length at all (an object, inf, nan) is None, never a failed video.
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = _finite(value)
        if number is None:
            return None
        return str(int(number)) if number.is_integer() else str(number)
    if isinstance(value, str):
        return redact(value, _FIELD_TEXT) or None
    return None


def _progress_to_int(value: object) -> object:
    # Progress may be missing, null, a float, a string, out of range or not finite (`1e400`
    # parses as infinity): the bot shows 0..100 or nothing.
    if value is None or isinstance(value, bool):
        return None
    number = _finite(value)
    if number is None:
        return None
    return int(max(0.0, min(100.0, number)))


def _timestamp(value: object) -> object:
    # Unix seconds; `10**30`, infinity or a date before 2000 is a server's mistake, not a time.
    number = _finite(value)
    if number is None or not MIN_TIMESTAMP <= number <= MAX_TIMESTAMP:
        return None
    return int(number)


def _bounded_text(limit: int) -> BeforeValidator:
    # Any scalar as one redacted, bounded line (an integer error code included); else None.
    return BeforeValidator(lambda value: scalar_text(value, limit))


def _status(value: object) -> object:
    # Any status word is accepted and shown by name until the deadline; a null or non-finite
    # one is "unknown" (still running as far as the bot can tell). An object or array is no
    # status at all: the job cannot be read from this answer.
    if isinstance(value, str) and value.strip():
        # The usual words skip the redaction regexes: a round reads hundreds of jobs.
        return value if value in _USUAL_STATUSES else redact(value, _STATUS_LIMIT)
    if isinstance(value, dict | list | tuple):
        raise ValueError("status must be a word")
    if not isinstance(value, bool) and isinstance(value, int | float):
        return str(value) if _finite(value) is not None else "unknown"
    return "unknown"


# A job's reported cost above this (USD) is no cost a video has: it is not believed.
MAX_REPORTED_COST = 10_000.0


def _cost(value: object) -> object:
    # `usage.cost` (OpenRouter), in dollars: a finite number from 0 to MAX_REPORTED_COST, given
    # as a number or a numeric string; anything else is None (no reported cost), never an error.
    number = _finite(value)
    if number is None or not 0 <= number <= MAX_REPORTED_COST:
        return None
    return number


def _plain_text(value: object) -> object:
    # A field compared as it is (prompt, size, model): a string or None, never an error.
    return value if isinstance(value, str) else None


Seconds = Annotated[str | None, BeforeValidator(_seconds_to_str)]
Progress = Annotated[int | None, BeforeValidator(_progress_to_int)]
Timestamp = Annotated[int | None, BeforeValidator(_timestamp)]
VideoId = Annotated[str, BeforeValidator(_id_in), AfterValidator(_checked_id)]
OptionalId = Annotated[
    str | None, BeforeValidator(lambda v: v if v is None or id_problem(v) is None else None)
]
Status = Annotated[str, BeforeValidator(_status)]
Cost = Annotated[float | None, BeforeValidator(_cost)]
ShortText = Annotated[str | None, _bounded_text(_FIELD_TEXT)]
Message = Annotated[str | None, _bounded_text(_TEXT_LIMIT)]
PlainText = Annotated[str | None, BeforeValidator(_plain_text)]


class VideoError(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # vLLM-Omni sends `{"code": 500}`: any scalar is kept as text, anything else dropped.
    code: ShortText = None
    message: Message = None


def _error(value: object) -> object:
    # An error that is a bare string, or not an object at all, must not fail the whole video.
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        return {"message": value}
    return None


class Video(BaseModel):
    """A video job as the API reports it.

    Only the fields the bot uses are kept: whatever else a server adds (timings, usage, its
    own structures of any size or depth) is dropped at parse time.
    """

    model_config = ConfigDict(extra="ignore")

    id: VideoId
    object: ShortText = "video"
    model: PlainText = None
    status: Status = "queued"
    progress: Progress = None
    created_at: Timestamp = None
    completed_at: Timestamp = None
    expires_at: Timestamp = None
    prompt: PlainText = None
    size: PlainText = None
    seconds: Seconds = None
    remixed_from_video_id: OptionalId = None
    error: Annotated[VideoError | None, BeforeValidator(_error)] = None
    # What the server says the finished job cost, in USD (OpenRouter's `usage.cost`), when it
    # says; checked finite and not negative. The ledger may settle at it.
    cost_usd: Cost = Field(
        default=None, validation_alias=AliasChoices(AliasPath("usage", "cost"), "cost_usd")
    )

    @property
    def phase(self) -> Phase:
        return phase(self.status)


def _has_more(value: object) -> object:
    return value if isinstance(value, bool) else None


class VideoList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    object: ShortText = "list"
    data: list[Video] = Field(default_factory=list)
    first_id: OptionalId = None
    last_id: OptionalId = None
    # Some servers omit has_more; None means "unknown", and the pager then stops on a short page.
    has_more: Annotated[bool | None, BeforeValidator(_has_more)] = None
    # Items that did not parse but carry a usable id: their jobs are read one by one instead.
    unreadable_ids: list[str] = Field(default_factory=list)

    @classmethod
    def parse(cls, body: Any) -> VideoList:
        """A page from a decoded JSON body, item by item: one odd item never hides the others.

        An item that does not parse is skipped (its id listed in `unreadable_ids` when it has a
        usable one); ValueError only when the page itself is not a page.
        """
        if not isinstance(body, dict):
            raise ValueError("a list answer must be an object")
        items = body.get("data", [])
        if items is None:
            items = []
        if not isinstance(items, list):
            raise ValueError("a list answer's data must be an array")
        videos: list[Video] = []
        unreadable: list[str] = []
        for item in items:
            try:
                videos.append(Video.model_validate(item))
            except (ValidationError, ValueError, TypeError, OverflowError, RecursionError):
                vid = _id_in(item.get("id")) if isinstance(item, dict) else None
                if isinstance(vid, str) and id_problem(vid) is None:
                    unreadable.append(vid)
        head = {k: body.get(k) for k in ("object", "first_id", "last_id", "has_more") if k in body}
        page = cls.model_validate(head)
        page.data = videos
        page.unreadable_ids = unreadable
        return page


class DeletedVideo(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: VideoId
    object: ShortText = "video.deleted"
    deleted: bool = True

    @classmethod
    def from_response(cls, body: Any) -> DeletedVideo:
        """Accept both shapes: the spec's `{object: video.deleted, deleted}` and a video with
        status `deleted`, which some self-hosted servers return instead. ValueError (a
        pydantic ValidationError) for anything else."""
        if not isinstance(body, dict):
            raise ValueError("a delete answer must be an object")
        if body.get("object") == "video" or "status" in body:
            status = body.get("status")
            return cls(
                id=body.get("id"),
                object="video.deleted",
                deleted=isinstance(status, str) and status.lower() == "deleted",
            )
        return cls.model_validate(body)


class ReferenceImage(BaseModel):
    """An image to send as multipart `input_reference`, already fitted to the requested size."""

    model_config = ConfigDict(frozen=True)

    data: bytes = Field(repr=False)
    filename: str
    content_type: Literal["image/jpeg", "image/png", "image/webp"]


# Where a server takes sound on/off: most call it `generate_audio`; vLLM-Omni `generate_sound`.
AUDIO_FIELD = "generate_audio"
# Seeds every server that takes one accepts: unsigned 32-bit.
SEED_LIMIT = 2**32


def micros_of_dollars(dollars: float) -> int:
    """A reported cost in USD (already checked finite and bounded) as ledger micro-dollars,
    rounded to the nearest micro-dollar through its decimal text, so 0.1 is exactly 100000."""
    return int((Decimal(repr(dollars)) * 1_000_000).to_integral_value(ROUND_HALF_EVEN))


class CreateVideo(BaseModel):
    """What the bot asks for; `None` fields are left to the server's defaults.

    The per-model options (`negative_prompt`, `seed`, `audio`) are set only for a model whose
    catalog entry takes them (see `Catalog.resolve`), and a body carries each only when set:
    a server that does not know a field may refuse the whole request for it."""

    model_config = ConfigDict(frozen=True)

    prompt: str = Field(min_length=1, max_length=32000)
    model: str | None = None
    seconds: Seconds = None
    size: str | None = None
    negative_prompt: str | None = Field(default=None, min_length=1, max_length=32000)
    seed: int | None = Field(default=None, ge=0, lt=SEED_LIMIT)
    # Sound on or off, sent as `audio_field` (the server's own name for it).
    audio: bool | None = None

    def json_body(self, *, audio_field: str = AUDIO_FIELD) -> dict[str, str | int | bool]:
        """The JSON create body: the fields that are set, `seed` a number and sound a boolean."""
        body: dict[str, str | int | bool] = {}
        for name in ("prompt", "model", "seconds", "size", "negative_prompt", "seed"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.audio is not None:
            body[audio_field] = self.audio
        return body

    def form(self, *, audio_field: str = AUDIO_FIELD) -> dict[str, str]:
        """The multipart create fields: the same as `json_body`, each as text (`true`/`false`
        for sound, as form parsers read booleans)."""
        return {
            name: ("true" if value else "false") if isinstance(value, bool) else str(value)
            for name, value in self.json_body(audio_field=audio_field).items()
        }
