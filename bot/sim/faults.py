"""Fault injection: the routes a fault can hit, the faults a test queues for them, the random ones
a configuration asks for, and how each is answered (an error, a dropped connection, a request
left hanging, or any of those after the request was really carried out)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import Awaitable, Callable
from typing import Literal, get_args

from aiohttp import web

from bot.sim.config import SimConfig
from bot.sim.errors import OVERLOADED_MESSAGE, RATE_LIMIT_MESSAGE, SERVER_ERROR_MESSAGE, ApiError

FaultKind = Literal[
    "429",
    "500",
    "503",
    "drop",
    "hang",
    "500_after_action",
    "drop_after_action",
    "hang_after_action",
]
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))

# The routes faults can be injected into, as `METHOD /path` below /v1.
ROUTES = (
    "GET /models",
    "POST /videos",
    "GET /videos",
    "POST /videos/edits",
    "POST /videos/extensions",
    "GET /videos/{id}",
    "DELETE /videos/{id}",
    "GET /videos/{id}/content",
    "POST /videos/{id}/remix",
)
# A "hang" fault answers nothing for this long at most (or until the server stops).
HANG_CAP_SECONDS = 30.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Marks a request whose connection was dropped: it got no answer, whatever the handler returned.
DROPPED = web.RequestKey("sim_dropped", bool)


def normalise_route(route: str) -> str:
    """`GET /v1/videos/{video_id}` or `get /videos/{id}` as `GET /videos/{id}`."""
    method, _, path = route.strip().partition(" ")
    path = path.strip().removeprefix("/v1")
    path = path.replace("{video_id}", "{id}")
    return f"{method.upper()} {path}"


def route_of(request: web.Request) -> str | None:
    """The API route a request matched, one of ROUTES; None for anything else."""
    info = request.match_info.route.resource
    canonical = info.canonical if info is not None else ""
    if not canonical.startswith("/v1/videos") and canonical != "/v1/models":
        return None
    return normalise_route(f"{request.method} {canonical}")


def fault_error(kind: str, retry_after: float) -> ApiError:
    if kind == "429":
        seconds = max(0.0, retry_after)
        return ApiError(
            429,
            RATE_LIMIT_MESSAGE,
            type="requests",
            code="rate_limit_exceeded",
            headers={
                "Retry-After": str(math.ceil(seconds)),
                "retry-after-ms": str(int(seconds * 1000)),
            },
        )
    if kind == "503":
        return ApiError(503, OVERLOADED_MESSAGE, type="server_error", code="overloaded")
    return ApiError(500, SERVER_ERROR_MESSAGE, type="server_error")


class Faults:
    """The faults queued per route and drawn at random, applied around a route's handler."""

    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        self.config = config
        self._rng = rng
        self._queued: dict[str, list[FaultKind]] = {}
        self._stopping = asyncio.Event()

    def inject(self, route: str, fault: FaultKind, *, times: int = 1) -> None:
        """Answer the next `times` requests to `route` (e.g. "GET /videos/{id}") with `fault`."""
        key = normalise_route(route)
        if key not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of: {', '.join(ROUTES)}")
        if fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; one of: {', '.join(sorted(FAULT_KINDS))}")
        self._queued.setdefault(key, []).extend([fault] * times)

    def start(self) -> None:
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """End every hung request now."""
        self._stopping.set()

    async def answer(
        self,
        request: web.Request,
        route: str | None,
        handler: Handler,
        authorise: Callable[[web.Request], None],
        error_shape: Callable[[ApiError], web.StreamResponse],
    ) -> web.StreamResponse:
        """Run `handler` unless a fault answers first; an ApiError it raises becomes its answer
        (`error_shape`), so a fault after the action still follows it."""
        cfg = self.config
        if cfg.latency_ms > 0:
            await asyncio.sleep(cfg.latency_ms / 1000)
        queue = self._queued.get(route or "")
        fault = queue.pop(0) if queue else None
        if fault in ("429", "500", "503"):
            raise fault_error(fault, cfg.retry_after_seconds)
        if fault in ("drop", "hang"):
            if fault == "hang":
                await self._hang()
            return self._drop(request)
        if route is not None:
            # A queued fault answers whatever the key; the random ones only a request let in.
            authorise(request)
            if cfg.rate_limit_rate > 0 and self._rng.random() < cfg.rate_limit_rate:
                raise fault_error("429", cfg.retry_after_seconds)
            if cfg.server_error_rate > 0 and self._rng.random() < cfg.server_error_rate:
                acts = (
                    request.method == "POST" and self._rng.random() < cfg.server_error_after_action
                )
                if not acts:
                    raise fault_error(self._rng.choice(("500", "503")), cfg.retry_after_seconds)
                fault = "500_after_action"
        try:
            response = await handler(request)
        except ApiError as exc:
            response = error_shape(exc)
        if fault == "500_after_action":
            raise fault_error("500", cfg.retry_after_seconds)
        if fault in ("drop_after_action", "hang_after_action"):
            if fault == "hang_after_action":
                await self._hang()
            return self._drop(request)
        return response

    async def _hang(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), HANG_CAP_SECONDS)

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        # Close the connection without a byte of answer; the response below is never sent.
        request[DROPPED] = True
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=204)
