"""How the client talks to one video server: its address, key, capabilities, retries and the
bounds on what it accepts; and the one `httpx.AsyncClient` a process uses for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import httpx
from pydantic import SecretStr

from bot.api.profiles import Capabilities

# `openai-poll-after-ms` is advice: above this it is capped, and a non-finite one ignored.
MAX_POLL_AFTER = 60.0


@dataclass(frozen=True)
class ClientConfig:
    base_url: str
    api_key: SecretStr = field(repr=False)
    auth_header: Literal["authorization", "api-key"] = "authorization"
    extra_headers: dict[str, str] = field(default_factory=dict)
    capabilities: Capabilities = field(default_factory=Capabilities)
    max_retries: int = 4
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    # Server and bot clocks differ; a job created this much before the attempt still matches.
    clock_skew: float = 30.0
    # A create's retries (429, connection refused) wait at most this long in all, so the job
    # it makes is created within a known window after the attempt.
    create_retry_budget: float = 60.0
    # How long after the attempt a job may have been created and still be the attempt's own;
    # None: the read timeout plus the create retry budget plus the clock skew.
    adopt_window: float | None = None
    # Pages one listing reads at most (a server whose `has_more` never ends must not be paged
    # forever).
    max_list_pages: int = 5
    # Longest an answer's body may take to arrive once its headers have (a trickle of one byte
    # per read timeout would otherwise hold a request for hours); None: the read timeout.
    body_deadline: float | None = None
    # A download larger than this, or not finished within the deadline, is refused.
    max_download_bytes: int = 500 * 1024 * 1024
    download_timeout: float = 600.0
    # The longest wait an `openai-poll-after-ms` hint may ask for (a server asking for days
    # would stop polling for good).
    max_poll_after: float = MAX_POLL_AFTER


def make_http_client(timeout: float = 60.0, connect_timeout: float = 10.0) -> httpx.AsyncClient:
    """The one `httpx.AsyncClient` a process uses for the video API."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        follow_redirects=False,
    )
