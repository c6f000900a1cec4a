"""The simulated Videos API: an aiohttp server that speaks the API under `/v1/videos...`, with the
reference API's validation and error envelope, a job lifecycle driven by a clock, real media, the
quirks of each backend profile, and fault injection for testing clients.

This module wires the parts together and runs them; each part lives in its own module:
the configuration (config.py), the jobs and their lifecycle (jobs.py), the clips they are served
(renders.py, media.py, prepared.py), each profile's ways (dialect.py, openrouter.py), the faults
(faults.py), the handlers (handlers.py, content.py) and the wire rules (wire.py, errors.py,
reference.py).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from aiohttp import web

from bot.sim.config import SimConfig
from bot.sim.content import ContentRoute
from bot.sim.dialect import Dialect
from bot.sim.errors import SERVER_ERROR_MESSAGE, ApiError
from bot.sim.faults import DROPPED, FaultKind, Faults, Handler, route_of
from bot.sim.handlers import VideoRoutes
from bot.sim.jobs import Jobs
from bot.sim.records import ENTRY, SimRequest, SimVideo

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024 * 1024
# The request log keeps at most this many entries (the oldest half goes when it is full), so a
# simulator embedded in a long-running bot does not grow without end.
REQUEST_LOG_MAX = 10_000


class SimServer:
    """One simulated backend. Tests read `videos` (the jobs by id) and `requests` (what was
    sent, oldest first), queue faults with `inject`, and move a SimClock with `advance`."""

    def __init__(
        self, config: SimConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config if config is not None else SimConfig()
        self.base_url = ""
        self.requests: list[SimRequest] = []
        self._clock = clock
        # One random source for every draw (ids, failures, faults), so a seed repeats a run.
        self._rng = random.Random(self.config.seed)
        self.dialect = Dialect(self.config)
        self.jobs = Jobs(self.config, clock, self._rng)
        self.faults = Faults(self.config, self._rng)
        self._routes = VideoRoutes(
            self.config, self.dialect, self.jobs, clock, lambda: self.base_url
        )
        self._content = ContentRoute(self.config, self.dialect, self.jobs)
        self._runner: web.AppRunner | None = None

    @property
    def videos(self) -> dict[str, SimVideo]:
        return self.jobs.videos

    # ------------------------------------------------------------------ running

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0 picks a free port); return the base URL ending in `/v1`."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        self.faults.start()
        await self.jobs.renders.open()
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{bound}/v1"
        return self.base_url

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES)
        routes = self._routes
        add = app.router.add_route
        add("POST", "/v1/videos", routes.create)
        add("GET", "/v1/videos", routes.list_videos)
        if self.config.profile == "openrouter":
            # Before /v1/videos/{video_id}; elsewhere "models" is just a video id not found.
            add("GET", "/v1/videos/models", routes.video_models)
        add("POST", "/v1/videos/edits", routes.edit)
        add("POST", "/v1/videos/extensions", routes.extend)
        add("GET", "/v1/videos/{video_id}", routes.retrieve)
        add("DELETE", "/v1/videos/{video_id}", routes.delete)
        add("GET", "/v1/videos/{video_id}/content", self._content.content)
        add("POST", "/v1/videos/{video_id}/remix", routes.remix)
        if self.dialect.has_route("GET /models"):
            add("GET", "/v1/models", routes.models)
        add("*", "/{tail:.*}", routes.unknown_route)
        return app

    async def stop(self) -> None:
        """Stop serving: hung requests end, renders under way finish, queued ones are dropped."""
        self.jobs.renders.stop_starting()
        self.faults.stop()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self.jobs.renders.close()

    async def settle(self) -> None:
        """Wait until every render started so far has finished (tests use this with a SimClock)."""
        await self.jobs.renders.settle()

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ test controls

    def inject(self, route: str, fault: FaultKind, *, times: int = 1) -> None:
        """Answer the next `times` requests to `route` (e.g. "GET /videos/{id}") with `fault`."""
        self.faults.inject(route, fault, times=times)

    def advance(self, seconds: float) -> None:
        """Move the clock on; only for a clock with `advance()` (a SimClock or its `now`)."""
        owner = getattr(self._clock, "__self__", self._clock)
        step: Callable[[float], None] | None = getattr(owner, "advance", None)
        if step is None:
            raise TypeError("advance() needs the server to run on a SimClock")
        step(seconds)

    # ------------------------------------------------------------------ every request

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Log the request, let faults and the handler answer it, and put any error in the
        profile's envelope."""
        entry = SimRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            route=route_of(request),
        )
        if len(self.requests) >= REQUEST_LOG_MAX:
            del self.requests[: REQUEST_LOG_MAX // 2]
        self.requests.append(entry)
        request[ENTRY] = entry
        dialect = self.dialect
        response: web.StreamResponse
        try:
            response = await self.faults.answer(
                request, entry.route, handler, dialect.check_auth, dialect.error
            )
        except ApiError as exc:
            response = dialect.error(exc)
        except web.HTTPException as exc:
            # aiohttp's own refusals (a body over the size limit, say) in the API's envelope.
            response = dialect.error(ApiError(exc.status, exc.reason or "request refused"))
        except Exception:
            log.exception("simulator failed on %s %s", request.method, request.path)
            response = dialect.error(ApiError(500, SERVER_ERROR_MESSAGE, type="server_error"))
        dialect.stamp(response, self._rng)
        if not request.get(DROPPED):
            entry.status = response.status
        if self.config.log_requests:
            log.info("%s %s -> %s", request.method, request.path_qs, entry.status or "no answer")
        return response


__all__ = ["SimServer"]
