"""The simulated Videos API: an aiohttp server that speaks the API under `/v1/videos...`, with the
reference API's validation and error envelope, a job lifecycle driven by a clock, real media, the
quirks of each backend profile, and fault injection for testing clients.

Status is computed from the clock on every read, so there are no timers; only rendering runs in
the background (in a thread, never on the event loop). A job reports `in_progress` at 99% until
its media exists, so `completed` always means the content can be downloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args

from aiohttp import web

from bot.api.profiles import ProfileName
from bot.files import private_dir
from bot.sim import media
from bot.sim import openrouter as orouter
from bot.sim.wire import (
    AZURE_AUTH_MESSAGE,
    DEFAULT_MODEL,
    DEFAULT_SECONDS,
    DEFAULT_SIZE,
    EXTEND_SECONDS,
    IMAGE_TYPES,
    MISSING_KEY_MESSAGE,
    MODERATION_MESSAGE,
    OVERLOADED_MESSAGE,
    RATE_LIMIT_MESSAGE,
    SECONDS,
    SERVER_ERROR_MESSAGE,
    SIZES,
    VARIANTS,
    WRONG_KEY_MESSAGE,
    ApiError,
    ErrorShape,
    Reference,
    check_reference,
    choice_field,
    no_such_video,
    not_found_route,
    offered_default,
    parse_json_object,
    parse_limit,
    parse_size,
    prompt_field,
    reference_from_object,
    reject_unknown,
    string_field,
    video_id_field,
)

log = logging.getLogger(__name__)

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
_NO_DERIVED = frozenset(
    {"POST /videos/{id}/remix", "POST /videos/edits", "POST /videos/extensions"}
)
# Routes a profile's server does not have: a 404 (no such route).
_UNSUPPORTED: dict[str, frozenset[str]] = {
    "openai": frozenset(),
    "azure": frozenset(),
    "litellm": frozenset(),
    "vllm-omni": _NO_DERIVED,
    "sglang": _NO_DERIVED,
    "fastvideo": _NO_DERIVED | {"GET /models"},
    # OpenRouter: no job list, no delete, nothing made from a finished video.
    "openrouter": _NO_DERIVED | {"GET /videos", "DELETE /videos/{id}"},
}
# Routes LiteLLM's proxy knows but refuses with 405 (it has no delete, edits or extensions).
_NOT_ALLOWED: dict[str, frozenset[str]] = {
    "litellm": frozenset({"DELETE /videos/{id}", "POST /videos/edits", "POST /videos/extensions"}),
}
# Profiles that, like the reference API, refuse parameters they do not know.
_STRICT_PROFILES = frozenset({"openai", "azure", "litellm"})
# Each profile's error envelope.
_ERROR_SHAPES: dict[str, ErrorShape] = {
    "openai": "openai",
    "azure": "openai",
    "litellm": "openai",
    "vllm-omni": "vllm",
    "sglang": "fastapi",
    "fastvideo": "fastapi",
    "openrouter": "openrouter",
}
# Servers built on FastAPI answer an unknown route with its own `{"detail": "Not Found"}`.
_FASTAPI_PROFILES = frozenset({"litellm", "vllm-omni", "sglang", "fastvideo"})
# Self-hosted servers whose jobs never say `in_progress` and do not echo the prompt.
_QUEUED_THEN_DONE = frozenset({"sglang", "fastvideo"})
LITELLM_VERSION = "1.80.0"

# The first share of a job's time it reports `queued`; a failing job fails at FAIL_AT of its time.
QUEUED_SHARE = 0.1
FAIL_AT = 0.5
# A "hang" fault answers nothing for this long at most (or until the server stops).
HANG_CAP_SECONDS = 30.0
MAX_BODY_BYTES = 64 * 1024 * 1024
# Renders at once: each already keeps x264's threads busy.
RENDER_SLOTS = 2
# Rendered clips kept in the cache beyond those live jobs still use.
CACHE_MAX_CLIPS = 64
RENDER_VERSION = "1"
# The request log keeps at most this many entries (the oldest half goes when it is full), so a
# simulator embedded in a long-running bot does not grow without end.
REQUEST_LOG_MAX = 10_000
CONTENT_TYPES = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
POLL_AFTER_HEADER = "openai-poll-after-ms"


# An mp4 box header: a 32-bit size and a 4-letter type.
_BOX_HEADER = 8


@dataclass
class SimConfig:
    job_seconds: float = 20.0
    retention_seconds: float = 3600.0
    profile: ProfileName = "openai"
    # Sent as `openai-poll-after-ms` on retrieves, the client's hint for its poll interval.
    poll_after_ms: int | None = None
    # None: any non-empty key is accepted.
    api_key: str | None = None
    fail_rate: float = 0.0
    fail_code: str = "moderation_blocked"
    fail_message: str = MODERATION_MESSAGE
    moderation_word: str | None = None
    rate_limit_rate: float = 0.0
    retry_after_seconds: float = 1.0
    server_error_rate: float = 0.0
    # Of those random 5xx answers to a create, the share given after the job was really made:
    # the ambiguous case the client must reconcile instead of sending again.
    server_error_after_action: float = 0.0
    latency_ms: float = 0.0
    fps: int = 12
    seed: int | None = None
    cache_dir: Path | None = None
    page_limit_max: int = 100
    # Served videos grow by this many bytes (an mp4 `free` box): for streaming tests, < 4 GiB.
    pad_video_bytes: int = 0
    # Log every request at INFO (the command line does; in-process use stays quiet).
    log_requests: bool = False
    # The models GET /models lists (and, with `check_model`, the only ones a create may name).
    served_models: tuple[str, ...] = ("sora-2", "sora-2-pro")
    # Refuse a create naming a model not served, as LiteLLM ("Invalid model name") and the
    # newest vLLM-Omni ("Model mismatch") do.
    check_model: bool = False
    # The model a job reports instead of the one asked for: a deployment's base model (azure).
    # vLLM-Omni always reports its served model (the first of `served_models`).
    report_model: str | None = None
    # Whether a key is needed: None = the profile's way (fastvideo never; vllm-omni and sglang
    # only when `api_key` is set; the others always, any non-empty key unless `api_key` is set).
    auth: bool | None = None
    # The durations and sizes a create may ask for: the bot's embedded simulator takes those of
    # the catalog in use; the default is the reference API's.
    seconds: tuple[str, ...] = SECONDS
    sizes: tuple[str, ...] = SIZES
    # The video models the OpenRouter profile lists at GET /videos/models and validates creates
    # against (a model not listed is taken with generic limits unless `check_model`).
    openrouter_models: tuple[dict[str, Any], ...] = orouter.MODELS


class SimClock:
    """A clock tests move by hand: pass it (or its `now`) as the server's clock.

    It starts at the real time by default, so timestamps stay comparable with a client's own
    clock (a client looking for a job it created "just now" compares them).
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._now += seconds


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

    @property
    def media_key(self) -> str:
        text = f"{RENDER_VERSION}|{self.size}|{self.seconds}|{self.prompt}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


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


