"""Reading a member's image from the CDN with a cap checked before and while reading, against a
real HTTP server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from bot.reference import ReferenceRejected
from discordbot.attachments import AttachmentUnavailable, read_capped

LIMIT = 64 * 1024


class CDN:
    """Serves `/small`, `/declared-huge` (says 1 GB up front), `/endless` (no length, never
    ends), `/gone` (404) and `/empty`; counts the bytes it managed to send."""

    def __init__(self) -> None:
        self.sent = 0
        app = web.Application()
        app.router.add_get("/small", self.small)
        app.router.add_get("/declared-huge", self.declared_huge)
        app.router.add_get("/endless", self.endless)
        app.router.add_get("/gone", self.gone)
        app.router.add_get("/empty", self.empty)
        self.app = app

    async def small(self, request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 1000, content_type="image/png")

    async def declared_huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(1 << 30)})
        await response.prepare(request)
        await response.write(b"x" * 1024)
        return response

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"y" * 16 * 1024
        try:
            for _ in range(100_000):  # bounded: 1.6 GB at most, far past any cap
                await response.write(chunk)
                self.sent += len(chunk)
        except (ConnectionResetError, RuntimeError):
            pass
        return response

    async def gone(self, request: web.Request) -> web.Response:
        return web.Response(status=404)

    async def empty(self, request: web.Request) -> web.Response:
        return web.Response(body=b"")


@pytest.fixture
async def cdn() -> AsyncIterator[tuple[CDN, str]]:
    server = CDN()
    runner = web.AppRunner(server.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_file_within_the_cap_is_read_whole(cdn: tuple[CDN, str]) -> None:
    _, base = cdn
    async with aiohttp.ClientSession() as session:
        assert await read_capped(session, f"{base}/small", LIMIT) == b"x" * 1000


async def test_a_declared_size_over_the_cap_is_refused_before_reading(
    cdn: tuple[CDN, str],
) -> None:
    _, base = cdn
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ReferenceRejected) as caught:
            await read_capped(session, f"{base}/declared-huge", LIMIT)
    assert caught.value.code == "too_large"


async def test_an_undeclared_stream_is_cut_off_at_the_cap(cdn: tuple[CDN, str]) -> None:
    server, base = cdn
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ReferenceRejected) as caught:
            await read_capped(session, f"{base}/endless", LIMIT)
    assert caught.value.code == "too_large"
    assert "the limit is 0.1 MB" in caught.value.reason
    # The reader hung up at the cap: only what socket buffers held was ever sent.
    assert server.sent < 64 * 1024 * 1024


@pytest.mark.parametrize(
    ("path", "error"), [("/gone", AttachmentUnavailable), ("/empty", ReferenceRejected)]
)
async def test_a_missing_or_empty_file_is_refused(
    cdn: tuple[CDN, str], path: str, error: type[Exception]
) -> None:
    _, base = cdn
    async with aiohttp.ClientSession() as session:
        with pytest.raises(error):
            await read_capped(session, f"{base}{path}", LIMIT)
