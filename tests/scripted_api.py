"""A loopback HTTP server that answers from a script, for driving the client into exact
situations (a 500 after the job was created, a dropped connection, a 429 with Retry-After)
over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    content_type: str
    body: bytes


@dataclass
class ScriptedAPI:
    script: dict[tuple[str, str], list[Responder]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None

    def on(self, method: str, path: str, *responders: Responder) -> None:
        """Answer `method path` with each responder in turn; the last one repeats."""
        self.script[(method, path)] = list(responders)

    def count(self, method: str, path: str) -> int:
        return sum(1 for s in self.seen if s.method == method and s.path == path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path.removeprefix("/v1")
        self.seen.append(
            Seen(
                request.method,
                path,
                dict(request.query),
                dict(request.headers),
                request.content_type,
                body,
            )
        )
        queue = self.script.get((request.method, path))
        if not queue:
            return error(404, "no route in script")
        responder = queue.pop(0) if len(queue) > 1 else queue[0]
        return await responder(request)

    async def __aenter__(self) -> ScriptedAPI:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Once the test is over nothing the script still owes an answer matters: a handler
        # still under way at exit (a `hang`) is cancelled, not waited for (aiohttp reads 0 as
        # "no limit", hence a tenth of a second).
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def video(vid: str = "video_1", **fields: Any) -> dict[str, Any]:
    """A complete VideoResource as the spec requires it."""
    base: dict[str, Any] = {
        "id": vid,
        "object": "video",
        "model": "sora-2",
        "status": "queued",
        "progress": 0,
        "created_at": 1_700_000_000,
        "completed_at": None,
        "expires_at": None,
        "prompt": "a fox",
        "size": "1280x720",
        "seconds": "4",
        "remixed_from_video_id": None,
        "error": None,
    }
    base.update(fields)
    return base


def video_deleted(vid: str = "video_1") -> dict[str, Any]:
    """A DeletedVideoResource: what the service answers a delete with."""
    return {"id": vid, "object": "video.deleted", "deleted": True}


def error(status: int, message: str, **fields: Any) -> web.Response:
    headers = fields.pop("headers", None)
    body = {
        "error": {
            "message": message,
            "type": fields.get("type", "invalid_request_error"),
            "param": fields.get("param"),
            "code": fields.get("code"),
        }
    }
    return web.json_response(body, status=status, headers=headers)


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        if status >= 400:
            return error(status, str(body), headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return respond


def hang(seconds: float) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return web.json_response({})

    return respond


def raw(
    status: int, body: bytes | str, content_type: str = "application/json", **headers: str
) -> Responder:
    """Exactly these bytes (a body no JSON encoder would write: `1e400`, HTML, broken UTF-8)."""
    data = body.encode() if isinstance(body, str) else body

    async def respond(request: web.Request) -> web.StreamResponse:
        return web.Response(
            status=status, body=data, headers={"Content-Type": content_type, **headers}
        )

    return respond


@dataclass
class Stream:
    """A streamed body: `head`, then `chunk` repeated `repeat` times (None: until the client
    goes away), `delay` seconds apart. `sent` counts the bytes that left the server, so a test
    can show the client stopped reading long before the end."""

    status: int = 200
    head: bytes = b""
    chunk: bytes = b"\0" * 65536
    repeat: int | None = None
    delay: float = 0.0
    content_type: str = "video/mp4"
    content_length: int | None = None
    # Drop the connection after the last chunk instead of ending the body properly.
    abort: bool = False
    sent: int = 0
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=self.status, headers={"Content-Type": self.content_type}
        )
        if self.content_length is not None:
            response.content_length = self.content_length
        try:
            await response.prepare(request)
            await response.write(self.head)
            self.sent += len(self.head)
            count = 0
            while self.repeat is None or count < self.repeat:
                if self.delay:
                    await asyncio.sleep(self.delay)
                await response.write(self.chunk)
                self.sent += len(self.chunk)
                count += 1
            if self.abort and request.transport is not None:
                request.transport.close()
            else:
                await response.write_eof()
        except ConnectionError:
            # The client hung up: the point of most of these tests.
            pass
        finally:
            self.finished.set()
        return response