@dataclass
class _Media:
    task: asyncio.Task[dict[str, Path]]
    ready_at: float | None = None

    @property
    def failed(self) -> bool:
        return self.task.done() and (self.task.cancelled() or self.task.exception() is not None)

    @property
    def ready(self) -> bool:
        return self.task.done() and not self.failed and self.ready_at is not None


_ENTRY = web.RequestKey("sim_request", SimRequest)
_DROPPED = web.RequestKey("sim_dropped", bool)


class SimServer:
    def __init__(
        self, config: SimConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config if config is not None else SimConfig()
        self.base_url = ""
        self.videos: dict[str, SimVideo] = {}
        self.requests: list[SimRequest] = []
        self._clock = clock
        self._rng = random.Random(self.config.seed)
        # Every id ever created, in order: deleted ones stay usable as list cursors.
        self._order: list[str] = []
        self._faults: dict[str, list[FaultKind]] = {}
        self._media: dict[str, _Media] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._closing = False
        self._render_slots = asyncio.Semaphore(RENDER_SLOTS)
        self._cache_dir: Path | None = None
        self._own_cache: Path | None = None

    # ------------------------------------------------------------------ running

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on `host:port` (0 picks a free port); return the base URL ending in `/v1`."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already running")
        self._closing = False
        self._stopping = asyncio.Event()
        self._render_slots = asyncio.Semaphore(RENDER_SLOTS)
        if self.config.cache_dir is not None:
            self._cache_dir = Path(self.config.cache_dir)
            await asyncio.to_thread(private_dir, self._cache_dir)
        else:
            self._own_cache = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="video-sim-"))
            self._cache_dir = self._own_cache
        app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY_BYTES)
        add = app.router.add_route
        add("POST", "/v1/videos", self._create)
        add("GET", "/v1/videos", self._list)
        if self.config.profile == "openrouter":
            # Before /v1/videos/{video_id}; elsewhere "models" is just a video id not found.
            add("GET", "/v1/videos/models", self._video_models)
        add("POST", "/v1/videos/edits", self._edit)
        add("POST", "/v1/videos/extensions", self._extend)
        add("GET", "/v1/videos/{video_id}", self._retrieve)
        add("DELETE", "/v1/videos/{video_id}", self._delete)
        add("GET", "/v1/videos/{video_id}/content", self._content)
        add("POST", "/v1/videos/{video_id}/remix", self._remix)
        if "GET /models" not in _UNSUPPORTED[self.config.profile]:
            add("GET", "/v1/models", self._models)
        add("*", "/{tail:.*}", self._unknown_route)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
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

    async def stop(self) -> None:
        """Stop serving: hung requests end, renders under way finish, queued ones are dropped."""
        self._closing = True
        self._stopping.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        await self.settle()
        if self._own_cache is not None:
            await asyncio.to_thread(shutil.rmtree, self._own_cache, ignore_errors=True)
            self._own_cache = None
            self._media.clear()

    async def settle(self) -> None:
        """Wait until every render started so far has finished (tests use this with a SimClock)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ test controls

    def inject(self, route: str, fault: FaultKind, *, times: int = 1) -> None:
        """Answer the next `times` requests to `route` (e.g. "GET /videos/{id}") with `fault`."""
        key = _normalise_route(route)
        if key not in ROUTES:
            raise ValueError(f"unknown route {route!r}; one of: {', '.join(ROUTES)}")
        if fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault {fault!r}; one of: {', '.join(sorted(FAULT_KINDS))}")
        self._faults.setdefault(key, []).extend([fault] * times)

    def advance(self, seconds: float) -> None:
        """Move the clock on; only for a clock with `advance()` (a SimClock or its `now`)."""
        owner = getattr(self._clock, "__self__", self._clock)
        step: Callable[[float], None] | None = getattr(owner, "advance", None)
        if step is None:
            raise TypeError("advance() needs the server to run on a SimClock")
        step(seconds)

    # ------------------------------------------------------------------ middleware and faults

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        entry = SimRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            route=_route_of(request),
        )
        if len(self.requests) >= REQUEST_LOG_MAX:
            del self.requests[: REQUEST_LOG_MAX // 2]
        self.requests.append(entry)
        request[_ENTRY] = entry
        shape = _ERROR_SHAPES[self.config.profile]
        try:
            response = await self._answer(request, handler, entry)
        except ApiError as exc:
            response = exc.response(shape)
        except web.HTTPException as exc:
            # aiohttp's own refusals (a body over the size limit, say) in the API's envelope.
            response = ApiError(exc.status, exc.reason or "request refused").response(shape)
        except Exception:
            log.exception("simulator failed on %s %s", request.method, request.path)
            response = ApiError(500, SERVER_ERROR_MESSAGE, type="server_error").response(shape)
        if self.config.profile == "litellm" and not response.prepared:
            # LiteLLM's proxy stamps its answers; a client can tell it apart by these.
            response.headers["x-litellm-version"] = LITELLM_VERSION
            response.headers["x-litellm-call-id"] = f"{self._rng.getrandbits(128):032x}"
        if not request.get(_DROPPED):
            entry.status = response.status
        if self.config.log_requests:
            log.info("%s %s -> %s", request.method, request.path_qs, entry.status or "no answer")
        return response

    async def _answer(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        entry: SimRequest,
    ) -> web.StreamResponse:
        cfg = self.config
        if cfg.latency_ms > 0:
            await asyncio.sleep(cfg.latency_ms / 1000)
        queue = self._faults.get(entry.route or "")
        fault = queue.pop(0) if queue else None
        if fault in ("429", "500", "503"):
            raise _fault_error(fault, cfg.retry_after_seconds)
        if fault in ("drop", "hang"):
            if fault == "hang":
                await self._hang()
            return self._drop(request)
        if entry.route is not None:
            self._check_auth(request)
            if cfg.rate_limit_rate > 0 and self._rng.random() < cfg.rate_limit_rate:
                raise _fault_error("429", cfg.retry_after_seconds)
            if cfg.server_error_rate > 0 and self._rng.random() < cfg.server_error_rate:
                acts = (
                    request.method == "POST" and self._rng.random() < cfg.server_error_after_action
                )
                if not acts:
                    raise _fault_error(self._rng.choice(("500", "503")), cfg.retry_after_seconds)
                fault = "500_after_action"
        try:
            response = await handler(request)
        except ApiError as exc:
            response = exc.response(_ERROR_SHAPES[cfg.profile])
        if fault == "500_after_action":
            raise _fault_error("500", cfg.retry_after_seconds)
        if fault in ("drop_after_action", "hang_after_action"):
            if fault == "hang_after_action":
                await self._hang()
            return self._drop(request)
        return response

    async def _hang(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), HANG_CAP_SECONDS)

    def _drop(self, request: web.Request) -> web.StreamResponse:
        # Close the connection without a byte of answer; the response below is never sent.
        request[_DROPPED] = True
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=204)

    def _auth_required(self) -> bool:
        cfg = self.config
        if cfg.auth is not None:
            return cfg.auth
        if cfg.profile == "fastvideo":
            return False
        if cfg.profile in ("vllm-omni", "sglang"):
            return cfg.api_key is not None
        return True

    def _check_auth(self, request: web.Request) -> None:
        if not self._auth_required():
            return
        expected = self.config.api_key
        key = request.headers.get("api-key", "").strip()
        if self.config.profile == "azure":
            # Azure takes the key in `api-key` (Bearer only carries an Entra token).
            if not key or (expected is not None and key != expected):
                raise ApiError(401, AZURE_AUTH_MESSAGE, code="401", shape="azure")
            return
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            key = token.strip()
        if not key:
            if self.config.profile == "openrouter":
                raise ApiError(401, "No auth credentials found")
            raise ApiError(401, MISSING_KEY_MESSAGE)
        if expected is not None and key != expected:
            raise ApiError(401, WRONG_KEY_MESSAGE, code="invalid_api_key")

    def _require_route(self, request: web.Request) -> None:
        route = request[_ENTRY].route
        if route in _NOT_ALLOWED.get(self.config.profile, ()):
            raise ApiError(405, "Method Not Allowed", shape="fastapi")
        if route in _UNSUPPORTED[self.config.profile]:
            raise self._no_route(request)

    def _no_route(self, request: web.Request) -> ApiError:
        if self.config.profile in _FASTAPI_PROFILES:
            return ApiError(404, "Not Found", shape="fastapi")
        if self.config.profile == "azure":
            return ApiError(404, "Resource not found", code="404", shape="azure")
        return not_found_route(request.method, request.path)

    async def _unknown_route(self, request: web.Request) -> web.StreamResponse:
        raise self._no_route(request)

    # ------------------------------------------------------------------ request bodies

    async def _read_fields(self, request: web.Request) -> tuple[dict[str, Any], bool]:
        """The body's fields and whether it was JSON; the request log records what came."""
        entry: SimRequest = request[_ENTRY]
        ctype = request.content_type
        if ctype in ("multipart/form-data", "application/x-www-form-urlencoded"):
            try:
                form = await request.post()
            except ValueError as exc:
                raise ApiError(400, f"Could not parse the form body: {exc}") from None
            fields: dict[str, Any] = {}
            for name, value in form.items():
                fields.setdefault(name, value)
                if isinstance(value, web.FileField):
                    entry.files[name] = value.content_type
                else:
                    entry.form_fields.append(name)
            return fields, False
        if ctype in ("application/json", "application/octet-stream", ""):
            body = parse_json_object(await request.read())
            entry.json = body
            return body, True
        raise ApiError(
            400,
            f"Unsupported content type: '{ctype}'. This API method only accepts "
            "'application/json' and 'multipart/form-data' requests.",
            code="unsupported_content_type",
        )

    def _strict(self, fields: dict[str, Any], allowed: set[str]) -> None:
        if self.config.profile in _STRICT_PROFILES:
            reject_unknown(fields, allowed)

    # ------------------------------------------------------------------ lifecycle

    def _new_video(self, **fields: Any) -> SimVideo:
        cfg = self.config
        video = SimVideo(
            id=f"video_{self._rng.getrandbits(192):048x}",
            created_at=self._clock(),
            job_seconds=max(0.0, cfg.job_seconds),
            **fields,
        )
        word = (cfg.moderation_word or "").strip().lower()
        if word and word in video.prompt.lower():
            video.failure = ("moderation_blocked", MODERATION_MESSAGE)
        elif cfg.fail_rate > 0 and self._rng.random() < cfg.fail_rate:
            video.failure = (cfg.fail_code, cfg.fail_message)
        self.videos[video.id] = video
        self._order.append(video.id)
        if video.failure is None:
            self._media_for(video)
        log.debug("job %s created (%s, %s s, %s)", video.id, video.size, video.seconds, video.kind)
        return video

    def _media_for(self, video: SimVideo) -> _Media:
        """The render of the video's clip: reused if one exists or is under way, else started."""
        key = video.media_key
        current = self._media.get(key)
        if current is not None and not current.failed:
            return current
        width, height = parse_size(video.size)
        task = asyncio.create_task(
            self._render(key, width, height, int(video.seconds), video.prompt)
        )
        entry = _Media(task)
        self._media[key] = entry
        self._tasks.add(task)
        task.add_done_callback(self._render_done)
        return entry

    async def _render(
        self, key: str, width: int, height: int, seconds: int, prompt: str
    ) -> dict[str, Path]:
        assert self._cache_dir is not None
        directory = self._cache_dir
        async with self._render_slots:
            if self._closing:
                raise RuntimeError("the simulator stopped before this render began")
            started = time.monotonic()
            paths = await asyncio.to_thread(
                media.render_all, directory, key, width, height, seconds, self.config.fps, prompt
            )
            log.debug(
                "rendered %s (%dx%d, %d s) in %.2f s",
                key,
                width,
                height,
                seconds,
                time.monotonic() - started,
            )
        entry = self._media.get(key)
        if entry is not None:
            entry.ready_at = self._clock()
        keep = {v.media_key for v in self.videos.values()}
        await asyncio.to_thread(_prune_cache, directory, keep)
        return paths

    def _render_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            return
        if self._closing:
            log.debug("render ended at shutdown: %s", exc)
            return
        log.error("simulated render failed", exc_info=exc)
        for video in self.videos.values():
            entry = self._media.get(video.media_key)
            if (
                entry is not None
                and entry.task is task
                and video.status not in ("completed", "expired")
            ):
                video.failure = (
                    "internal_error",
                    "The video could not be generated. Please try again.",
                )

    def _refresh(self, video: SimVideo) -> SimVideo:
        """Bring `status` and `progress` up to the clock's time."""
        now = self._clock()
        if video.status == "failed":
            return video
        if video.status in ("completed", "expired"):
            assert video.completed_at is not None
            if now >= video.completed_at + self.config.retention_seconds:
                video.status = "expired"
                video.reference = None
            return video
        elapsed = now - video.created_at
        span = video.job_seconds
        if video.failure is not None and elapsed >= span * FAIL_AT:
            code, message = video.failure
            video.status, video.progress = "failed", 0
            video.error = {"code": code, "message": message}
            return video
        if elapsed >= span and video.failure is None:
            entry = self._media_for(video)
            if entry.ready and entry.ready_at is not None:
                # Done when both its time is up and its media exists; the stamp never moves.
                video.status, video.progress = "completed", 100
                video.completed_at = max(video.created_at + span, entry.ready_at)
                return self._refresh(video)
            video.status, video.progress = "in_progress", 99
            return video
        if span <= 0 or elapsed < span * QUEUED_SHARE:
            video.status, video.progress = "queued", 0
        else:
            video.status = "in_progress"
            video.progress = max(1, min(99, int(100 * elapsed / span)))
        return video

    def _present(self, video: SimVideo) -> dict[str, Any]:
        """The Video object as this profile reports it."""
        done = video.status in ("completed", "expired")
        completed_at = video.completed_at if done else None
        body: dict[str, Any] = {
            "id": video.id,
            "object": "video",
            "model": video.model,
            "status": video.status,
            "progress": video.progress,
            "created_at": int(video.created_at),
            "completed_at": None if completed_at is None else int(completed_at),
            "expires_at": None
            if completed_at is None
            else int(completed_at + self.config.retention_seconds),
            "prompt": video.prompt,
            "size": video.size,
            "seconds": video.seconds,
            "remixed_from_video_id": video.remixed_from_video_id,
            "error": dict(video.error) if video.error is not None else None,
        }
        profile = self.config.profile
        body["model"] = self._reported_model(video.model)
        if profile == "openrouter":
            return self._present_openrouter(video)
        if profile == "litellm":
            # Veo-like jobs through LiteLLM: `processing`, and no progress until done.
            if video.status == "in_progress":
                body["status"] = "processing"
            del body["progress"]
        elif profile in _QUEUED_THEN_DONE:
            if video.status == "in_progress":
                body["status"], body["progress"] = "queued", 0
            del body["prompt"]
        elif profile == "vllm-omni":
            if video.status in ("queued", "in_progress"):
                body["progress"] = 0
            if video.error is not None:
                # vLLM-Omni's failed job: the code is an integer.
                body["error"] = {"code": 500, "message": video.error["message"]}
            if video.status == "completed":
                body["inference_time_s"] = round(video.job_seconds, 2)
                body["stage_durations"] = {"denoise": round(video.job_seconds, 2)}
                body["peak_memory_mb"] = 20480
        return body

    def _present_openrouter(self, video: SimVideo) -> dict[str, Any]:
        """OpenRouter's job object: no prompt, size or seconds; `pending` while queued; the
        video's URL and `usage.cost` once completed; the error as a string."""
        url = f"{self.base_url}/videos/{video.id}"
        body: dict[str, Any] = {
            "id": video.id,
            "polling_url": url,
            "status": orouter.STATUS_WORDS.get(video.status, video.status),
            "progress": video.progress,
            "created_at": int(video.created_at),
        }
        if video.status == "completed":
            body["unsigned_urls"] = [f"{url}/content?index=0"]
            if video.cost is not None:
                body["usage"] = {"cost": float(video.cost)}
        if video.error is not None:
            body["error"] = video.error["message"]
        return body

    def _reported_model(self, requested: str) -> str:
        cfg = self.config
        if cfg.profile == "vllm-omni" and cfg.served_models:
            return cfg.served_models[0]
        if cfg.profile == "azure" and cfg.report_model:
            return cfg.report_model
        return requested

    def _check_model(self, model: str) -> None:
        cfg = self.config
        if not cfg.check_model or model in cfg.served_models:
            return
        served = ", ".join(cfg.served_models)
        if cfg.profile == "vllm-omni":
            message = f"Model mismatch: this server serves {served}, not {model!r}."
        elif cfg.profile == "litellm":
            message = (
                f"Invalid model name passed in model={model}. Call `/v1/models` to view "
                "available models for your key."
            )
        else:
            message = f"The model '{model}' does not exist or you do not have access to it."
        raise ApiError(400, message, param="model", code="model_not_found")

    def _get(self, request: web.Request) -> SimVideo:
        video_id = request.match_info["video_id"]
        video = self.videos.get(video_id)
        if video is None:
            raise no_such_video(video_id)
        return self._refresh(video)

    def _completed_source(self, video_id: str, action: str) -> SimVideo:
        source = self.videos.get(video_id)
        if source is None:
            raise no_such_video(video_id)
        self._refresh(source)
        if source.status != "completed":
            raise ApiError(
                400,
                f"Video '{video_id}' is {source.status}; only a completed video can be {action}.",
                param="video_id",
                code="invalid_value",
            )
        return source

    # ------------------------------------------------------------------ handlers

    async def _create(self, request: web.Request) -> web.StreamResponse:
        fields, is_json = await self._read_fields(request)
        if self.config.profile == "openrouter":
            return self._create_openrouter(fields, is_json)
        if is_json and self.config.profile == "vllm-omni":
            raise ApiError(
                400,
                "Video generation requests must be sent as multipart/form-data.",
                type="BadRequestError",
            )
        allowed = {"prompt", "model", "seconds", "size", "input_reference"}
        if self.config.profile == "litellm":
            # The proxy passes a provider's own options through (seed, negative prompt, sound).
            allowed |= {"negative_prompt", "seed", "generate_audio"}
        self._strict(fields, allowed)
        prompt = prompt_field(fields)
        model = string_field(fields, "model", required=False) or DEFAULT_MODEL
        self._check_model(model)
        cfg = self.config
        seconds = choice_field(
            fields, "seconds", cfg.seconds, offered_default(cfg.seconds, DEFAULT_SECONDS)
        )
        size = choice_field(fields, "size", cfg.sizes, offered_default(cfg.sizes, DEFAULT_SIZE))
        reference: Reference | None = None
        raw = fields.get("input_reference")
        if isinstance(raw, web.FileField):
            data = await asyncio.to_thread(raw.file.read)
            reference = await asyncio.to_thread(check_reference, data, raw.content_type, size)
        elif isinstance(raw, str) and not is_json:
            try:
                parsed = parse_json_object(raw.encode("utf-8"))
            except ApiError:
                raise ApiError(
                    400,
                    "Invalid type for 'input_reference': expected a file, "
                    "but got a string instead.",
                    param="input_reference",
                    code="invalid_type",
                ) from None
            reference = await asyncio.to_thread(reference_from_object, parsed, size)
        elif raw is not None:
            reference = await asyncio.to_thread(reference_from_object, raw, size)
        video = self._new_video(
            model=model,
            prompt=prompt,
            size=size,
            seconds=seconds,
            reference=reference.data if reference else None,
            reference_content_type=reference.content_type if reference else None,
        )
        return web.json_response(self._present(video))

    def _create_openrouter(self, fields: dict[str, Any], is_json: bool) -> web.StreamResponse:
        if not is_json:
            raise ApiError(400, "The request body must be JSON.", code="invalid_request")
        cfg = self.config
        job = orouter.parse_create(fields, cfg.openrouter_models, check_model=cfg.check_model)
        video = self._new_video(
            model=job.model,
            prompt=job.prompt,
            size=job.size,
            seconds=str(job.seconds),
            cost=job.cost,
            frame_types=job.frame_types,
        )
        body = {
            "id": video.id,
            "polling_url": f"{self.base_url}/videos/{video.id}",
            "status": "pending",
        }
        return web.json_response(body, status=202)

    async def _video_models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"data": [dict(m) for m in self.config.openrouter_models]})

    async def _remix(self, request: web.Request) -> web.StreamResponse:
        self._require_route(request)
        source_id = request.match_info["video_id"]
        if source_id not in self.videos:
            raise no_such_video(source_id)
        fields, _ = await self._read_fields(request)
        self._strict(fields, {"prompt"})
        prompt = prompt_field(fields)
        source = self._completed_source(source_id, "remixed")
        video = self._new_video(
            model=source.model,
            prompt=prompt,
            size=source.size,
            seconds=source.seconds,
            kind="remix",
            source_video_id=source.id,
            remixed_from_video_id=source.id,
        )
        return web.json_response(self._present(video))

    async def _edit(self, request: web.Request) -> web.StreamResponse:
        self._require_route(request)
        fields, is_json = await self._read_fields(request)
        self._strict(fields, {"video", "video[id]", "prompt"})
        source_id = video_id_field(fields, form=not is_json)
        prompt = prompt_field(fields)
        source = self._completed_source(source_id, "edited")
        video = self._new_video(
            model=source.model,
            prompt=prompt,
            size=source.size,
            seconds=source.seconds,
            kind="edit",
            source_video_id=source.id,
        )
        return web.json_response(self._present(video))

    async def _extend(self, request: web.Request) -> web.StreamResponse:
        self._require_route(request)
        fields, is_json = await self._read_fields(request)
        self._strict(fields, {"video", "video[id]", "prompt", "seconds"})
        source_id = video_id_field(fields, form=not is_json)
        prompt = prompt_field(fields)
        added = choice_field(fields, "seconds", EXTEND_SECONDS, None)
        source = self._completed_source(source_id, "extended")
        video = self._new_video(
            model=source.model,
            prompt=prompt,
            size=source.size,
            seconds=str(int(source.seconds) + int(added)),
            kind="extension",
            source_video_id=source.id,
        )
        return web.json_response(self._present(video))

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        video = self._get(request)
        headers = {}
        if self.config.poll_after_ms is not None:
            headers[POLL_AFTER_HEADER] = str(int(self.config.poll_after_ms))
        return web.json_response(self._present(video), headers=headers)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        owner = {"litellm": "openai", "vllm-omni": "vllm-omni", "sglang": "sglang"}
        data = [
            {
                "id": model,
                "object": "model",
                "created": int(self._clock()),
                "owned_by": owner.get(self.config.profile, "system"),
            }
            for model in self._model_ids()
        ]
        return web.json_response({"object": "list", "data": data})

    def _model_ids(self) -> tuple[str, ...]:
        if self.config.profile == "openrouter":
            return tuple(str(m.get("id")) for m in self.config.openrouter_models)
        return self.config.served_models

    async def _list(self, request: web.Request) -> web.StreamResponse:
        self._require_route(request)
        cfg = self.config
        provider = request.headers.get("custom-llm-provider", "")
        provider = provider or request.query.get("custom_llm_provider", "")
        if cfg.profile == "litellm" and not provider.strip():
            raise ApiError(
                400,
                "Missing header 'custom-llm-provider': say which provider's videos to list "
                "(for example 'custom-llm-provider: openai').",
                param="custom-llm-provider",
                code="missing_required_parameter",
            )
        limit = parse_limit(request.query.get("limit"), cfg.page_limit_max)
        order = choice_field(dict(request.query), "order", ("asc", "desc"), "desc")
        ids = self._order if order == "asc" else self._order[::-1]
        after = request.query.get("after")
        if after:
            if after not in ids:
                raise ApiError(
                    400,
                    f"Invalid 'after': no video with id '{after}'.",
                    param="after",
                    code="invalid_value",
                )
            ids = ids[ids.index(after) + 1 :]
        live = [self.videos[i] for i in ids if i in self.videos]
        page = [self._present(self._refresh(v)) for v in live[:limit]]
        body: dict[str, Any] = {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(live) > limit,
        }
        if cfg.profile in _QUEUED_THEN_DONE:
            # SGLang and FastVideo answer `{data}` alone.
            body = {"data": page}
        return web.json_response(body)

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        self._require_route(request)
        video = self._get(request)
        # vLLM-Omni cancels a queued or running job; the others forget it (SGLang's render goes
        # on regardless, which a simulator need not copy).
        del self.videos[video.id]
        video.reference = None
        if self.config.profile in _QUEUED_THEN_DONE:
            body = self._present(video)
            body["status"] = "deleted"
            return web.json_response(body)
        return web.json_response({"id": video.id, "object": "video.deleted", "deleted": True})

    async def _content(self, request: web.Request) -> web.StreamResponse:
        video = self._get(request)
        variant = self._variant(request.query.get("variant"))
        if self.config.profile == "openrouter":
            # Outputs by index; a job makes one.
            index = request.query.get("index", "0")
            if index != "0":
                raise ApiError(404, f"No output {index} for video '{video.id}'.")
        if self.config.profile == "vllm-omni" and video.status in ("queued", "in_progress"):
            raise ApiError(404, "Generation is still in-progress", type="NotFoundError")
        if self.config.profile == "vllm-omni" and video.status == "failed":
            raise ApiError(
                422, "Generation failed; the video has no content.", type="UnprocessableEntity"
            )
        if video.status == "expired":
            raise ApiError(404, f"The assets of video '{video.id}' have expired.", code="expired")
        if video.status == "failed":
            raise ApiError(
                404, f"Video '{video.id}' failed; it has no content.", code="video_failed"
            )
        if video.status != "completed":
            raise ApiError(
                404,
                f"Video '{video.id}' is not ready yet (status {video.status}); "
                "download it once its status is completed.",
                code="video_not_ready",
            )
        paths = await self._media_for(video).task
        path = paths[variant]
        if not await asyncio.to_thread(path.exists):
            # Pruned from the cache since: render it again.
            self._media.pop(video.media_key, None)
            paths = await self._media_for(video).task
            path = paths[variant]
        if variant == "video" and self.config.pad_video_bytes >= _BOX_HEADER:
            return await self._padded(request, path)
        return web.FileResponse(path, headers={"Content-Type": CONTENT_TYPES[variant]})

    async def _padded(self, request: web.Request, path: Path) -> web.StreamResponse:
        """The mp4 followed by a `free` box of `pad_video_bytes`: still a valid, playable file,
        as large as a test of streaming needs, written a chunk at a time."""
        data = await asyncio.to_thread(path.read_bytes)
        pad = self.config.pad_video_bytes
        response = web.StreamResponse(
            headers={"Content-Type": CONTENT_TYPES["video"], "Content-Length": str(len(data) + pad)}
        )
        await response.prepare(request)
        await response.write(data)
        await response.write(pad.to_bytes(4, "big") + b"free")
        left = pad - _BOX_HEADER
        chunk = bytes(min(left, 1 << 20))
        while left > 0:
            await response.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
        await response.write_eof()
        return response

    def _variant(self, raw: str | None) -> str:
        profile = self.config.profile
        # vLLM-Omni has no variants, LiteLLM drops the parameter, OpenRouter has none: all answer
        # the mp4.
        if profile in ("vllm-omni", "litellm", "openrouter") or raw is None:
            return "video"
        if profile in _QUEUED_THEN_DONE:
            # Here `variant` is an output index; the simulator makes one output per job, and a
            # name (`video`, `thumbnail`) is no index: no such output.
            index = int(raw) if raw.strip().isdigit() else -1
            if index != 0:
                raise ApiError(404, f"Video variant {raw} not found", param="variant")
            return "video"
        return choice_field({"variant": raw}, "variant", VARIANTS, "video")


