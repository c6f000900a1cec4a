"""The Videos API client over real loopback sockets: error mapping, safe retries, reconciliation of
ambiguous creates, multipart encoding, paging and streamed downloads."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.api.client import ClientConfig, VideosClient
from bot.api.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CreateOutcomeUnknown,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnsupportedOperation,
)
from bot.api.models import CreateVideo, Phase, ReferenceImage
from bot.api.profiles import PROFILES, Capabilities
from tests.scripted_api import ScriptedAPI, answer, hang, video

KEY = "sk-test-secret-abc123"
REQUEST = CreateVideo(prompt="a fox", model="sora-2", seconds="4", size="1280x720")


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def api() -> AsyncIterator[ScriptedAPI]:
    async with ScriptedAPI() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=1.0)) as client:
        yield client


def make_client(
    http: httpx.AsyncClient, url: str, caps: Capabilities | None = None, **config: Any
) -> VideosClient:
    cfg = ClientConfig(
        base_url=url,
        api_key=SecretStr(KEY),
        capabilities=caps or Capabilities(),
        reconcile_attempts=config.pop("reconcile_attempts", 2),
        **config,
    )
    return VideosClient(http, cfg, sleep=_no_sleep)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, BadRequestError),
        (429, RateLimitError),
        (500, ServerError),
        (503, ServerError),
    ],
)
async def test_errors_map_to_one_hierarchy(
    api: ScriptedAPI, http: httpx.AsyncClient, status: int, kind: type[Exception]
) -> None:
    api.on("GET", "/videos/v1", answer(status, "nope"))
    client = make_client(http, api.url, max_retries=0)
    with pytest.raises(kind) as info:
        await client.retrieve("v1")
    assert getattr(info.value, "status", None) == status
    assert "nope" in str(info.value)


async def test_bad_request_names_the_param_and_never_shows_the_key(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    async def bad(request: web.Request) -> web.StreamResponse:
        body = {
            "error": {
                "message": "Invalid size",
                "type": "invalid_request_error",
                "param": "size",
                "code": "invalid_value",
            }
        }
        return web.json_response(body, status=400)

    api.on("POST", "/videos", bad)
    client = make_client(http, api.url)
    with pytest.raises(BadRequestError) as info:
        await client.create(REQUEST)
    err = info.value
    assert (err.param, err.code, err.message) == ("size", "invalid_value", "Invalid size")
    assert KEY not in str(err) and KEY not in repr(err) and KEY not in repr(client)
    assert api.seen[0].headers["Authorization"] == f"Bearer {KEY}"


async def test_non_json_error_body_still_reads_well(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    async def text(request: web.Request) -> web.StreamResponse:
        return web.Response(status=502, text="upstream gateway exploded")

    api.on("GET", "/videos/v1", text)
    client = make_client(http, api.url, max_retries=0)
    with pytest.raises(ServerError, match="upstream gateway exploded"):
        await client.retrieve("v1")


async def test_rate_limit_carries_retry_after(api: ScriptedAPI, http: httpx.AsyncClient) -> None:
    api.on("GET", "/videos/v1", answer(429, "slow down", {"Retry-After": "7"}))
    client = make_client(http, api.url, max_retries=0)
    with pytest.raises(RateLimitError) as info:
        await client.retrieve("v1")
    assert info.value.retry_after == 7.0


async def test_gets_are_retried_on_429_and_5xx(api: ScriptedAPI, http: httpx.AsyncClient) -> None:
    api.on(
        "GET",
        "/videos/v1",
        answer(500, "boom"),
        answer(429, "busy", {"Retry-After": "0"}),
        answer(200, video("v1", status="in_progress", progress=40)),
    )
    client = make_client(http, api.url)
    got = await client.retrieve("v1")
    assert (got.status, got.progress, got.phase) == ("in_progress", 40, Phase.RUNNING)
    assert api.count("GET", "/videos/v1") == 3


async def test_gets_give_up_after_max_retries(api: ScriptedAPI, http: httpx.AsyncClient) -> None:
    api.on("GET", "/videos/v1", answer(503, "down"))
    client = make_client(http, api.url, max_retries=2)
    with pytest.raises(ServerError):
        await client.retrieve("v1")
    assert api.count("GET", "/videos/v1") == 3


async def test_create_is_retried_after_429_because_nothing_was_started(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("POST", "/videos", answer(429, "busy"), answer(200, video("v9")))
    client = make_client(http, api.url)
    got = await client.create(REQUEST)
    assert got.id == "v9"
    assert api.count("POST", "/videos") == 2
    sent = api.seen[-1]
    assert sent.content_type == "application/json"
    assert b'"seconds":"4"' in sent.body.replace(b" ", b"")


async def test_ambiguous_create_adopts_the_job_it_started(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    # The server started the job, then failed to answer: the job is in the listing.
    import time

    now = int(time.time())
    started = video("v_adopt", created_at=now, prompt="a fox")
    other = video("v_other", created_at=now, prompt="another prompt")
    old = video("v_old", created_at=now - 3600, prompt="a fox")
    api.on("POST", "/videos", answer(500, "internal error"))
    listing = {
        "object": "list",
        "data": [other, started, old],
        "first_id": "v_other",
        "last_id": "v_old",
        "has_more": False,
    }
    api.on("GET", "/videos", answer(200, listing))
    client = make_client(http, api.url)
    got = await client.create(REQUEST)
    assert got.id == "v_adopt"
    assert api.count("POST", "/videos") == 1


async def test_ambiguous_create_not_found_is_reported_never_resent(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("POST", "/videos", answer(502, "bad gateway"))
    empty: dict[str, Any] = {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    api.on("GET", "/videos", answer(200, empty))
    client = make_client(http, api.url, reconcile_attempts=3)
    with pytest.raises(CreateOutcomeUnknown) as info:
        await client.create(REQUEST)
    assert isinstance(info.value.cause, ServerError)
    assert info.value.attempted_at > 0
    assert api.count("POST", "/videos") == 1
    assert api.count("GET", "/videos") == 3


async def test_create_timeout_is_ambiguous_and_not_resent(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("POST", "/videos", hang(5))
    api.on("GET", "/videos", answer(200, {"object": "list", "data": [], "has_more": False}))
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.3)) as quick:
        client = make_client(quick, api.url, reconcile_attempts=1)
        with pytest.raises(CreateOutcomeUnknown) as info:
            await client.create(REQUEST)
    assert isinstance(info.value.cause, APITimeoutError)
    assert api.count("POST", "/videos") == 1


async def test_connection_refused_is_safe_to_retry_and_says_not_sent(
    http: httpx.AsyncClient,
) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    client = make_client(http, f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(APIConnectionError) as info:
        await client.create(REQUEST)
    assert info.value.sent is False


async def test_reference_goes_as_multipart_with_its_real_type(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("POST", "/videos", answer(200, video("v2")))
    client = make_client(http, api.url)
    ref = ReferenceImage(
        data=b"\x89PNG fake bytes", filename="reference.png", content_type="image/png"
    )
    await client.create(REQUEST, ref)
    sent = api.seen[-1]
    assert sent.content_type == "multipart/form-data"
    assert b'name="input_reference"; filename="reference.png"' in sent.body
    assert b"Content-Type: image/png" in sent.body
    assert b'name="seconds"\r\n\r\n4\r\n' in sent.body


async def test_multipart_only_backend_gets_multipart_without_a_file(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("POST", "/videos", answer(200, video("v3")))
    client = make_client(http, api.url, caps=PROFILES["vllm-omni"])
    await client.create(REQUEST)
    sent = api.seen[-1]
    assert sent.content_type == "multipart/form-data"
    assert b'name="prompt"\r\n\r\na fox' in sent.body


async def test_api_key_header_for_azure_and_extra_headers(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("GET", "/videos/v1", answer(200, video("v1")))
    client = make_client(
        http, api.url, auth_header="api-key", extra_headers={"X-Gateway": "team-a"}
    )
    await client.retrieve("v1")
    headers = api.seen[-1].headers
    assert headers["api-key"] == KEY
    assert "Authorization" not in headers
    assert headers["X-Gateway"] == "team-a"


async def test_iterates_all_pages_and_stops_on_a_short_page_without_has_more(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    pages: list[dict[str, Any]] = [
        {"object": "list", "data": [video(f"v{i}") for i in range(0, 2)], "last_id": "v1"},
        {"object": "list", "data": [video("v2")], "last_id": "v2"},
    ]

    async def page(request: web.Request) -> web.StreamResponse:
        assert request.query["limit"] == "2"
        return web.json_response(pages[1] if request.query.get("after") == "v1" else pages[0])

    api.on("GET", "/videos", page)
    client = make_client(http, api.url)
    ids = [v.id async for v in client.iter_videos(page_size=2)]
    assert ids == ["v0", "v1", "v2"]
    assert api.count("GET", "/videos") == 2


async def test_list_sends_the_profile_headers(api: ScriptedAPI, http: httpx.AsyncClient) -> None:
    api.on("GET", "/videos", answer(200, {"object": "list", "data": [], "has_more": False}))
    client = make_client(http, api.url, caps=PROFILES["litellm"])
    await client.list(limit=5, order="asc")
    seen = api.seen[-1]
    assert seen.headers["custom-llm-provider"] == "openai"
    assert seen.query == {"limit": "5", "order": "asc"}


@pytest.mark.parametrize(
    "body",
    [
        {"id": "v1", "object": "video.deleted", "deleted": True},
        video("v1", status="deleted"),
    ],
)
async def test_delete_accepts_both_response_shapes(
    api: ScriptedAPI, http: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    api.on("DELETE", "/videos/v1", answer(200, body))
    client = make_client(http, api.url)
    gone = await client.delete("v1")
    assert (gone.id, gone.deleted) == ("v1", True)


async def test_unsupported_operations_send_nothing(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    client = make_client(http, api.url, caps=PROFILES["sglang"])
    with pytest.raises(UnsupportedOperation):
        await client.remix("v1", "again")
    with pytest.raises(UnsupportedOperation):
        await client.download("v1", Path("/nonexistent/x.webp"), variant="thumbnail")
    assert api.seen == []


async def test_remix_edit_extend_bodies(api: ScriptedAPI, http: httpx.AsyncClient) -> None:
    api.on("POST", "/videos/v1/remix", answer(200, video("r1", remixed_from_video_id="v1")))
    api.on("POST", "/videos/edits", answer(200, video("e1")))
    api.on("POST", "/videos/extensions", answer(200, video("x1", seconds="12")))
    client = make_client(http, api.url)
    assert (await client.remix("v1", "in the rain")).remixed_from_video_id == "v1"
    assert (await client.edit("v1", "make it night")).id == "e1"
    assert (await client.extend("v1", "keep going", "8")).seconds == "12"
    import json

    bodies = [json.loads(s.body) for s in api.seen]
    assert bodies == [
        {"prompt": "in the rain"},
        {"video": {"id": "v1"}, "prompt": "make it night"},
        {"video": {"id": "v1"}, "prompt": "keep going", "seconds": "8"},
    ]


async def test_poll_hint_is_read(api: ScriptedAPI, http: httpx.AsyncClient) -> None:
    api.on("GET", "/videos/v1", answer(200, video("v1"), {"openai-poll-after-ms": "15000"}))
    client = make_client(http, api.url)
    await client.retrieve("v1")
    assert client.poll_after == 15.0


async def test_tolerant_of_missing_fields_and_unknown_status(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("GET", "/videos/v1", answer(200, {"id": "v1", "status": "warming_up", "seconds": 8}))
    client = make_client(http, api.url)
    got = await client.retrieve("v1")
    assert got.phase is Phase.RUNNING
    assert got.progress is None and got.seconds == "8"


async def test_download_streams_to_an_owner_only_file_with_flat_memory(
    api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    size = 24 * 1024 * 1024
    chunk = bytes(range(256)) * 256

    async def body(request: web.Request) -> web.StreamResponse:
        assert request.query == {"variant": "video"}
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.content_length = size
        await response.prepare(request)
        for _ in range(size // len(chunk)):
            await response.write(chunk)
        return response

    api.on("GET", "/videos/v1/content", body)
    client = make_client(http, api.url)
    dest = tmp_path / "out" / "v.mp4"
    tracemalloc.start()
    try:
        written = await client.download("v1", dest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written == size == dest.stat().st_size
    assert dest.stat().st_mode & 0o777 == 0o600
    assert not dest.with_name("v.mp4.part").exists()
    # The server side of this test allocates too; the body itself would be 24 MB.
    assert peak < 8 * 1024 * 1024


async def test_download_retries_a_5xx_and_leaves_no_partial_file(
    api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    api.on("GET", "/videos/v1/content", answer(500, "try later"))
    client = make_client(http, api.url, max_retries=2)
    dest = tmp_path / "v.mp4"
    with pytest.raises(ServerError):
        await client.download("v1", dest)
    assert api.count("GET", "/videos/v1/content") == 3
    assert not dest.exists() and not dest.with_name("v.mp4.part").exists()


async def test_ids_are_opaque_and_quoted_into_paths(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("GET", "/videos/a/b?c", answer(200, video("a/b?c")))
    client = make_client(http, api.url)
    got = await client.retrieve("a/b?c")
    assert got.id == "a/b?c"
    assert api.seen[-1].path == "/videos/a/b?c"
    assert api.seen[-1].query == {}
