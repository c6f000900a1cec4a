"""What the simulator keeps of each job and each request: tests read these to see what the server
did and what it was sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web


@dataclass
class SimVideo:
    """One job as the simulator keeps it; `status` and `progress` are refreshed on every read and
    always use the reference API's words (profiles only change how they are reported)."""

    id: str
    model: str
    prompt: str
    size: str
    seconds: str
    created_at: float
    job_seconds: float
    kind: Literal["create", "remix", "edit", "extension"] = "create"
    source_video_id: str | None = None
    remixed_from_video_id: str | None = None
    reference: bytes | None = field(default=None, repr=False)
    reference_content_type: str | None = None
    # (code, message) when the job is going to fail.
    failure: tuple[str, str] | None = None
    status: str = "queued"
    progress: int = 0
    completed_at: float | None = None
    error: dict[str, str] | None = None
    # OpenRouter: what the job costs (`usage.cost` once completed), and the frame images sent.
    cost: Decimal | None = None
    frame_types: tuple[str, ...] = ()


@dataclass
class SimRequest:
    """One request as the server saw it, for tests to inspect."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    route: str | None = None
    json: Any = None
    form_fields: list[str] = field(default_factory=list)
    # Multipart file field name -> its declared content type.
    files: dict[str, str] = field(default_factory=dict)
    # None while unanswered, and for a dropped or hung request that got no answer.
    status: int | None = None


# Where a request's record rides on the aiohttp request, for the handlers to add what they parse.
ENTRY = web.RequestKey("sim_request", SimRequest)