class EmbeddedSim:
    """The simulator inside the bot's own process, on a free loopback port."""

    def __init__(
        self,
        *,
        cache_dir: Path,
        job_seconds: float,
        retention_seconds: float,
        profile: ProfileName,
        poll_after_ms: int | None = None,
        seconds: tuple[str, ...] = SECONDS,
        sizes: tuple[str, ...] = SIZES,
    ) -> None:
        self.server = SimServer(
            SimConfig(
                job_seconds=job_seconds,
                retention_seconds=retention_seconds,
                profile=profile,
                poll_after_ms=poll_after_ms,
                cache_dir=cache_dir,
                seconds=seconds,
                sizes=sizes,
            )
        )

    async def __aenter__(self) -> str:
        return await self.server.start("127.0.0.1", 0)

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()


def _normalise_route(route: str) -> str:
    method, _, path = route.strip().partition(" ")
    path = path.strip().removeprefix("/v1")
    path = path.replace("{video_id}", "{id}")
    return f"{method.upper()} {path}"


def _route_of(request: web.Request) -> str | None:
    info = request.match_info.route.resource
    canonical = info.canonical if info is not None else ""
    if not canonical.startswith("/v1/videos") and canonical != "/v1/models":
        return None
    return _normalise_route(f"{request.method} {canonical}")


def _fault_error(kind: str, retry_after: float) -> ApiError:
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


def _prune_cache(directory: Path, keep: set[str]) -> None:
    """Drop the oldest clips beyond CACHE_MAX_CLIPS, never one a live job uses."""
    try:
        clips = sorted(directory.glob("*.mp4"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return
    excess = len(clips) - CACHE_MAX_CLIPS
    for clip in clips:
        if excess <= 0:
            break
        if clip.stem in keep:
            continue
        for suffix in (".mp4", ".webp", ".jpg"):
            clip.with_suffix(suffix).unlink(missing_ok=True)
        excess -= 1


__all__ = [
    "CONTENT_TYPES",
    "FAULT_KINDS",
    "IMAGE_TYPES",
    "ROUTES",
    "EmbeddedSim",
    "FaultKind",
    "SimClock",
    "SimConfig",
    "SimRequest",
    "SimServer",
    "SimVideo",
]
