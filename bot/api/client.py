"""Async client for the Videos API over one shared `httpx.AsyncClient`.

Retries only where they are safe. Reads and downloads retry rate limits, server errors and broken
connections. Creates (create, remix, edit, extend) start billed jobs and carry no idempotency key,
so they are retried only when the server certainly did not act (429, connection never made); after
an ambiguous failure the client looks for the job among recent videos and adopts it, and if it
cannot find it, says so with `CreateOutcomeUnknown` rather than sending the create again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from bot import __version__
from bot.api.errors import (
    APIConnectionError,
    APITimeoutError,
    CreateOutcomeUnknown,
    RateLimitError,
    ServerError,
    UnsupportedOperation,
    VideoAPIError,
    error_from_response,
    error_from_transport,
)
from bot.api.models import (
    ContentVariant,
    CreateVideo,
    DeletedVideo,
    ListOrder,
    ReferenceImage,
    Video,
    VideoList,
)
from bot.api.profiles import Capabilities
from bot.api.ratelimit import MinuteRateLimiter

log = logging.getLogger(__name__)

# Transport errors raised before a single byte of the request left this machine.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_WRITE_CHUNK = 1 << 20


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
    # How long and how often to look for a job after an ambiguous create before giving up.
    reconcile_attempts: int = 3
    reconcile_delay: float = 2.0
    # Server and bot clocks differ; a job created this much before the attempt still matches.
    clock_skew: float = 60.0


@dataclass(frozen=True)
class JobMatch:
    """What identifies the job a create started, for finding it again after an ambiguous failure."""

    prompt: str
    model: str | None = None
    size: str | None = None
    seconds: str | None = None
    remixed_from: str | None = None

    def matches(self, video: Video) -> bool:
        # Compare only what both sides know: servers differ in which fields they echo back.
        pairs = (
            (self.prompt, video.prompt),
            (self.model, video.model),
            (self.size, video.size),
            (self.seconds, video.seconds),
            (self.remixed_from, video.remixed_from_video_id),
        )
        return all(a is None or b is None or a == b for a, b in pairs)


def make_http_client(timeout: float = 60.0, connect_timeout: float = 10.0) -> httpx.AsyncClient:
    """The one `httpx.AsyncClient` a process uses for the video API."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        follow_redirects=False,
    )


class VideosClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        config: ClientConfig,
        *,
        limiter: MinuteRateLimiter | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._http = http
        self.config = config
        self.caps = config.capabilities
        self._limiter = limiter or MinuteRateLimiter(10_000)
        self._sleep = sleep
        self._base = config.base_url.rstrip("/")
        self._headers = self._build_headers()
        # The latest `openai-poll-after-ms` advice, in seconds, for the tracker's interval.
        self.poll_after: float | None = None

    def __repr__(self) -> str:
        return f"VideosClient(base_url={self._base!r})"

    def _build_headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"discord-video-bot/{__version__}", **self.config.extra_headers}
        key = self.config.api_key.get_secret_value()
        if self.config.auth_header == "api-key":
            headers["api-key"] = key
        else:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    # ------------------------------------------------------------------ transport and retries

    def _backoff(self, attempt: int) -> float:
        # Full jitter keeps many jobs that failed together from retrying together.
        ceiling = min(self.config.backoff_cap, self.config.backoff_base * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)

    def _retry_delay(self, err: VideoAPIError, attempt: int) -> float:
        if isinstance(err, RateLimitError) and err.retry_after is not None:
            return min(err.retry_after, self.config.backoff_cap * 3)
        return self._backoff(attempt)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: Any = None,
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        url = self._base + path
        all_headers = {**self._headers, **(headers or {})}
        attempt = 0
        while True:
            await self._limiter.acquire()
            started = time.monotonic()
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    files=files,
                    data=data,
                    headers=all_headers,
                )
            except httpx.TransportError as exc:
                err = error_from_transport(exc, sent=not isinstance(exc, _NOT_SENT))
                log.debug("%s %s -> %s", method, path, type(exc).__name__)
                safe = idempotent or (isinstance(err, APIConnectionError) and not err.sent)
                if safe and attempt < self.config.max_retries:
                    await self._sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                raise err from None
            elapsed = (time.monotonic() - started) * 1000
            log.debug("%s %s -> %d (%.0f ms)", method, path, response.status_code, elapsed)
            if response.status_code < 400:
                return response
            err = error_from_response(response)
            retryable = isinstance(err, RateLimitError) or (
                idempotent and isinstance(err, ServerError)
            )
            if retryable and attempt < self.config.max_retries:
                await self._sleep(self._retry_delay(err, attempt))
                attempt += 1
                continue
            raise err

    def _require(self, capability: str) -> None:
        if not getattr(self.caps, capability):
            raise UnsupportedOperation(
                f"the configured video backend does not support {capability}", code=capability
            )

    # ------------------------------------------------------------------ creates (billed)

    async def create(self, request: CreateVideo, reference: ReferenceImage | None = None) -> Video:
        """Start a job: JSON, or multipart with a reference image or on multipart-only backends."""
        fields = request.form()
        match = JobMatch(
            prompt=request.prompt, model=request.model, size=request.size, seconds=request.seconds
        )
        if reference is None and self.caps.create_encoding == "json":
            return await self._create_job("/videos", match, json=fields)
        # A field given as (None, value) is a plain form field: httpx then always sends multipart,
        # which multipart-only servers need even when there is no file.
        parts: dict[str, Any] = {k: (None, v) for k, v in fields.items()}
        if reference is not None:
            parts["input_reference"] = (reference.filename, reference.data, reference.content_type)
        return await self._create_job("/videos", match, files=parts)

    async def remix(self, video_id: str, prompt: str) -> Video:
        self._require("remix")
        match = JobMatch(prompt=prompt, remixed_from=video_id)
        return await self._create_job(
            f"/videos/{_seg(video_id)}/remix", match, json={"prompt": prompt}
        )

    async def edit(self, video_id: str, prompt: str) -> Video:
        self._require("edits")
        body = {"video": {"id": video_id}, "prompt": prompt}
        return await self._create_job("/videos/edits", JobMatch(prompt=prompt), json=body)

    async def extend(self, video_id: str, prompt: str, seconds: str) -> Video:
        self._require("extensions")
        body = {"video": {"id": video_id}, "prompt": prompt, "seconds": seconds}
        return await self._create_job("/videos/extensions", JobMatch(prompt=prompt), json=body)

    async def _create_job(self, path: str, match: JobMatch, **body: Any) -> Video:
        attempted_at = time.time()
        try:
            response = await self._send("POST", path, idempotent=False, **body)
        except (ServerError, APITimeoutError, APIConnectionError) as err:
            if isinstance(err, APIConnectionError) and not err.sent:
                raise
            found = await self._reconcile(match, attempted_at)
            if found is not None:
                log.warning("create outcome was ambiguous (%s); adopted job %s", err, found.id)
                return found
            raise CreateOutcomeUnknown(
                f"the video service did not confirm the request ({err.message})",
                attempted_at=attempted_at,
                cause=err,
            ) from None
        return Video.model_validate(response.json())

    async def _reconcile(self, match: JobMatch, attempted_at: float) -> Video | None:
        if not self.caps.list:
            return None
        for attempt in range(self.config.reconcile_attempts):
            try:
                found = await self.find_created(match, since=attempted_at)
            except VideoAPIError as exc:
                log.info("looking for an ambiguous create's job failed: %s", exc)
                found = None
            if found is not None:
                return found
            if attempt + 1 < self.config.reconcile_attempts:
                await self._sleep(self.config.reconcile_delay)
        return None

    async def find_created(
        self, match: JobMatch, *, since: float, exclude_ids: Collection[str] = ()
    ) -> Video | None:
        """The oldest job matching `match` created since `since` (newest-first scan), or None.

        The oldest match is taken because a create's job is older than any identical request a
        user makes after it; `exclude_ids` lists jobs already owned by other requests.
        """
        if not self.caps.list:
            return None
        cutoff = since - self.config.clock_skew
        best: Video | None = None
        async for video in self.iter_videos(order="desc"):
            if video.created_at is not None and video.created_at < cutoff:
                break
            if video.id not in exclude_ids and match.matches(video):
                best = video
        return best

    # ------------------------------------------------------------------ reads

    async def retrieve(self, video_id: str) -> Video:
        response = await self._send("GET", f"/videos/{_seg(video_id)}", idempotent=True)
        hint = response.headers.get("openai-poll-after-ms")
        if hint:
            with contextlib.suppress(ValueError):
                self.poll_after = max(0.0, float(hint) / 1000)
        return Video.model_validate(response.json())

    async def list(
        self, *, after: str | None = None, limit: int | None = None, order: ListOrder | None = None
    ) -> VideoList:
        self._require("list")
        params: dict[str, Any] = {}
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = limit
        if order is not None:
            params["order"] = order
        response = await self._send(
            "GET", "/videos", idempotent=True, params=params, headers=self.caps.list_headers
        )
        return VideoList.model_validate(response.json())

    async def iter_videos(
        self, *, order: ListOrder = "desc", page_size: int = 100
    ) -> AsyncIterator[Video]:
        """Every video, page by page. Where a server omits `has_more`, a short page is the last."""
        after: str | None = None
        while True:
            page = await self.list(after=after, limit=page_size, order=order)
            for video in page.data:
                yield video
            if not page.data:
                return
            more = page.has_more if page.has_more is not None else len(page.data) >= page_size
            last = page.last_id or page.data[-1].id
            if not more or last == after:
                return
            after = last

    async def delete(self, video_id: str) -> DeletedVideo:
        self._require("delete")
        response = await self._send("DELETE", f"/videos/{_seg(video_id)}", idempotent=True)
        return DeletedVideo.from_response(response.json())

    async def download(
        self, video_id: str, dest: Path, *, variant: ContentVariant = "video"
    ) -> int:
        """Stream an asset to `dest` (owner-only) without holding it in memory; return its size.

        The body goes to `dest.part` and is renamed into place only when complete, so a crash or a
        broken connection never leaves a truncated file under the final name.
        """
        if variant != "video":
            self._require("variants")
        params: dict[str, str] = {"variant": variant} if self.caps.variants else {}
        url = f"{self._base}/videos/{_seg(video_id)}/content"
        part = dest.with_name(dest.name + ".part")
        attempt = 0
        while True:
            await self._limiter.acquire()
            try:
                size = await self._stream_to(url, params, part)
            except httpx.TransportError as exc:
                err: VideoAPIError = error_from_transport(exc, sent=True)
            except (RateLimitError, ServerError) as exc:
                err = exc
            else:
                await asyncio.to_thread(os.replace, part, dest)
                return size
            if attempt >= self.config.max_retries:
                await asyncio.to_thread(_unlink, part)
                raise err
            await self._sleep(self._retry_delay(err, attempt))
            attempt += 1

    async def _stream_to(self, url: str, params: dict[str, str], part: Path) -> int:
        async with self._http.stream("GET", url, params=params, headers=self._headers) as response:
            if response.status_code >= 400:
                await response.aread()
                raise error_from_response(response)
            handle = await asyncio.to_thread(_open_private, part)
            size = 0
            try:
                buffer = bytearray()
                async for chunk in response.aiter_bytes():
                    buffer += chunk
                    if len(buffer) >= _WRITE_CHUNK:
                        # Disk writes go to a thread so a slow disk never stalls the event loop.
                        await asyncio.to_thread(handle.write, buffer)
                        size += len(buffer)
                        buffer.clear()
                if buffer:
                    await asyncio.to_thread(handle.write, buffer)
                    size += len(buffer)
            finally:
                await asyncio.to_thread(handle.close)
            return size


def _seg(video_id: str) -> str:
    # IDs are opaque, but they go into a path: quote anything that could change the URL.
    return quote(video_id, safe="-_.~")


def _open_private(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    return os.fdopen(fd, "wb")


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
