"""Async client for the Videos API over one shared `httpx.AsyncClient`.

Retries only where they are safe. Reads and downloads retry rate limits, server errors and broken
connections. Creates (create, remix, edit, extend) start billed jobs and carry no idempotency key,
so they are retried only when the server certainly did not act (429, connection never made); after
an ambiguous failure (a 5xx, no answer in time, a dropped connection, an answer that cannot be
read) the client raises `CreateOutcomeUnknown` at once. Looking for the job is the caller's part
(`find_created`), because only the caller knows which jobs other requests already own.

Every answer is untrusted and bounded: bodies are streamed and capped while they are read, a
redirect is an error (never followed, never content), numbers and ids are checked before use, and
anything a server sends that the client cannot use is an `InvalidResponseError` about that one
request, never an exception of another kind.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError

from bot import __version__
from bot.api.errors import (
    APIConnectionError,
    APITimeoutError,
    CreateOutcomeUnknown,
    InvalidResponseError,
    RateLimitError,
    ServerError,
    UnsupportedOperation,
    VideoAPIError,
    describe_error,
    error_from_parts,
    error_from_transport,
    redirect_error,
)
from bot.api.models import (
    ContentVariant,
    CreateVideo,
    DeletedVideo,
    ListOrder,
    ReferenceImage,
    Video,
    VideoList,
    id_problem,
)
from bot.api.openrouter import CONTENT_INDEX, ShapeLookup, create_body
from bot.api.profiles import Capabilities
from bot.api.ratelimit import MinuteRateLimiter
from bot.files import open_private
from bot.redact import redact, register_secret

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Transport errors raised before a single byte of the request left this machine.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_WRITE_CHUNK = 1 << 20
# An error body says what went wrong in a line or two; more than this is not read at all.
ERROR_BODY_LIMIT = 64 * 1024
# A job or a page of 100 jobs is a few kilobytes; a JSON answer larger than this is refused.
JSON_BODY_LIMIT = 4 * 1024 * 1024
# `openai-poll-after-ms` is advice: above this it is capped, and a non-finite one ignored.
MAX_POLL_AFTER = 60.0
# Bytes needed to tell a video or an image by its start.
_MAGIC_BYTES = 16
# A server's model list (discovery) is a few tens of kilobytes; more than this is refused.
CATALOG_BODY_LIMIT = 1024 * 1024


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


@dataclass(frozen=True)
class JobMatch:
    """What identifies the job a create started, for finding it again after an ambiguous failure.

    `size` and `seconds` are compared where the request states them (a candidate that does not
    report them does not match); the prompt where the server echoes prompts; the model where the
    server reports the model that was asked for.
    """

    prompt: str
    model: str | None = None
    size: str | None = None
    seconds: str | None = None
    remixed_from: str | None = None
    # A request with a reference image is adopted only on a prompt match: a job made from
    # another picture with the same size and length must never be taken for it.
    has_reference: bool = False


@dataclass(frozen=True)
class CreateSearch:
    """What `find_created` saw: the attempt's job (`video`), or none, or `ambiguous` when more
    than one unclaimed job could be it (or one could, but may not be adopted) and none was
    taken. With `video` None and `ambiguous` False the listing was read and nothing there can be
    the attempt's job."""

    video: Video | None
    ambiguous: bool = False


