"""Choosing the video backend: the configured server (its profile named or probed), or the
built-in simulator.

- Neither OPENAI_BASE_URL nor OPENAI_API_KEY set, or VIDEO_API_PROFILE=simulator: the simulator.
- OPENAI_BASE_URL set without a key: a server without auth; no auth header is sent at all.
- VIDEO_API_PROFILE=auto (the default): a few cheap reads at start pick the profile
  (bot/api/probe.py), and the log says what was found and why.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from bot.api.client import VideosClient
from bot.api.config import ClientConfig, make_http_client
from bot.api.openrouter import shape_from_size
from bot.api.probe import Choice, choose, probe
from bot.api.profiles import DEFAULT_AUTH_HEADERS, ProfileName
from bot.api.ratelimit import MinuteRateLimiter, RequestLimiter
from bot.catalog import Catalog
from bot.durations import backend_key
from bot.settings import Settings
from bot.shared_rate import SharedMinuteLimiter
from bot.sim import EmbeddedSim
from bot.store import Store

log = logging.getLogger(__name__)

# The simulator accepts any key; this one only marks requests as the bot's own.
SIM_API_KEY = "sim-local-key"


@dataclass
class Backend:
    client: VideosClient
    base_url: str
    simulated: bool
    profile: ProfileName = "openai"
    # Why this profile: set in settings, or what the probe found.
    reason: str = ""

    def use_catalog(self, catalog: Catalog) -> None:
        """Tell the client which aspect ratio and resolution each model's sizes stand for, for
        servers asked in those terms (OpenRouter): the catalog's own, a model it specifies by
        size is asked for by size, and one it does not know by the size's own ratio."""

        def shapes(model: str | None, size: str) -> tuple[str, str] | None:
            spec = catalog.get(model) if model else None
            if spec is None:
                return shape_from_size(size)
            return spec.shapes().get(size) if spec.by_shape else None

        self.client.shapes = shapes


def client_config(
    settings: Settings, *, base_url: str, api_key: SecretStr, profile: ProfileName | None = None
) -> ClientConfig:
    name = profile or settings.fixed_profile or "openai"
    return ClientConfig(
        base_url=base_url,
        api_key=api_key,
        auth_header=settings.auth_header(name),
        extra_headers=dict(settings.openai_extra_headers),
        capabilities=settings.capabilities(name),
        max_retries=settings.openai_max_retries,
        max_download_bytes=settings.video_max_download_mb * 1024 * 1024,
        download_timeout=settings.video_download_timeout_seconds,
        max_poll_after=settings.video_max_poll_after_seconds,
    )


def server_key(settings: Settings) -> SecretStr:
    """The configured key, or an empty one for a server without auth (no header is sent)."""
    key = settings.openai_api_key
    return key if key is not None and key.get_secret_value() else SecretStr("")


def request_limiter(
    settings: Settings, store: Store | None, local: MinuteRateLimiter, *, profile: ProfileName
) -> RequestLimiter:
    """OPENAI_REQUESTS_PER_MINUTE for the configured server: kept in the database every process
    shares (PostgreSQL), per server (its backend key: profile and a digest of its address, never
    its key); else this process's `local` limiter, as it is the only one on its database, at no
    database trip per request."""
    if store is None or not store.shared:
        return local
    bucket = backend_key(profile, settings.base_url)
    return SharedMinuteLimiter(store, bucket, settings.openai_requests_per_minute)


async def pick_profile(
    settings: Settings, http: httpx.AsyncClient, limiter: RequestLimiter
) -> Choice:
    """The profile VIDEO_API_PROFILE names, or (auto) the one a probe of the server points to."""
    fixed = settings.fixed_profile
    if fixed is not None:
        return Choice(fixed, "VIDEO_API_PROFILE says so")
    config = client_config(settings, base_url=settings.base_url, api_key=server_key(settings))
    findings = await probe(VideosClient(http, config, limiter=limiter))
    return choose(findings)


async def open_backend(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    http: httpx.AsyncClient | None = None,
    sim_poll_after_ms: int | None = None,
    store: Store | None = None,
) -> Backend:
    """Open the client (and the simulator, if used); `stack` closes them in reverse order.
    With a `store` several processes share, they share the requests-per-minute ceiling too."""
    if http is None:
        http = make_http_client(
            settings.openai_timeout_seconds, settings.openai_connect_timeout_seconds
        )
        stack.push_async_callback(http.aclose)
    # Each process runs its own embedded simulator, so there its ceiling is its own; and the
    # probe's few reads at start, before the profile (part of the shared ceiling's key) is
    # known, keep to this process's (on a shared database they are not in the shared log).
    limiter = MinuteRateLimiter(settings.openai_requests_per_minute)
    if settings.uses_simulator:
        # The simulator imitates the named profile (openai's under auto or simulator).
        profile = settings.fixed_profile or "openai"
        sim = EmbeddedSim(
            cache_dir=Path(settings.data_dir) / "sim-cache",
            job_seconds=settings.sim_job_seconds,
            retention_seconds=settings.sim_retention_seconds,
            profile=profile,
            poll_after_ms=sim_poll_after_ms,
            # It accepts what the catalog in use offers, whatever models that is.
            seconds=tuple(settings.catalog().all_seconds()),
            sizes=tuple(settings.catalog().all_sizes()),
        )
        base_url = await stack.enter_async_context(sim)
        config = client_config(
            settings, base_url=base_url, api_key=SecretStr(SIM_API_KEY), profile=profile
        )
        log.info("video backend: simulator")
        return Backend(
            VideosClient(http, config, limiter=limiter),
            base_url,
            simulated=True,
            profile=profile,
            reason="the built-in simulator",
        )
    choice = await pick_profile(settings, http, limiter)
    config = client_config(
        settings, base_url=settings.base_url, api_key=server_key(settings), profile=choice.profile
    )
    shown = "video backend: %s (profile %s, chosen because %s)"
    if choice.confident:
        log.info(shown, settings.base_url, choice.profile, choice.reason)
    else:
        log.warning(
            shown + "; run `python -m videobot doctor` or set VIDEO_API_PROFILE",
            settings.base_url,
            choice.profile,
            choice.reason,
        )
    if settings.has_key and config.auth_header != DEFAULT_AUTH_HEADERS[choice.profile]:
        log.warning(
            "OPENAI_AUTH_HEADER=%s, but %s servers take the key in %s; "
            "run `python -m videobot doctor` if requests are refused",
            config.auth_header,
            choice.profile,
            DEFAULT_AUTH_HEADERS[choice.profile],
        )
    return Backend(
        VideosClient(
            http, config, limiter=request_limiter(settings, store, limiter, profile=choice.profile)
        ),
        settings.base_url,
        simulated=False,
        profile=choice.profile,
        reason=choice.reason,
    )
