"""Choosing the video backend: the configured API, or the built-in simulator when no key is set."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from bot.api.client import ClientConfig, VideosClient, make_http_client
from bot.api.ratelimit import MinuteRateLimiter
from bot.settings import Settings
from bot.sim import EmbeddedSim

log = logging.getLogger(__name__)

# The simulator accepts any bearer token; this one only marks requests as the bot's own.
SIM_API_KEY = "sim-local-key"


@dataclass
class Backend:
    client: VideosClient
    base_url: str
    simulated: bool


def client_config(settings: Settings, *, base_url: str, api_key: SecretStr) -> ClientConfig:
    return ClientConfig(
        base_url=base_url,
        api_key=api_key,
        auth_header=settings.openai_auth_header,
        extra_headers=dict(settings.openai_extra_headers),
        capabilities=settings.capabilities(),
        max_retries=settings.openai_max_retries,
    )


async def open_backend(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    http: httpx.AsyncClient | None = None,
    sim_poll_after_ms: int | None = None,
) -> Backend:
    """Open the client (and the simulator, if used); `stack` closes them in reverse order."""
    if http is None:
        http = make_http_client(
            settings.openai_timeout_seconds, settings.openai_connect_timeout_seconds
        )
        stack.push_async_callback(http.aclose)
    limiter = MinuteRateLimiter(settings.openai_requests_per_minute)
    if settings.uses_simulator:
        sim = EmbeddedSim(
            cache_dir=Path(settings.data_dir) / "sim-cache",
            job_seconds=settings.sim_job_seconds,
            retention_seconds=settings.sim_retention_seconds,
            profile=settings.video_api_profile,
            poll_after_ms=sim_poll_after_ms,
        )
        base_url = await stack.enter_async_context(sim)
        config = client_config(settings, base_url=base_url, api_key=SecretStr(SIM_API_KEY))
        return Backend(VideosClient(http, config, limiter=limiter), base_url, simulated=True)
    assert settings.openai_api_key is not None
    config = client_config(
        settings, base_url=settings.openai_base_url, api_key=settings.openai_api_key
    )
    return Backend(
        VideosClient(http, config, limiter=limiter), settings.openai_base_url, simulated=False
    )