def make_http_client(timeout: float = 60.0, connect_timeout: float = 10.0) -> httpx.AsyncClient:
    """The one `httpx.AsyncClient` a process uses for the video API."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        follow_redirects=False,
    )


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: httpx.Headers
    body: bytes


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
        # Whatever a server echoes back (a gateway quoting the request's headers, a provider
        # quoting the key) is redacted before it is stored, logged, shown or printed.
        register_secret(config.api_key.get_secret_value())
        for value in config.extra_headers.values():
            register_secret(value)
        # The latest `openai-poll-after-ms` advice, in seconds (capped), for the poll interval.
        self.poll_after: float | None = None
        # Which aspect ratio and resolution a model's size stands for, where a server is asked
        # in those terms (OpenRouter): set from the catalog in use (`Backend.use_catalog`).
        self.shapes: ShapeLookup | None = None

    def __repr__(self) -> str:
        return f"VideosClient(base_url={self._base!r})"

    def _build_headers(self) -> dict[str, str]:
        headers = {"User-Agent": f"discord-video-bot/{__version__}", **self.config.extra_headers}
        key = self.config.api_key.get_secret_value()
        if not key:
            # A self-hosted server without auth: no auth header at all, not an empty one.
            return headers
        if self.config.auth_header == "api-key":
            headers["api-key"] = key
        else:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    @property
    def adopt_window(self) -> float:
        """Seconds after an attempt within which its job may have been created."""
        if self.config.adopt_window is not None:
            return self.config.adopt_window
        read = self._http.timeout.read
        return (read if read is not None else 60.0) + (
            self.config.create_retry_budget + self.config.clock_skew
        )

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
        retries: int | None = None,
    ) -> _Answer:
        url = self._base + path
        limit = (
            self.config.max_retries if retries is None else min(retries, self.config.max_retries)
        )
        all_headers = {**self._headers, **(headers or {})}
        attempt = 0
        waited = 0.0
        while True:
            await self._limiter.acquire()
            started = time.monotonic()
            try:
                request = self._http.build_request(
                    method,
                    url,
                    params=params,
                    json=json,
                    files=files,
                    data=data,
                    headers=all_headers,
                )
                answer = await self._exchange(request)
            except httpx.TransportError as exc:
                err = error_from_transport(exc, sent=not isinstance(exc, _NOT_SENT))
                log.debug("%s %s -> %s", method, path, type(exc).__name__)
                safe = idempotent or (isinstance(err, APIConnectionError) and not err.sent)
                delay = self._backoff(attempt)
                if safe and attempt < limit and self._may_retry(idempotent, attempt, waited, delay):
                    await self._sleep(delay)
                    waited += delay
                    attempt += 1
                    continue
                raise err from None
            elapsed = (time.monotonic() - started) * 1000
            log.debug("%s %s -> %d (%.0f ms)", method, path, answer.status, elapsed)
            if answer.status < 300:
                return answer
            if answer.status < 400:
                raise redirect_error(answer.status)
            err = error_from_parts(answer.status, answer.headers, answer.body)
            retryable = isinstance(err, RateLimitError) or (
                idempotent and isinstance(err, ServerError)
            )
            delay = self._retry_delay(err, attempt)
            if (
                retryable
                and attempt < limit
                and self._may_retry(idempotent, attempt, waited, delay)
            ):
                await self._sleep(delay)
                waited += delay
                attempt += 1
                continue
            raise err

    def _may_retry(self, idempotent: bool, attempt: int, waited: float, delay: float) -> bool:
        if attempt >= self.config.max_retries:
            return False
        # A create's retries wait at most its budget in all, which bounds when its job was made.
        return idempotent or waited + delay <= self.config.create_retry_budget

    async def _exchange(self, request: httpx.Request) -> _Answer:
        """One request; the body is streamed and capped (errors to 64 KiB, JSON to a few MiB)."""
        try:
            response = await self._http.send(request, stream=True, follow_redirects=False)
        except httpx.DecodingError as exc:
            raise _invalid(f"an answer that could not be decoded ({type(exc).__name__})") from None
        try:
            status = response.status_code
            if 300 <= status < 400:
                return _Answer(status, response.headers, b"")
            error = status >= 400
            limit = ERROR_BODY_LIMIT if error else JSON_BODY_LIMIT
            try:
                async with asyncio.timeout(self._body_deadline()):
                    body = await _read_capped(response, limit, truncate=error)
            except TimeoutError:
                # As if the read had timed out: retried where safe, ambiguous for a create.
                raise httpx.ReadTimeout("the body took too long", request=request) from None
            return _Answer(status, response.headers, body)
        finally:
            await response.aclose()

    def _body_deadline(self) -> float:
        if self.config.body_deadline is not None:
            return self.config.body_deadline
        read = self._http.timeout.read
        return read if read is not None else 60.0

    def _require(self, capability: str) -> None:
        if not getattr(self.caps, capability):
            raise UnsupportedOperation(
                f"the configured video backend does not support {capability}", code=capability
            )

    # ------------------------------------------------------------------ creates (billed)

    async def create(self, request: CreateVideo, reference: ReferenceImage | None = None) -> Video:
        """Start a job: JSON, or multipart with a reference image or on multipart-only backends;
        on OpenRouter always JSON in its own words (the reference as a first-frame data URL)."""
        if self.caps.dialect == "openrouter":
            # Per-model options (seed, sound) are sent where the request carries them.
            body = create_body(
                request,
                reference,
                shapes=self.shapes,
                seed=request.seed,
                generate_audio=request.audio,
                negative_prompt=request.negative_prompt,
            )
            return await self._create_job("/videos", json=body)
        audio_field = self.caps.audio_field
        fields = request.form(audio_field=audio_field)
        if reference is None and self.caps.create_encoding == "json":
            return await self._create_job(
                "/videos", json=request.json_body(audio_field=audio_field)
            )
        # A field given as (None, value) is a plain form field: httpx then always sends multipart,
        # which multipart-only servers need even when there is no file.
        parts: dict[str, Any] = {k: (None, v) for k, v in fields.items()}
        if reference is not None:
            parts["input_reference"] = (reference.filename, reference.data, reference.content_type)
        return await self._create_job("/videos", files=parts)

    async def remix(self, video_id: str, prompt: str) -> Video:
        self._require("remix")
        return await self._create_job(f"/videos/{_seg(video_id)}/remix", json={"prompt": prompt})

    async def edit(self, video_id: str, prompt: str) -> Video:
        self._require("edits")
        _seg(video_id)
        body = {"video": {"id": video_id}, "prompt": prompt}
        return await self._create_job("/videos/edits", json=body)

    async def extend(self, video_id: str, prompt: str, seconds: str) -> Video:
        self._require("extensions")
        _seg(video_id)
        body = {"video": {"id": video_id}, "prompt": prompt, "seconds": seconds}
        return await self._create_job("/videos/extensions", json=body)

    async def _create_job(self, path: str, **body: Any) -> Video:
        attempted_at = time.time()
        try:
            answer = await self._send("POST", path, idempotent=False, **body)
        except (ServerError, APITimeoutError, APIConnectionError) as err:
            if isinstance(err, APIConnectionError) and not err.sent:
                raise
            raise _unknown(attempted_at, err) from None
        except InvalidResponseError as err:
            # A redirect is a refusal (nothing was started); a 2xx whose body is too large or
            # cannot be decoded is a yes that cannot be read.
            if err.status is not None and not 200 <= err.status < 300:
                raise
            raise _unknown(attempted_at, err) from None
        try:
            return _parse(Video.model_validate, answer)
        except InvalidResponseError as err:
            # The server said yes but its answer cannot be used: a job may well be running
            # there, so this is as ambiguous as a lost answer (and never sent again).
            raise _unknown(attempted_at, err) from None

    async def find_created(
        self, match: JobMatch, *, since: float, exclude_ids: Collection[str] = ()
    ) -> CreateSearch:
        """Look among recent jobs for the one an ambiguous create started at `since`.

        A candidate is not in `exclude_ids` (jobs other requests own), was created from
        `since - clock_skew` to `since + adopt_window`, has the request's size and seconds (and
        model, where the server reports the requested one), and where the server echoes prompts,
        the request's prompt. Where it does not, only a lone candidate is adopted, and never for
        a request with a reference image. Raises VideoAPIError (UnsupportedOperation on a backend
        that cannot list) when the listing could not be read back to `since`, so "read, nothing
        there" and "could not read" are never confused.
        """
        self._require("list")
        lower = since - self.config.clock_skew
        upper = since + self.adopt_window
        candidates: list[Video] = []
        async for video in self._listing_since(lower):
            created = video.created_at
            if created is None or not lower <= created <= upper or video.id in exclude_ids:
                continue
            if self._same_request(match, video):
                candidates.append(video)
        if self.caps.echoes_prompt:
            wanted = _norm(match.prompt)
            mine = [v for v in candidates if v.prompt is not None and _norm(v.prompt) == wanted]
        elif match.has_reference:
            # No prompt to compare: a job made from another picture cannot be told apart.
            return CreateSearch(None, ambiguous=bool(candidates))
        else:
            mine = candidates
        if len(mine) == 1:
            return CreateSearch(mine[0])
        return CreateSearch(None, ambiguous=len(mine) > 1)

    def _same_request(self, match: JobMatch, video: Video) -> bool:
        if match.size is not None and video.size != match.size:
            return False
        if match.seconds is not None and video.seconds != match.seconds:
            return False
        if (
            self.caps.reports_requested_model
            and match.model is not None
            and video.model is not None
            and video.model != match.model
        ):
            return False
        return not (
            match.remixed_from is not None
            and video.remixed_from_video_id is not None
            and video.remixed_from_video_id != match.remixed_from
        )

    async def _listing_since(self, lower: float) -> AsyncIterator[Video]:
        """Jobs newest first back to `lower`; InvalidResponseError when the listing cannot be
        read that far (too many pages, or pages without creation times)."""
        after: str | None = None
        for _ in range(self.config.max_list_pages):
            page = await self.list(after=after, limit=100, order="desc")
            for video in page.data:
                yield video
            if not page.data:
                return
            times = [v.created_at for v in page.data if v.created_at is not None]
            if not times:
                raise _invalid("a job listing without creation times")
            # Only a newest-first page says nothing newer follows; a server that ignores
            # `order` is read on to its end (within the page cap).
            newest_first = all(a >= b for a, b in itertools.pairwise(times))
            if newest_first and times[-1] < lower:
                return
            more = page.has_more if page.has_more is not None else len(page.data) >= 100
            last = page.last_id or page.data[-1].id
            if not more:
                return
            if last == after:
                raise _invalid("a job listing that does not advance")
            after = last
        raise _invalid(f"a job listing longer than {self.config.max_list_pages} pages")

    # ------------------------------------------------------------------ reads

    async def retrieve(self, video_id: str, *, retries: int | None = None) -> Video:
        """One job; `retries` caps the retries below the configured ones (the tracker reads
        with none: its next round is the retry, and one job's 5xx must not slow the round)."""
        answer = await self._send(
            "GET", f"/videos/{_seg(video_id)}", idempotent=True, retries=retries
        )
        hint = parse_poll_after(
            answer.headers.get("openai-poll-after-ms"), cap=self.config.max_poll_after
        )
        if hint is not None:
            self.poll_after = hint
        return _parse(Video.model_validate, answer)

    async def list(
        self, *, after: str | None = None, limit: int | None = None, order: ListOrder | None = None
    ) -> VideoList:
        """One page; items that do not parse are skipped (see `VideoList.unreadable_ids`)."""
        self._require("list")
        params: dict[str, Any] = {}
        if after is not None:
            params["after"] = after
        if limit is not None:
            params["limit"] = limit
        if order is not None:
            params["order"] = order
        answer = await self._send(
            "GET", "/videos", idempotent=True, params=params, headers=self.caps.list_headers
        )
        return _parse(VideoList.parse, answer)

    async def iter_videos(
        self, *, order: ListOrder = "desc", page_size: int = 100, max_pages: int | None = None
    ) -> AsyncIterator[Video]:
        """Videos page by page, at most `max_pages` (default: the configured cap) pages.

        Where a server omits `has_more`, a short page is the last; a page whose items carry no
        `created_at` is the last too (nothing says how far back the listing has gone).
        """
        after: str | None = None
        for _ in range(max_pages or self.config.max_list_pages):
            page = await self.list(after=after, limit=page_size, order=order)
            for video in page.data:
                yield video
            if not page.data or all(v.created_at is None for v in page.data):
                return
            more = page.has_more if page.has_more is not None else len(page.data) >= page_size
            last = page.last_id or page.data[-1].id
            if not more or last == after:
                return
            after = last

    async def delete(self, video_id: str) -> DeletedVideo:
        self._require("delete")
        answer = await self._send("DELETE", f"/videos/{_seg(video_id)}", idempotent=True)
        return _parse(DeletedVideo.from_response, answer)

    async def download(
        self, video_id: str, dest: Path, *, variant: ContentVariant = "video"
    ) -> int:
        """Stream an asset to `dest` (owner-only) without holding it in memory; return its size.

        The body goes to `dest.part` and is renamed into place only when complete and checked, so
        a crash, a broken connection or a refused body never leaves a file under the final name;
        after any failure there is no `.part` either. What is saved must look like what was asked
        for by its Content-Type and its first bytes (a video: mp4/mov or webm; an image: webp,
        jpeg or png), be at most `max_download_bytes`, and arrive within `download_timeout`.
        """
        if variant != "video":
            self._require("variants")
        params: dict[str, str] = {"variant": variant} if self.caps.variants else {}
        if self.caps.dialect == "openrouter":
            # OpenRouter names the output by index; a job makes one.
            params = {"index": CONTENT_INDEX}
        url = f"{self._base}/videos/{_seg(video_id)}/content"
        part = dest.with_name(dest.name + ".part")
        kind: Literal["video", "image"] = "video" if variant == "video" else "image"
        deadline = time.monotonic() + self.config.download_timeout
        attempt = 0
        try:
            while True:
                await self._limiter.acquire()
                try:
                    async with asyncio.timeout_at(_loop_time_at(deadline)):
                        size = await self._stream_to(url, params, part, kind)
                except TimeoutError:
                    raise _invalid(
                        f"a download that did not finish within {self.config.download_timeout:g} s"
                    ) from None
                except httpx.TransportError as exc:
                    err: VideoAPIError = error_from_transport(exc, sent=True)
                except (RateLimitError, ServerError) as exc:
                    err = exc
                else:
                    await asyncio.to_thread(os.replace, part, dest)
                    return size
                await asyncio.to_thread(_unlink, part)
                delay = self._retry_delay(err, attempt)
                if attempt >= self.config.max_retries or time.monotonic() + delay >= deadline:
                    raise err
                await self._sleep(delay)
                attempt += 1
        except BaseException:
            await asyncio.shield(asyncio.to_thread(_unlink, part))
            raise

    async def _stream_to(
        self, url: str, params: dict[str, str], part: Path, kind: Literal["video", "image"]
    ) -> int:
        limit = self.config.max_download_bytes
        async with self._http.stream(
            "GET", url, params=params, headers=self._headers, follow_redirects=False
        ) as response:
            status = response.status_code
            if 300 <= status < 400:
                raise redirect_error(status)
            if status >= 400:
                body = await _read_capped(response, ERROR_BODY_LIMIT, truncate=True)
                raise error_from_parts(status, response.headers, body)
            _check_content_type(response.headers.get("content-type"), kind, status)
            declared = response.headers.get("content-length")
            if declared is not None and declared.strip().isdigit() and int(declared) > limit:
                raise _too_large(limit, status)
            handle: Any = None
            size = 0
            try:
                buffer = bytearray()
                async for chunk in _chunks(response):
                    size += len(chunk)
                    if size > limit:
                        raise _too_large(limit, status)
                    buffer += chunk
                    if handle is None:
                        if len(buffer) < _MAGIC_BYTES:
                            continue
                        _check_magic(bytes(buffer[:_MAGIC_BYTES]), kind, status)
                        handle = await asyncio.to_thread(_open_private, part)
                    if len(buffer) >= _WRITE_CHUNK:
                        # Disk writes go to a thread so a slow disk never stalls the event loop.
                        await asyncio.to_thread(handle.write, buffer)
                        buffer.clear()
                if handle is None:
                    # The whole body was shorter than the bytes that tell what it is.
                    _check_magic(bytes(buffer), kind, status)
                    handle = await asyncio.to_thread(_open_private, part)
                if buffer:
                    await asyncio.to_thread(handle.write, buffer)
            finally:
                if handle is not None:
                    await asyncio.to_thread(handle.close)
            return size

    async def read_catalog(self, path: str) -> Any:
        """A server's own account of its models (`/videos/models`, `/models`), decoded JSON, for
        discovery (bot/discovery.py): one GET, retried like any read but at most once, its body
        capped at CATALOG_BODY_LIMIT. What it says is untrusted; the caller bounds it."""
        answer = await self._send("GET", path, idempotent=True, retries=1)
        if len(answer.body) > CATALOG_BODY_LIMIT:
            raise _invalid(f"a model list larger than {CATALOG_BODY_LIMIT // 1024} KiB")
        return _parse(lambda body: body, answer)

    # --- probing: raw reads for bot/api/probe.py (choosing a profile, `python -m videobot doctor`).
    # Kept apart from the API methods above; owned by the probe's author.

    async def probe_get(
        self,
        path: str,
        *,
        params: dict[str, str] | None = None,
        auth_header: Literal["authorization", "api-key"] | None = None,
        wait: float = 5.0,
        max_bytes: int = 64 * 1024,
    ) -> tuple[int, httpx.Headers, bytes]:
        """One GET below the base URL, never retried, with the key sent the configured way or
        the `auth_header` way: the status, headers and at most `max_bytes` of the body, whatever
        the status. Transport failures raise like any other request's."""
        headers = dict(self._headers)
        key = self.config.api_key.get_secret_value()
        if auth_header is not None and key:
            headers.pop("Authorization", None)
            headers.pop("api-key", None)
            if auth_header == "api-key":
                headers["api-key"] = key
            else:
                headers["Authorization"] = f"Bearer {key}"
        await self._limiter.acquire()
        body = bytearray()
        try:
            async with self._http.stream(
                "GET",
                self._base + path,
                params=params,
                headers=headers,
                timeout=wait,
                follow_redirects=False,
            ) as response:
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= max_bytes:
                        break
        except httpx.TransportError as exc:
            raise error_from_transport(exc, sent=not isinstance(exc, _NOT_SENT)) from None
        return response.status_code, response.headers, bytes(body[:max_bytes])


def parse_poll_after(value: str | None, *, cap: float = MAX_POLL_AFTER) -> float | None:
    """`openai-poll-after-ms` in seconds, capped at `cap`; None when absent or not a
    finite, non-negative number."""
    if not value:
        return None
    try:
        ms = float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(ms) or ms < 0:
        return None
    return min(ms / 1000, cap)


def _seg(video_id: str) -> str:
    # Ids come from servers and go into paths: refuse what could change the path (`/`, `.`,
    # `..`, control characters), then quote anything that could change the URL.
    problem = id_problem(video_id)
    if problem is not None:
        raise InvalidResponseError(f"the video service gave an unusable video id ({problem})")
    return quote(video_id, safe="-_.~")


def _norm(prompt: str) -> str:
    # Servers may trim or re-space the prompt they echo; nothing else may differ.
    return " ".join(prompt.split())


def _invalid(what: str, status: int | None = None) -> InvalidResponseError:
    suffix = f" (HTTP {status})" if status is not None else ""
    return InvalidResponseError(f"the video service answered with {what}{suffix}", status=status)


def _too_large(limit: int, status: int) -> InvalidResponseError:
    return _invalid(f"a download larger than {limit // (1024 * 1024)} MB", status)


def _unknown(attempted_at: float, cause: VideoAPIError) -> CreateOutcomeUnknown:
    # The bot's own words for the cause: this message is stored and shown to the member.
    return CreateOutcomeUnknown(
        f"the video service did not confirm the request ({describe_error(cause)})",
        attempted_at=attempted_at,
        cause=cause,
    )


def _parse(parser: Callable[[Any], _T], answer: _Answer) -> _T:
    """Decode and validate a JSON answer; anything unusable is InvalidResponseError."""
    status = answer.status
    try:
        body = json.loads(answer.body)
    except (ValueError, RecursionError):
        # Not JSON, not UTF-8, or nested deeper than anything the API sends.
        raise _invalid("something that is not JSON", status) from None
    try:
        return parser(body)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _invalid(f"an unreadable answer: {_reason(exc)}", status) from None


def _reason(exc: Exception) -> str:
    # Only the field's place and the kind of problem: a validation error's text may quote the
    # server's values.
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return redact(f"{where}: {first['type']}", 120)
    return type(exc).__name__


async def _read_capped(response: httpx.Response, limit: int, *, truncate: bool) -> bytes:
    """At most `limit` bytes of the body; beyond it the rest is left unread (and the
    connection closed), or, for a body that must be whole, InvalidResponseError."""
    declared = response.headers.get("content-length")
    if (
        not truncate
        and declared is not None
        and declared.strip().isdigit()
        and int(declared) > limit
    ):
        raise _invalid(f"an answer larger than {limit // 1024} KiB", response.status_code)
    body = bytearray()
    async for chunk in _chunks(response):
        body += chunk
        if len(body) > limit:
            if truncate:
                return bytes(body[:limit])
            raise _invalid(f"an answer larger than {limit // 1024} KiB", response.status_code)
    return bytes(body)


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    # A body that claims an encoding it does not have is the server's fault, not a crash.
    try:
        async for chunk in response.aiter_bytes():
            yield chunk
    except httpx.DecodingError as exc:
        raise _invalid(
            f"a body that could not be decoded ({type(exc).__name__})", response.status_code
        ) from None


# Media types a server may give a download; a body typed as anything else (HTML, JSON, text)
# is an error page, whatever its status.
_GENERIC_TYPES = frozenset(
    {"application/octet-stream", "binary/octet-stream", "application/binary", "application/mp4"}
)


def _check_content_type(value: str | None, kind: Literal["video", "image"], status: int) -> None:
    if not value:
        return
    media = value.split(";", 1)[0].strip().lower()
    if media in _GENERIC_TYPES or media.startswith(f"{kind}/"):
        return
    wanted = "a video" if kind == "video" else "an image"
    raise _invalid(f"{redact(media, 60)} where {wanted} was expected", status)


# Top-level boxes an ISO media file (mp4, mov) may start with; `ftyp` in all recent encoders.
_ISO_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"})


def _check_magic(head: bytes, kind: Literal["video", "image"], status: int) -> None:
    if kind == "video":
        if head[4:8] in _ISO_BOXES or head.startswith(b"\x1a\x45\xdf\xa3"):
            return
        raise _invalid("a body that is not a video (mp4, mov or webm)", status)
    if (
        (head.startswith(b"RIFF") and head[8:12] == b"WEBP")
        or head.startswith(b"\xff\xd8\xff")
        or head.startswith(b"\x89PNG\r\n\x1a\n")
    ):
        return
    raise _invalid("a body that is not an image (webp, jpeg or png)", status)


def _loop_time_at(monotonic_deadline: float) -> float:
    # asyncio's clock is time.monotonic on every supported platform, but say so explicitly.
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


def _open_private(path: Path) -> Any:
    return open_private(path)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
