"""A hostile Videos API: a reverse proxy on loopback in front of the simulator, where each way a
real server has been seen to misbehave can be switched on for one job.

Healthy jobs pass through untouched to `bot.sim.SimServer`, so they become real, playable videos.
A behaviour is attached to a job by a marker word in its prompt, `hostile:<name>` ("a cat
hostile:forbidden"; several markers combine), learned from the create's answer, or explicitly with
`HostileServer.attach(video_id, name)`. Behaviours that act on the create itself (a 5xx, a 429)
can only come from the marker, since the job has no id yet.

| behaviour | route | what the server does |
|---|---|---|
| `error-code-int` | GET, list | reports the job failed with an integer `error.code` (vLLM-Omni) |
| `forbidden` | GET | 403 on the job's GET (another key's id at LiteLLM) |
| `redirect` | GET | 302 back to itself, with an HTML body |
| `html` | GET | 200 with an HTML page instead of JSON (a captive proxy) |
| `html-502` | GET | 502 with nginx's HTML error page |
| `progress-inf` | GET, list | `progress: 1e400` (infinite once parsed), running, for 8 s |
| `completed-at-huge` | GET, list | `completed_at: 10**30` once the job is done |
| `list-item-no-id` | list | the job's list item has no `id` |
| `list-item-wrong-type` | list | the job's list item is a string, not an object |
| `list-item-bad-field` | list | the job's list item has `created_at: "yesterday"` |
| `poll-after-huge` | GET | `openai-poll-after-ms: 1e15` |
| `poll-after-inf` | GET | `openai-poll-after-ms: inf` |
| `endless-download` | content | a 200 mp4 that never ends (streamed, no length) |
| `huge-error-body` | GET | 500 with a 600 MB body (streamed, never buffered here) |
| `content-redirect` | content | 302 on `/content` with an HTML body |
| `has-more-forever` | list | `has_more: true` on every page, then other users' videos forever |
| `unknown-status` | GET, list | `status: "moderating"`, forever |
| `create-500-before` | create | the first create answers 500 without making the job |
| `create-500-after` | create | the first create makes the job, then answers 500 |
| `create-429` | create | the first create answers 429 (`Retry-After: 1`) |
| `unsafe-id-slash` | create, all | the job's id is `<id>/../../admin` |
| `unsafe-id-dots` | create, all | the job's id is `..` |
| `thumbnail-is-mp4` | content | `variant=thumbnail` answers the mp4 (LiteLLM drops `variant`) |
| `echo-auth` | create | 400 whose message repeats every request header, the key included |
| `echo-auth-401` | create | 401 whose message repeats the auth header (a gateway's) |

Behaviours marked GET also hide the job from list pages, so a client that lists reads it on its
own (as it must for a job a listing does not show). Every request is recorded in `seen`.

`python -m tests.hostile` serves the simulator and the proxy until interrupted and prints the
proxy's base URL (the benchmarks run it in a process of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import web

from bot.sim import SimConfig, SimServer

log = logging.getLogger(__name__)

MARKER = re.compile(rb"hostile:([a-z0-9-]+)")
# Sizes of the streamed bodies: an endless download stops here (a safety net so a client with no
# bound cannot fill the disk; the connection is then cut, never ended cleanly), and the error
# body of `huge-error-body` is this long.
ENDLESS_CAP_BYTES = 256 * 1024 * 1024
HUGE_ERROR_BYTES = 600 * 1024 * 1024
CHUNK = 1 << 20
# How long `progress-inf` keeps the job running with an infinite progress, at least.
INF_PROGRESS_SECONDS = 8.0
GHOST_PREFIX = "ghost_"
_HOP_BY_HOP = frozenset(
    {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade"}
)
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
PORTAL_PAGE = (
    "<!DOCTYPE html><html><head><title>Sign in to the network</title></head>"
    "<body><h1>Welcome</h1><p>Please sign in to continue.</p></body></html>"
)

Video = dict[str, Any]
# What a list-item hook returns: the item to show (any JSON value), or HIDDEN.
HIDDEN: Any = object()


@dataclass(frozen=True)
class Raw:
    """A JSON number written exactly as given (`1e400`), which `json.dumps` cannot produce."""

    text: str


# ---------------------------------------------------------------------- hook types

BeforeCreate = Callable[["HostileServer", web.Request, int], Awaitable[web.StreamResponse | None]]
AfterCreate = Callable[["HostileServer", Video, int], web.StreamResponse | Video]
Retrieve = Callable[["HostileServer", web.Request, Video], Awaitable[web.StreamResponse]]
ListItem = Callable[[Video], Any]
Content = Callable[["HostileServer", web.Request, str], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Behaviour:
    """One way of misbehaving; each hook is one small function, None where it does not act."""

    name: str
    before_create: BeforeCreate | None = None
    after_create: AfterCreate | None = None
    retrieve: Retrieve | None = None
    list_item: ListItem | None = None
    content: Content | None = None
    # Turns list pages endless (the proxy, not a job, answers the pages past the real ones).
    endless_pages: bool = False
    # Gives the job an id of its own (unsafe): `sim id -> id shown`.
    rename: Callable[[str], str] | None = None


# ---------------------------------------------------------------------- small helpers


def dumps(value: Any) -> str:
    """JSON text, with any `Raw` value written as its text."""
    raws: list[str] = []

    def walk(item: Any) -> Any:
        if isinstance(item, Raw):
            raws.append(item.text)
            return f"@@raw{len(raws) - 1}@@"
        if isinstance(item, dict):
            return {k: walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    text = json.dumps(walk(value))
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"', raw)
    return text


def json_answer(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=dumps(value), status=status, content_type="application/json", headers=headers
    )


def api_error(status: int, message: str, *, type_: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return json_answer(body, status)


def _hide(_: Video) -> Any:
    return HIDDEN


def _running(video: Video) -> bool:
    return video.get("status") not in ("completed", "failed", "expired")


async def _stream_bytes(
    request: web.Request, response: web.StreamResponse, total: int | None
) -> web.StreamResponse:
    """Write zeros until `total` bytes (None: ENDLESS_CAP_BYTES, then cut the connection) or
    until the client goes away; nothing is ever held in memory beyond one chunk."""
    await response.prepare(request)
    chunk = bytes(CHUNK)
    left = ENDLESS_CAP_BYTES if total is None else total
    try:
        while left > 0:
            await response.write(chunk[: min(left, CHUNK)])
            left -= CHUNK
    except ConnectionError:
        return response  # the client stopped reading: what a bounded client does
    if total is None and request.transport is not None:
        # Endless means never ended cleanly: the safety net cuts the connection instead.
        request.transport.abort()
        return response
    await response.write_eof()
    return response


# ---------------------------------------------------------------------- behaviours: job status


async def _failed_with_int_code(
    server: HostileServer, request: web.Request, video: Video
) -> web.StreamResponse:
    return json_answer(_int_code_item(video))


def _int_code_item(video: Video) -> Video:
    return {
        **video,
        "status": "failed",
        "error": {"code": 500, "message": "CUDA out of memory while generating."},
    }


async def _forbidden(
    server: HostileServer, request: web.Request, video: Video
) -> web.StreamResponse:
    return api_error(403, "You do not have access to this video.", type_="permission_error")


async def _redirect(
    server: HostileServer, request: web.Request, video: Video
) -> web.StreamResponse:
    # Back to itself: a client that followed redirects would only loop.
    return web.Response(
        status=302,
        headers={"Location": str(request.url)},
        text="<html><body>Moved <a href='.'>here</a></body></html>",
        content_type="text/html",
    )


async def _html(server: HostileServer, request: web.Request, video: Video) -> web.StreamResponse:
    return web.Response(text=PORTAL_PAGE, content_type="text/html")


async def _html_502(
    server: HostileServer, request: web.Request, video: Video
) -> web.StreamResponse:
    return web.Response(status=502, text=NGINX_502, content_type="text/html")


async def _progress_inf(
    server: HostileServer, request: web.Request, video: Video
) -> web.StreamResponse:
    return json_answer(_progress_inf_item(video))


def _progress_inf_item(video: Video) -> Video:
    # Reported for the job's first INF_PROGRESS_SECONDS even if it is done sooner, so that the
    # odd value outlasts the healthy jobs beside it.
    age = time.time() - float(video.get("created_at") or 0)
    if not _running(video) and age >= INF_PROGRESS_SECONDS:
        return video
    held = {"status": "in_progress", "completed_at": None, "expires_at": None}
    return {**video, **(held if not _running(video) else {}), "progress": Raw("1e400")}


async def _completed_at_huge(
    server: HostileServer, request: web.Request, video: Video
) -> web.StreamResponse:
    return json_answer(_completed_at_huge_item(video))


def _completed_at_huge_item(video: Video) -> Video:
    return {**video, "completed_at": 10**30} if video.get("status") == "completed" else video


async def _unknown_status(
    server: HostileServer, request: web.Request, video: Video
) -> web.StreamResponse:
    return json_answer(_unknown_status_item(video))


def _unknown_status_item(video: Video) -> Video:
    return {**video, "status": "moderating", "completed_at": None, "expires_at": None}


async def _huge_error_body(
    server: HostileServer, request: web.Request, video: Video
) -> web.StreamResponse:
    response = web.StreamResponse(status=500, headers={"Content-Type": "text/plain"})
    response.content_length = server.huge_error_bytes
    return await _stream_bytes(request, response, server.huge_error_bytes)


def _poll_after(value: str) -> Retrieve:
    async def answer(
        server: HostileServer, request: web.Request, video: Video
    ) -> web.StreamResponse:
        return json_answer(video, headers={"openai-poll-after-ms": value})

    return answer


# ---------------------------------------------------------------------- behaviours: list items


def _no_id(video: Video) -> Any:
    return {k: v for k, v in video.items() if k != "id"}


def _wrong_type(video: Video) -> Any:
    return f"video {video.get('id')} ({video.get('status')})"


def _bad_field(video: Video) -> Any:
    return {**video, "created_at": "yesterday"}


# ---------------------------------------------------------------------- behaviours: content


async def _endless(server: HostileServer, request: web.Request, sim_id: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
    response.enable_chunked_encoding()
    return await _stream_bytes(request, response, None)


async def _content_redirect(
    server: HostileServer, request: web.Request, sim_id: str
) -> web.StreamResponse:
    return web.Response(
        status=302,
        headers={"Location": str(request.url)},
        text="<html><body>Found</body></html>",
        content_type="text/html",
    )


async def _thumbnail_is_mp4(
    server: HostileServer, request: web.Request, sim_id: str
) -> web.StreamResponse:
    # `variant` is dropped on the way, as LiteLLM does: every variant is the mp4.
    return await server.forward_content(request, sim_id, variant=None)


# ---------------------------------------------------------------------- behaviours: create


async def _create_500_before(
    server: HostileServer, request: web.Request, attempt: int
) -> web.StreamResponse | None:
    if attempt > 1:
        return None
    return api_error(
        500, "The server had an error while processing your request.", type_="server_error"
    )


def _create_500_after(
    server: HostileServer, video: Video, attempt: int
) -> web.StreamResponse | Video:
    if attempt > 1:
        return video
    return api_error(
        500, "The server had an error while processing your request.", type_="server_error"
    )


async def _create_429(
    server: HostileServer, request: web.Request, attempt: int
) -> web.StreamResponse | None:
    if attempt > 1:
        return None
    response = api_error(429, "Rate limit reached.", type_="requests", code="rate_limit_exceeded")
    response.headers["Retry-After"] = "1"
    return response


async def _echo_auth(
    server: HostileServer, request: web.Request, attempt: int
) -> web.StreamResponse | None:
    echoed = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
    return api_error(
        400,
        f"Invalid value for 'model'. Request headers were: {echoed}",
        type_="invalid_request_error",
        code="invalid_value",
    )


async def _echo_auth_401(
    server: HostileServer, request: web.Request, attempt: int
) -> web.StreamResponse | None:
    sent = request.headers.get("Authorization") or request.headers.get("api-key") or ""
    return api_error(
        401,
        f"Incorrect API key provided: {sent}. Check the key at your gateway.",
        type_="invalid_request_error",
        code="invalid_api_key",
    )


BEHAVIOURS: dict[str, Behaviour] = {
    b.name: b
    for b in (
        Behaviour(
            "error-code-int",
            retrieve=_failed_with_int_code,
            list_item=_int_code_item,
        ),
        Behaviour("forbidden", retrieve=_forbidden, list_item=_hide),
        Behaviour("redirect", retrieve=_redirect, list_item=_hide),
        Behaviour("html", retrieve=_html, list_item=_hide),
        Behaviour("html-502", retrieve=_html_502, list_item=_hide),
        Behaviour("progress-inf", retrieve=_progress_inf, list_item=_progress_inf_item),
        Behaviour(
            "completed-at-huge", retrieve=_completed_at_huge, list_item=_completed_at_huge_item
        ),
        Behaviour("list-item-no-id", list_item=_no_id),
        Behaviour("list-item-wrong-type", list_item=_wrong_type),
        Behaviour("list-item-bad-field", list_item=_bad_field),
        Behaviour("poll-after-huge", retrieve=_poll_after("1e15"), list_item=_hide),
        Behaviour("poll-after-inf", retrieve=_poll_after("inf"), list_item=_hide),
        Behaviour("endless-download", content=_endless),
        Behaviour("huge-error-body", retrieve=_huge_error_body, list_item=_hide),
        Behaviour("content-redirect", content=_content_redirect),
        Behaviour("has-more-forever", endless_pages=True),
        Behaviour("unknown-status", retrieve=_unknown_status, list_item=_unknown_status_item),
        Behaviour("create-500-before", before_create=_create_500_before),
        Behaviour("create-500-after", after_create=_create_500_after),
        Behaviour("create-429", before_create=_create_429),
        Behaviour("unsafe-id-slash", rename=lambda sim_id: f"{sim_id}/../../admin"),
        Behaviour("unsafe-id-dots", rename=lambda sim_id: ".."),
        Behaviour("thumbnail-is-mp4", content=_thumbnail_is_mp4),
        Behaviour("echo-auth", before_create=_echo_auth),
        Behaviour("echo-auth-401", before_create=_echo_auth_401),
    )
}


# ---------------------------------------------------------------------- the server


@dataclass
class Seen:
    """One request as the proxy saw it (the path as sent, ids not decoded)."""

    method: str
    raw_path: str
    query: dict[str, str]
    behaviours: tuple[str, ...] = ()
    status: int | None = None


@dataclass
class HostileServer:
    """The proxy; `upstream` is the simulator's base URL (ending in `/v1`)."""

    upstream: str
    huge_error_bytes: int = HUGE_ERROR_BYTES
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    # Behaviours by the id the client sees.
    jobs: dict[str, set[str]] = field(default_factory=dict)
    # Creates seen per marker set, so "the first create" can be told from a resend.
    create_attempts: Counter[frozenset[str]] = field(default_factory=Counter)
    _shown: dict[str, str] = field(default_factory=dict)  # sim id -> id shown
    _sim: dict[str, str] = field(default_factory=dict)  # id shown -> sim id
    _ghosts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ control

    def attach(self, video_id: str, *names: str) -> None:
        """Switch behaviours on for the job the client knows as `video_id`."""
        unknown = [n for n in names if n not in BEHAVIOURS]
        if unknown:
            raise ValueError(f"unknown behaviour {unknown}; one of {', '.join(BEHAVIOURS)}")
        self.jobs.setdefault(video_id, set()).update(names)

    def behaviours_of(self, video_id: str) -> list[Behaviour]:
        return [BEHAVIOURS[n] for n in sorted(self.jobs.get(video_id, ()))]

    def requests_for(self, video_id: str) -> list[Seen]:
        encoded = quote(video_id, safe="")
        return [s for s in self.seen if f"/videos/{encoded}" in s.raw_path]

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0][1]
        self.url = f"http://{host}:{bound}/v1"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HostileServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ ids

    def _outward(self, video: Video) -> Video:
        sim_id = str(video.get("id", ""))
        shown = self._shown.get(sim_id, sim_id)
        return {**video, "id": shown} if shown != sim_id else video

    def _inward(self, shown: str) -> str:
        return self._sim.get(shown, shown)

    # ------------------------------------------------------------------ routing

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        entry = Seen(request.method, path, dict(request.query))
        self.seen.append(entry)
        response = await self._route(request, path, entry)
        entry.status = response.status
        return response

    async def _route(self, request: web.Request, path: str, entry: Seen) -> web.StreamResponse:
        if not path.startswith("/v1/videos"):
            return api_error(404, f"Unknown route {path}", type_="invalid_request_error")
        rest = [unquote(p) for p in path.removeprefix("/v1/videos").split("/")[1:]]
        method = request.method
        if not rest and method == "POST":
            return await self._create(request, entry)
        if not rest and method == "GET":
            return await self._list(request)
        if len(rest) == 1 and rest[0] not in ("edits", "extensions"):
            entry.behaviours = tuple(sorted(self.jobs.get(rest[0], ())))
            if method == "GET":
                return await self._retrieve(request, rest[0])
            return await self._forward_json(request, f"/videos/{quote(self._inward(rest[0]))}")
        if len(rest) == 2 and rest[1] == "content" and method == "GET":
            entry.behaviours = tuple(sorted(self.jobs.get(rest[0], ())))
            return await self._content(request, rest[0])
        if len(rest) == 2:
            sub = f"/videos/{quote(self._inward(rest[0]))}/{rest[1]}"
            return await self._forward_json(request, sub)
        return await self._forward_json(request, path.removeprefix("/v1"))

    # ------------------------------------------------------------------ upstream

    def _headers(self, request: web.Request) -> dict[str, str]:
        return {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}

    async def _upstream(
        self, request: web.Request, path: str, *, params: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        assert self._session is not None
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + path,
            params=params if params is not None else dict(request.query),
            data=body or None,
            headers=self._headers(request),
            allow_redirects=False,
        ) as answer:
            data = await answer.read()
            headers = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in _HOP_BY_HOP and k.lower() != "content-type"
            }
            headers["Content-Type"] = answer.headers.get("Content-Type", "application/json")
            return answer.status, headers, data

    async def _forward_json(self, request: web.Request, path: str) -> web.StreamResponse:
        status, headers, data = await self._upstream(request, path)
        if status < 400 and headers["Content-Type"].startswith("application/json"):
            body = json.loads(data)
            if isinstance(body, dict) and "id" in body:
                return json_answer(self._outward(body), status)
        return web.Response(status=status, body=data, headers=headers)

    async def forward_content(
        self, request: web.Request, sim_id: str, *, variant: str | None
    ) -> web.StreamResponse:
        """The simulator's asset, streamed through; `variant` None asks for the default."""
        assert self._session is not None
        params = {} if variant is None else {"variant": variant}
        async with self._session.get(
            f"{self.upstream}/videos/{quote(sim_id)}/content",
            params=params,
            headers=self._headers(request),
            allow_redirects=False,
        ) as answer:
            response = web.StreamResponse(status=answer.status)
            response.content_type = answer.headers.get("Content-Type", "application/octet-stream")
            if answer.content_length is not None:
                response.content_length = answer.content_length
            await response.prepare(request)
            async for chunk in answer.content.iter_chunked(CHUNK):
                await response.write(chunk)
            await response.write_eof()
            return response

    # ------------------------------------------------------------------ handlers

    async def _create(self, request: web.Request, entry: Seen) -> web.StreamResponse:
        body = await request.read()
        names = frozenset(m.decode() for m in MARKER.findall(body) if m.decode() in BEHAVIOURS)
        entry.behaviours = tuple(sorted(names))
        self.create_attempts[names] += 1
        attempt = self.create_attempts[names]
        chosen = [BEHAVIOURS[n] for n in sorted(names)]
        for behaviour in chosen:
            if behaviour.before_create is not None:
                early = await behaviour.before_create(self, request, attempt)
                if early is not None:
                    return early
        status, headers, data = await self._upstream(request, "/videos")
        if status >= 400:
            return web.Response(status=status, body=data, headers=headers)
        video: Video = json.loads(data)
        sim_id = str(video["id"])
        shown = sim_id
        for behaviour in chosen:
            if behaviour.rename is not None:
                shown = behaviour.rename(sim_id)
        self._shown[sim_id], self._sim[shown] = shown, sim_id
        if names:
            self.attach(shown, *names)
            log.info("job %s carries %s", shown, ", ".join(sorted(names)))
        answer: web.StreamResponse | Video = self._outward(video)
        for behaviour in chosen:
            if behaviour.after_create is not None and isinstance(answer, dict):
                answer = behaviour.after_create(self, answer, attempt)
        return answer if isinstance(answer, web.StreamResponse) else json_answer(answer)

    async def _retrieve(self, request: web.Request, shown: str) -> web.StreamResponse:
        status, headers, data = await self._upstream(
            request, f"/videos/{quote(self._inward(shown))}"
        )
        if status >= 400:
            return web.Response(status=status, body=data, headers=headers)
        video = self._outward(json.loads(data))
        for behaviour in self.behaviours_of(shown):
            if behaviour.retrieve is not None:
                return await behaviour.retrieve(self, request, video)
        return json_answer(video, headers=_keep_poll_hint(headers))

    async def _content(self, request: web.Request, shown: str) -> web.StreamResponse:
        for behaviour in self.behaviours_of(shown):
            if behaviour.content is not None:
                return await behaviour.content(self, request, self._inward(shown))
        return await self.forward_content(
            request, self._inward(shown), variant=request.query.get("variant")
        )

    async def _list(self, request: web.Request) -> web.StreamResponse:
        endless = any(BEHAVIOURS[n].endless_pages for names in self.jobs.values() for n in names)
        after = request.query.get("after")
        limit = max(1, min(100, int(request.query.get("limit", "20") or "20")))
        if endless and after is not None and after.startswith(GHOST_PREFIX):
            return json_answer(self._ghost_page([], limit))
        params = dict(request.query)
        if after is not None:
            params["after"] = self._inward(after)
        status, headers, data = await self._upstream(request, "/videos", params=params)
        if status >= 400:
            return web.Response(status=status, body=data, headers=headers)
        page: dict[str, Any] = json.loads(data)
        items: list[Any] = []
        for raw in page.get("data", []):
            video = self._outward(raw)
            item: Any = video
            for behaviour in self.behaviours_of(str(video["id"])):
                if behaviour.list_item is not None:
                    item = behaviour.list_item(video)
            if item is not HIDDEN:
                items.append(item)
        page["data"] = items
        if "first_id" in page and page["first_id"] is not None:
            page["first_id"] = self._shown.get(page["first_id"], page["first_id"])
        if "last_id" in page and page["last_id"] is not None:
            page["last_id"] = self._shown.get(page["last_id"], page["last_id"])
        if endless:
            page = self._ghost_page(items, limit)
        return json_answer(page)

    def _ghost_page(self, items: list[Any], limit: int) -> dict[str, Any]:
        """A page filled up with other users' videos, recent ones, and more always to come."""
        now = int(time.time())
        ghosts = [
            {
                "id": f"{GHOST_PREFIX}{next(self._ghosts)}",
                "object": "video",
                "model": "sora-2",
                "status": "completed",
                "progress": 100,
                "created_at": now,
                "prompt": "someone else's video",
                "size": "1280x720",
                "seconds": "4",
            }
            for _ in range(max(0, limit - len(items)))
        ]
        data = [*items, *ghosts]
        last = data[-1] if data else None
        return {
            "object": "list",
            "data": data,
            "first_id": None,
            "last_id": last.get("id") if isinstance(last, dict) else None,
            "has_more": True,
        }


def _keep_poll_hint(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() == "openai-poll-after-ms"}


@contextlib.asynccontextmanager
async def hostile_sim(
    config: SimConfig | None = None, **proxy: Any
) -> AsyncIterator[tuple[SimServer, HostileServer]]:
    """A simulator and the hostile proxy in front of it; the client talks to `proxy.url`."""
    sim = SimServer(config or SimConfig(job_seconds=1.0))
    await sim.start()
    try:
        async with HostileServer(sim.base_url, **proxy) as server:
            yield sim, server
    finally:
        await sim.stop()


# ---------------------------------------------------------------------- serving on its own


async def _serve(args: argparse.Namespace) -> None:
    config = SimConfig(
        job_seconds=args.job_seconds, seed=1, cache_dir=args.cache_dir, profile="openai"
    )
    async with hostile_sim(config) as (_, server):
        print(server.url, flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.hostile", description=__doc__)
    parser.add_argument("--job-seconds", type=float, default=3600.0)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
