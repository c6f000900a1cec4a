"""Wire models of the Videos API, tolerant of the small ways servers that speak it differ.

Every field a server might omit is optional here, statuses are free strings classified by `phase()`,
and IDs stay opaque strings: the client must keep working against Azure, gateways and self-hosted
model servers, not only against the reference implementation.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

ContentVariant = Literal["video", "thumbnail", "spritesheet"]
ListOrder = Literal["asc", "desc"]

COMPLETED_STATUSES = frozenset({"completed"})
FAILED_STATUSES = frozenset({"failed", "cancelled", "canceled", "expired", "deleted"})


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


def _seconds_to_str(value: object) -> object:
    # `seconds` is a string on the wire; some servers send a number back. Normalise, never reject.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value


def _progress_to_int(value: object) -> object:
    # Progress may be missing, null, a float, or out of range; the display clamps it to 0..100.
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return max(0, min(100, int(value)))
    return None


Seconds = Annotated[str, BeforeValidator(_seconds_to_str)]
Progress = Annotated[int | None, BeforeValidator(_progress_to_int)]


class VideoError(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str | None = None
    message: str | None = None


class Video(BaseModel):
    """A video job as the API reports it."""

    model_config = ConfigDict(extra="allow")

    id: str
    object: str = "video"
    model: str | None = None
    status: str = "queued"
    progress: Progress = None
    created_at: int | None = None
    completed_at: int | None = None
    expires_at: int | None = None
    prompt: str | None = None
    size: str | None = None
    seconds: Seconds | None = None
    remixed_from_video_id: str | None = None
    error: VideoError | None = None

    @property
    def phase(self) -> Phase:
        return phase(self.status)


class VideoList(BaseModel):
    model_config = ConfigDict(extra="allow")

    object: str = "list"
    data: list[Video] = Field(default_factory=list)
    first_id: str | None = None
    last_id: str | None = None
    # Some servers omit has_more; None means "unknown", and the pager then stops on a short page.
    has_more: bool | None = None


class DeletedVideo(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    object: str = "video.deleted"
    deleted: bool = True

    @classmethod
    def from_response(cls, body: dict[str, Any]) -> DeletedVideo:
        """Accept both shapes: the spec's `{object: video.deleted, deleted}` and a video with
        status `deleted`, which some self-hosted servers return instead."""
        if body.get("object") == "video" or "status" in body:
            return cls(
                id=str(body["id"]),
                object="video.deleted",
                deleted=str(body.get("status", "")).lower() == "deleted",
            )
        return cls.model_validate(body)


class ReferenceImage(BaseModel):
    """An image to send as multipart `input_reference`, already fitted to the requested size."""

    model_config = ConfigDict(frozen=True)

    data: bytes = Field(repr=False)
    filename: str
    content_type: Literal["image/jpeg", "image/png", "image/webp"]


class CreateVideo(BaseModel):
    """What the bot asks for; `None` fields are left to the server's defaults."""

    model_config = ConfigDict(frozen=True)

    prompt: str = Field(min_length=1, max_length=32000)
    model: str | None = None
    seconds: Seconds | None = None
    size: str | None = None

    def form(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}
