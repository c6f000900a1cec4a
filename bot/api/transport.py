"""The wire under the client: one request at a time through the shared rate limiter, with
retries only where they are safe, bodies streamed and capped, and downloads streamed to disk.

Reads and downloads retry rate limits, server errors and broken connections. A request that is
not idempotent (a create) is retried only when the server certainly did not act (429, connection
never made), and its retries wait at most `create_retry_budget` in all. A redirect is an error,
never followed and never content.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypedDict

import httpx

from bot import __version__
from bot.api.answers import (
    ERROR_BODY_LIMIT,
    JSON_BODY_LIMIT,
    MAGIC_BYTES,
    Answer,
    check_content_type,
    check_magic,
    chunks,
    invalid,
    read_capped,
    too_large,
)
from bot.api.config import ClientConfig
from bot.api.errors import (
    APIConnectionError,
    RateLimitError,
    ServerError,
    VideoAPIError,
    error_from_parts,
    error_from_transport,
    redirect_error,
)
from bot.api.ratelimit import MinuteRateLimiter, RequestLimiter
from bot.files import open_private

log = logging.getLogger(__name__)

# Transport errors raised before a single byte of the request left this machine.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_WRITE_CHUNK = 1 << 20


class ProbeOptions(TypedDict, total=False):
    """`Transport.probe_get`'s options, which `VideosClient.probe_get` passes on."""

    params: dict[str, str] | None
    auth_header: Literal["authorization", "api-key"] | None
    wait: float
    max_bytes: int


class Transport:
    def __init__(
        self,
        http: httpx.AsyncClient,
        config: ClientConfig,
        *,
        limiter: RequestLimiter | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self._http = http
        self.config = config
        self._limiter: RequestLimiter = limiter or MinuteRateLimiter(10_000)
        self._sleep = sleep
        self.base = config.base_url.rstrip("/")
        self._headers = self._build_headers()

    @property
    def read_timeout(self) -> float:
        read = self._http.timeout.read
        return read if read is not None else 60.0

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

    def _backoff(self, attempt: int) -> float:
        # Equal jitter: at least half the exponential delay, so retries still back off, and a
        # random rest, so many jobs that failed together do not retry together.
        ceiling = min(self.config.backoff_cap, self.config.backoff_base * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)

    def retry_delay(self, err: VideoAPIError, attempt: int) -> float:
        if isinstance(err, RateLimitError) and err.retry_after is not None:
            return min(err.retry_after, self.config.backoff_cap * 3)
        return self._backoff(attempt)

    async def send(
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
    ) -> Answer:
        url = self.base + path
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
            delay = self.retry_delay(err, attempt)
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

    async def _exchange(self, request: httpx.Request) -> Answer:
        """One request; the body is streamed and capped (errors to 64 KiB, JSON to a few MiB)."""
        try:
            response = await self._http.send(request, stream=True, follow_redirects=False)
        except httpx.DecodingError as exc:
            raise invalid(f"an answer that could not be decoded ({type(exc).__name__})") from None
        try:
            status = response.status_code
            if 300 <= status < 400:
                return Answer(status, response.headers, b"")
            error = status >= 400
            limit = ERROR_BODY_LIMIT if error else JSON_BODY_LIMIT
            try:
                async with asyncio.timeout(self._body_deadline()):
                    body = await read_capped(response, limit, truncate=error)
            except TimeoutError:
                # As if the read had timed out: retried where safe, ambiguous for a create.
                raise httpx.ReadTimeout("the body took too long", request=request) from None
            return Answer(status, response.headers, body)
        finally:
            await response.aclose()

    def _body_deadline(self) -> float:
        if self.config.body_deadline is not None:
            return self.config.body_deadline
        return self.read_timeout

    async def download(
        self, path: str, params: dict[str, str], dest: Path, kind: Literal["video", "image"]
    ) -> int:
        """Stream the asset at `path` to `dest` (owner-only); return its size (see
        `VideosClient.download`)."""
        url = self.base + path
        part = dest.with_name(dest.name + ".part")
        deadline = time.monotonic() + self.config.download_timeout
        attempt = 0
        try:
            while True:
                await self._limiter.acquire()
                try:
                    async with asyncio.timeout_at(_loop_time_at(deadline)):
                        size = await self._stream_to(url, params, part, kind)
                except TimeoutError:
                    raise invalid(
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
                delay = self.retry_delay(err, attempt)
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
                body = await read_capped(response, ERROR_BODY_LIMIT, truncate=True)
                raise error_from_parts(status, response.headers, body)
            check_content_type(response.headers.get("content-type"), kind, status)
            declared = response.headers.get("content-length")
            if declared is not None and declared.strip().isdigit() and int(declared) > limit:
                raise too_large(limit, status)
            handle: Any = None
            size = 0
            try:
                buffer = bytearray()
                async for chunk in chunks(response):
                    size += len(chunk)
                    if size > limit:
                        raise too_large(limit, status)
                    buffer += chunk
                    if handle is None:
                        if len(buffer) < MAGIC_BYTES:
                            continue
                        check_magic(bytes(buffer[:MAGIC_BYTES]), kind, status)
                        handle = await asyncio.to_thread(_open_private, part)
                    if len(buffer) >= _WRITE_CHUNK:
                        # Disk writes go to a thread so a slow disk never stalls the event loop.
                        await asyncio.to_thread(handle.write, buffer)
                        buffer.clear()
                if handle is None:
                    # The whole body was shorter than the bytes that tell what it is.
                    check_magic(bytes(buffer), kind, status)
                    handle = await asyncio.to_thread(_open_private, part)
                if buffer:
                    await asyncio.to_thread(handle.write, buffer)
            finally:
                if handle is not None:
                    await asyncio.to_thread(handle.close)
            return size

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
                self.base + path,
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


def _loop_time_at(monotonic_deadline: float) -> float:
    # asyncio's clock is time.monotonic on every supported platform, but say so explicitly.
    loop = asyncio.get_running_loop()
    return loop.time() + (monotonic_deadline - time.monotonic())


def _open_private(path: Path) -> Any:
    return open_private(path)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
