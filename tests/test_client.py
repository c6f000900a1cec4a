"""The Videos API client over real loopback sockets: error mapping, safe retries, ambiguous creates
and the exact rules for adopting their jobs, multipart encoding, paging and streamed downloads, and
every bound on what a server may send (sizes, numbers, ids, redirects, content)."""

from __future__ import annotations

import io
import json
import math
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from PIL import Image
from pydantic import SecretStr

from bot.api.adoption import CreateSearch, JobMatch
from bot.api.answers import JSON_BODY_LIMIT
from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CreateOutcomeUnknown,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnsupportedOperation,
    VideoAPIError,
    describe_error,
)
from bot.api.models import ContentVariant, CreateVideo, Phase, ReferenceImage
from bot.api.profiles import PROFILES, Capabilities
from tests.scripted_api import ScriptedAPI, Stream, answer, hang, raw, video

KEY = "sk-test-secret-abc123"
REQUEST = CreateVideo(prompt="a fox", model="sora-2", seconds="4", size="1280x720")
# The first box of an mp4 as encoders write it.
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
MATCH = JobMatch(prompt="a fox", model="sora-2", size="1280x720", seconds="4")


def listing(*items: Any, has_more: bool | None = False) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "list", "data": list(items)}
    if has_more is not None:
        body["has_more"] = has_more
    return body


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    # Shorter than conftest's: the client's read timeout and body deadline follow from it.
    async with httpx.AsyncClient(timeout=httpx.Timeout(2.0, connect=1.0)) as client:
        yield client


def make_client(
    http: httpx.AsyncClient, url: str, caps: Capabilities | None = None, **config: Any
) -> VideosClient:
    cfg = ClientConfig(
        base_url=url, api_key=SecretStr(KEY), capabilities=caps or Capabilities(), **config
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


async def test_ambiguous_create_is_reported_at_once_and_its_job_found_by_the_caller(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    # The server started the job, then failed to answer: the job is in the listing.
    now = int(time.time())
    started = video("v_adopt", created_at=now, prompt="a fox")
    other = video("v_other", created_at=now, prompt="another prompt")
    old = video("v_old", created_at=now - 3600, prompt="a fox")
    api.on("POST", "/videos", answer(500, "internal error"))
    api.on("GET", "/videos", answer(200, listing(other, started, old)))
    client = make_client(http, api.url)
    with pytest.raises(CreateOutcomeUnknown) as info:
        await client.create(REQUEST)
    # The client does not look for the job itself: only the caller knows which jobs are owned.
    assert api.count("GET", "/videos") == 0
    assert isinstance(info.value.cause, ServerError)
    found = await client.find_created(MATCH, since=info.value.attempted_at)
    assert found == CreateSearch(video=found.video, ambiguous=False)
    assert found.video is not None and found.video.id == "v_adopt"
    assert api.count("POST", "/videos") == 1


async def test_ambiguous_create_not_found_is_reported_never_resent(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("POST", "/videos", answer(502, "bad gateway"))
    api.on("GET", "/videos", answer(200, listing()))
    client = make_client(http, api.url)
    with pytest.raises(CreateOutcomeUnknown) as info:
        await client.create(REQUEST)
    assert isinstance(info.value.cause, ServerError)
    assert info.value.attempted_at > 0
    assert await client.find_created(MATCH, since=info.value.attempted_at) == CreateSearch(None)
    assert api.count("POST", "/videos") == 1
    assert api.count("GET", "/videos") == 1


async def test_create_timeout_is_ambiguous_and_not_resent(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    # Never answered while the test runs (the scripted server drops it at exit); the client's
    # timeout leaves room for a loaded machine to get the request there first.
    api.on("POST", "/videos", hang(60))
    async with httpx.AsyncClient(timeout=httpx.Timeout(1.0)) as quick:
        client = make_client(quick, api.url)
        with pytest.raises(CreateOutcomeUnknown) as info:
            await client.create(REQUEST)
    assert isinstance(info.value.cause, APITimeoutError)
    assert api.count("POST", "/videos") == 1
    assert api.count("GET", "/videos") == 0


async def test_a_create_answer_that_cannot_be_read_is_ambiguous_not_a_failure(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    # The server said yes, so a job may be running there: never a refund-and-resend case.
    api.on(
        "POST",
        "/videos",
        answer(200, video("../../etc")),
        raw(200, "<html>ok</html>"),
        answer(200, video("v1", prompt="x" * (JSON_BODY_LIMIT + 1))),
        raw(200, b"\x1f\x8b not gzip", **{"Content-Encoding": "gzip"}),
    )
    client = make_client(http, api.url)
    for _ in range(4):
        with pytest.raises(CreateOutcomeUnknown) as info:
            await client.create(REQUEST)
        assert isinstance(info.value.cause, InvalidResponseError)
    assert api.count("POST", "/videos") == 4


async def test_a_redirected_create_is_refused_not_followed(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("POST", "/videos", raw(307, b"", Location="/v1/other"))
    with pytest.raises(InvalidResponseError, match=r"redirect \(HTTP 307\)"):
        await make_client(http, api.url).create(REQUEST)
    assert [s.path for s in api.seen] == ["/videos"]


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


async def test_sound_goes_under_each_servers_own_name(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("POST", "/videos", answer(200, video("v4")))
    with_options = REQUEST.model_copy(update={"audio": False, "seed": 7})
    await make_client(http, api.url, caps=PROFILES["vllm-omni"]).create(with_options)
    multipart = api.seen[-1].body
    assert b'name="generate_sound"\r\n\r\nfalse\r\n' in multipart
    assert b"generate_audio" not in multipart
    assert b'name="seed"\r\n\r\n7\r\n' in multipart
    await make_client(http, api.url).create(with_options)
    sent = json.loads(api.seen[-1].body)
    assert sent["generate_audio"] is False and sent["seed"] == 7
    assert "generate_sound" not in sent


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
    caps = Capabilities(list_headers={"custom-llm-provider": "openai"})
    client = make_client(http, api.url, caps=caps)
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
        # An mp4 starts with its `ftyp` box; the rest is filler of the right length.
        await response.write(MP4_HEAD + chunk[len(MP4_HEAD) :])
        for _ in range(size // len(chunk) - 1):
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
    api.on("GET", "/videos/a b?c#d%", answer(200, video("a b?c#d%")))
    client = make_client(http, api.url)
    got = await client.retrieve("a b?c#d%")
    assert got.id == "a b?c#d%"
    assert api.seen[-1].path == "/videos/a b?c#d%"
    assert api.seen[-1].query == {}


# ---------------------------------------------------------------------- tolerant parsing


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Real bytes of each kind a download may carry."""
    from bot.sim.media import render_video

    folder = tmp_path_factory.mktemp("media")
    mp4 = render_video(folder / "clip.mp4", 64, 64, 1, 4, "a fox").read_bytes()
    out: dict[str, bytes] = {"mp4": mp4}
    for fmt in ("WEBP", "JPEG", "PNG"):
        buf = io.BytesIO()
        Image.new("RGB", (32, 18), (30, 90, 160)).save(buf, fmt)
        out[fmt.lower()] = buf.getvalue()
    return out


async def test_odd_values_in_a_job_are_tolerated_not_fatal(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    # vLLM-Omni's integer error code; a progress of 1e400 (infinity to a JSON parser); a
    # completion time in the year 10**22; an unknown status: still one readable job.
    body = (
        '{"id": "v1", "status": "moderating", "progress": 1e400, "completed_at": '
        + str(10**30)
        + ', "expires_at": -5, "created_at": 1700000000.5, "seconds": 8.0,'
        ' "error": {"code": 500, "message": "CUDA out of memory"}}'
    )
    api.on("GET", "/videos/v1", raw(200, body))
    client = make_client(http, api.url)
    got = await client.retrieve("v1")
    assert (got.status, got.phase, got.progress) == ("moderating", Phase.RUNNING, None)
    assert (got.completed_at, got.expires_at, got.created_at) == (None, None, 1_700_000_000)
    assert got.seconds == "8"
    assert got.error is not None
    assert (got.error.code, got.error.message) == ("500", "CUDA out of memory")


@pytest.mark.parametrize(
    ("code", "expected"),
    [(500, "500"), (4.0, "4"), (True, "true"), ("moderation", "moderation"), ({"a": 1}, None)],
)
async def test_an_error_code_may_be_any_scalar(
    api: ScriptedAPI, http: httpx.AsyncClient, code: object, expected: str | None
) -> None:
    api.on("GET", "/videos/v1", answer(200, video("v1", status="failed", error={"code": code})))
    got = await make_client(http, api.url).retrieve("v1")
    assert got.phase is Phase.FAILED
    assert got.error is not None and got.error.code == expected


@pytest.mark.parametrize(("progress", "expected"), [(-3, 0), (250, 100), (42.9, 42), ("7", 7)])
async def test_progress_is_clamped(
    api: ScriptedAPI, http: httpx.AsyncClient, progress: object, expected: int
) -> None:
    api.on("GET", "/videos/v1", answer(200, video("v1", progress=progress)))
    assert (await make_client(http, api.url).retrieve("v1")).progress == expected


async def test_a_list_skips_what_it_cannot_read_and_names_what_it_can(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    items = (
        '[{"id": "good", "status": "in_progress", "progress": 1e400},'
        ' {"status": "completed"},'  # no id: dropped
        ' "video_7",'  # not an object: dropped
        " 12,"
        ' {"id": "../../x", "status": "completed"},'  # unsafe id: dropped
        ' {"id": "odd", "status": {"phase": "done"}},'  # unreadable, but its id is usable
        ' {"id": "fine", "status": "failed", "error": {"code": 500}}]'
    )
    api.on("GET", "/videos", raw(200, '{"object": "list", "data": ' + items + "}"))
    page = await make_client(http, api.url).list(limit=100)
    assert [v.id for v in page.data] == ["good", "fine"]
    assert page.unreadable_ids == ["odd"]
    assert page.has_more is None


@pytest.mark.parametrize(
    "body",
    [
        '{"object": "list", "data": {"id": "v1"}}',
        '["not", "a", "page"]',
        '{"object": "list", "data": [' + "[" * 5000 + "]" * 5000 + "]}",
    ],
)
async def test_a_list_that_is_not_a_list_is_an_invalid_response(
    api: ScriptedAPI, http: httpx.AsyncClient, body: str
) -> None:
    api.on("GET", "/videos", raw(200, body))
    with pytest.raises(InvalidResponseError) as info:
        await make_client(http, api.url).list()
    assert info.value.status == 200


# ---------------------------------------------------------------------- hostile answers on reads


@pytest.mark.parametrize(
    ("responder", "kind", "wording"),
    [
        (answer(403, "key sk-live-abcdef123456 may not read this"), PermissionDeniedError, "403"),
        (raw(302, b"", Location="http://127.0.0.1:1/elsewhere"), InvalidResponseError, "302"),
        (
            raw(200, "<!doctype html><title>Login</title>", "text/html"),
            InvalidResponseError,
            "JSON",
        ),
        (raw(200, b'{"id": "v1", "status": "\xff\xfe"}'), InvalidResponseError, "JSON"),
        (raw(200, '{"id": "v1"', "application/json"), InvalidResponseError, "JSON"),
        (raw(200, '{"status": "queued"}'), InvalidResponseError, "id"),
        (raw(200, "[" * 100_000), InvalidResponseError, "JSON"),
        (
            raw(200, b"\x1f\x8b garbage", "application/json", **{"Content-Encoding": "gzip"}),
            InvalidResponseError,
            "decoded",
        ),
    ],
)
async def test_a_hostile_answer_on_retrieve_is_one_typed_error(
    api: ScriptedAPI,
    http: httpx.AsyncClient,
    responder: Any,
    kind: type[Exception],
    wording: str,
) -> None:
    api.on("GET", "/videos/v1", responder)
    client = make_client(http, api.url)
    with pytest.raises(kind) as info:
        await client.retrieve("v1")
    assert wording in describe_error(info.value)  # type: ignore[arg-type]
    assert "abcdef123456" not in str(info.value)
    # Never retried (none of these gets better by asking again) and never followed.
    assert api.count("GET", "/videos/v1") == 1
    assert [s.path for s in api.seen] == ["/videos/v1"]


async def test_a_redirect_is_never_followed_even_by_a_following_http_client(
    api: ScriptedAPI,
) -> None:
    api.on("GET", "/videos/v1", raw(307, b"", Location="/v1/videos/v2"))
    api.on("GET", "/videos/v2", answer(200, video("v2")))
    async with httpx.AsyncClient(follow_redirects=True) as following:
        client = make_client(following, api.url)
        with pytest.raises(InvalidResponseError, match=r"redirect \(HTTP 307\)"):
            await client.retrieve("v1")
    assert api.count("GET", "/videos/v2") == 0


async def test_a_json_answer_larger_than_the_cap_is_refused(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    big = video("v1", prompt="x" * (JSON_BODY_LIMIT + 10))
    api.on("GET", "/videos/v1", answer(200, big))
    api.on("GET", "/videos/v2", Stream(head=b'{"id": "v2", "prompt": "', chunk=b"x" * 65536))
    client = make_client(http, api.url)
    with pytest.raises(InvalidResponseError, match="larger than"):
        await client.retrieve("v1")
    # Without a Content-Length the cap holds while reading.
    with pytest.raises(InvalidResponseError, match="larger than"):
        await client.retrieve("v2")


async def test_a_trickling_answer_ends_at_the_body_deadline(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    # One byte every 20 ms never trips the read timeout and would take days to reach the cap.
    body = Stream(head=b'{"id": "v1", "prompt": "', chunk=b"x", delay=0.02)
    api.on("GET", "/videos/v1", body)
    api.on("POST", "/videos", body)
    client = make_client(http, api.url, max_retries=1, body_deadline=0.3)
    with pytest.raises(APITimeoutError):
        await client.retrieve("v1")
    assert api.count("GET", "/videos/v1") == 2
    # On a create the same is a lost answer: ambiguous, never sent again.
    with pytest.raises(CreateOutcomeUnknown) as info:
        await client.create(REQUEST)
    assert isinstance(info.value.cause, APITimeoutError)
    assert api.count("POST", "/videos") == 1


async def test_an_enormous_error_body_is_read_only_to_64_kib(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    # 600 MB announced and streamed; the client stops after 64 KiB and hangs up.
    body = Stream(
        status=500,
        head=b'{"error": {"message": "' + b"A" * 1000,
        chunk=b"B" * 65536,
        repeat=600 * 16,
        content_type="application/json",
        content_length=600 * 1024 * 1024,
    )
    api.on("GET", "/videos/v1", body)
    client = make_client(http, api.url, max_retries=0)
    with pytest.raises(ServerError) as info:
        await client.retrieve("v1")
    await body.finished.wait()
    assert body.sent < 32 * 1024 * 1024, body.sent
    assert len(info.value.message) <= 300
    assert "\n" not in info.value.message


@pytest.mark.parametrize(
    ("header", "expected"),
    [("15000", 15.0), ("1e15", 60.0), ("inf", None), ("nan", None), ("-5", None), ("soon", None)],
)
async def test_the_poll_hint_is_capped_and_garbage_ignored(
    api: ScriptedAPI, http: httpx.AsyncClient, header: str, expected: float | None
) -> None:
    api.on("GET", "/videos/v1", answer(200, video("v1"), {"openai-poll-after-ms": header}))
    client = make_client(http, api.url)
    await client.retrieve("v1")
    assert client.poll_after == expected


async def test_a_retry_after_of_infinity_is_capped(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on(
        "GET",
        "/videos/v1",
        answer(429, "slow", {"Retry-After": "inf"}),
        answer(429, "slow", {"retry-after-ms": "1e400"}),
        answer(200, video("v1")),
    )
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    cfg = ClientConfig(base_url=api.url, api_key=SecretStr(KEY))
    client = VideosClient(http, cfg, sleep=record)
    await client.retrieve("v1")
    assert len(slept) == 2
    assert all(math.isfinite(s) and 0 <= s <= 60 for s in slept)


# ---------------------------------------------------------------------- ids


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../etc", "x\ny", "v\x00", "v" * 300])
async def test_unsafe_ids_are_refused_before_anything_is_sent(
    api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path, bad: str
) -> None:
    client = make_client(http, api.url)
    with pytest.raises(InvalidResponseError, match="unusable video id"):
        await client.retrieve(bad)
    with pytest.raises(InvalidResponseError):
        await client.download(bad, tmp_path / "v.mp4")
    with pytest.raises(InvalidResponseError):
        await client.delete(bad)
    with pytest.raises(InvalidResponseError):
        await client.remix(bad, "again")
    assert api.seen == []
    _assert_nothing_left(tmp_path)


async def test_a_job_whose_own_id_is_unsafe_is_unreadable(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("GET", "/videos/v1", answer(200, video("..")))
    with pytest.raises(InvalidResponseError):
        await make_client(http, api.url).retrieve("v1")


# ---------------------------------------------------------------------- paging bounds


async def test_paging_that_never_ends_is_capped(api: ScriptedAPI, http: httpx.AsyncClient) -> None:
    now = int(time.time())
    served = 0

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal served
        served += 1
        items = [video(f"p{served}_{i}", created_at=now, prompt="other") for i in range(2)]
        return web.json_response(listing(*items, has_more=True))

    api.on("GET", "/videos", endless)
    client = make_client(http, api.url, max_list_pages=3)
    ids = [v.id async for v in client.iter_videos(page_size=2)]
    assert len(ids) == 6
    assert api.count("GET", "/videos") == 3
    # Looking for a job cannot say "not there" without having read back to the attempt.
    with pytest.raises(InvalidResponseError, match="longer than 3 pages"):
        await client.find_created(MATCH, since=now)
    assert api.count("GET", "/videos") == 6


async def test_paging_stops_on_a_page_without_timestamps(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    page = listing(video("a", created_at=None), video("b", created_at=None), has_more=True)
    api.on("GET", "/videos", answer(200, page))
    client = make_client(http, api.url)
    assert [v.id async for v in client.iter_videos(page_size=2)] == ["a", "b"]
    assert api.count("GET", "/videos") == 1
    with pytest.raises(InvalidResponseError, match="without creation times"):
        await client.find_created(MATCH, since=time.time())


# ---------------------------------------------------------------------- adoption rules

NO_ECHO = Capabilities(echoes_prompt=False)


async def _search(
    api: ScriptedAPI,
    http: httpx.AsyncClient,
    *items: dict[str, Any],
    match: JobMatch = MATCH,
    caps: Capabilities | None = None,
    exclude: tuple[str, ...] = (),
    since: float,
) -> CreateSearch:
    api.on("GET", "/videos", answer(200, listing(*items)))
    client = make_client(http, api.url, caps=caps, adopt_window=90.0, clock_skew=30.0)
    return await client.find_created(match, since=since, exclude_ids=exclude)


def _ids(found: CreateSearch) -> tuple[str | None, bool]:
    return (found.video.id if found.video else None, found.ambiguous)


async def test_adoption_where_the_server_echoes_prompts(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    t = time.time()
    at = int(t)
    mine = video("mine", created_at=at + 5)
    others = [
        video("other_prompt", created_at=at + 1, prompt="a cat"),
        video("other_size", created_at=at + 1, size="720x1280"),
        video("other_seconds", created_at=at + 1, seconds="8"),
        video("no_size", created_at=at + 1, size=None),
        video("too_old", created_at=at - 31),
        video("too_new", created_at=at + 91),
        video("no_time", created_at=None),
    ]
    assert _ids(await _search(api, http, mine, *others, since=t)) == ("mine", False)
    # Owned by another request: never adopted, whatever else matches.
    assert _ids(await _search(api, http, mine, *others, since=t, exclude=("mine",))) == (
        None,
        False,
    )
    # The same prompt twice, neither owned: they cannot be told apart, so neither is taken.
    twin = video("twin", created_at=at + 2)
    assert _ids(await _search(api, http, mine, twin, since=t)) == (None, True)
    # Within the clock skew before the attempt still counts.
    early = video("early", created_at=at - 29)
    assert _ids(await _search(api, http, early, since=t)) == ("early", False)
    # A prompt the server trimmed or re-spaced is the same prompt.
    spaced = video("spaced", created_at=at, prompt="  a   fox ")
    assert _ids(await _search(api, http, spaced, since=t)) == ("spaced", False)


async def test_adoption_where_the_server_does_not_echo_prompts(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    t = time.time()
    at = int(t)
    lone = video("lone", created_at=at + 1, prompt=None)
    other = video("other", created_at=at + 2, prompt=None)
    wrong_size = video("wrong", created_at=at + 2, prompt=None, size="720x1280")
    assert _ids(await _search(api, http, lone, wrong_size, caps=NO_ECHO, since=t)) == (
        "lone",
        False,
    )
    # Two unclaimed candidates: one may be another member's; none is taken.
    assert _ids(await _search(api, http, lone, other, caps=NO_ECHO, since=t)) == (None, True)
    # ...unless the other is already owned.
    assert _ids(
        await _search(api, http, lone, other, caps=NO_ECHO, since=t, exclude=("other",))
    ) == ("lone", False)
    # Where prompts are not echoed, a reported prompt (another member's) is still not proof.
    assert _ids(await _search(api, http, wrong_size, caps=NO_ECHO, since=t)) == (None, False)


async def test_a_request_with_a_reference_is_adopted_only_on_a_prompt_match(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    t = time.time()
    at = int(t)
    with_ref = JobMatch(
        prompt="a fox", model="sora-2", size="1280x720", seconds="4", has_reference=True
    )
    lone = video("lone", created_at=at + 1, prompt=None)
    found = await _search(api, http, lone, match=with_ref, caps=NO_ECHO, since=t)
    # A candidate exists but cannot be proven ours: not adopted, and not "nothing there".
    assert _ids(found) == (None, True)
    assert _ids(await _search(api, http, match=with_ref, caps=NO_ECHO, since=t)) == (None, False)
    echoed = video("echoed", created_at=at + 1)
    assert _ids(await _search(api, http, echoed, match=with_ref, since=t)) == ("echoed", False)


async def test_the_model_is_compared_only_where_the_server_reports_the_requested_one(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    t = time.time()
    served = video("served", created_at=int(t) + 1, model="Wan-AI/Wan2.2-T2V-A14B")
    assert _ids(await _search(api, http, served, since=t)) == (None, False)
    relaxed = Capabilities(reports_requested_model=False)
    assert _ids(await _search(api, http, served, caps=relaxed, since=t)) == ("served", False)


async def test_a_server_that_ignores_the_order_is_read_to_its_end(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    # Oldest first despite order=desc: the first page being old says nothing about the next.
    t = time.time()
    at = int(t)
    old_page = [video(f"old{i}", created_at=at - 3600 + i, prompt="other") for i in range(100)]
    pages = {
        None: listing(*old_page, has_more=True),
        "old99": listing(video("mine", created_at=at + 3), has_more=False),
    }

    async def page(request: web.Request) -> web.StreamResponse:
        return web.json_response(pages[request.query.get("after")])

    api.on("GET", "/videos", page)
    found = await make_client(http, api.url).find_created(MATCH, since=t)
    assert _ids(found) == ("mine", False)
    assert api.count("GET", "/videos") == 2


async def test_a_create_lost_to_a_5xx_says_so_in_the_bots_words(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("POST", "/videos", answer(500, "Traceback: KeyError sk-internal-secret-77"))
    with pytest.raises(CreateOutcomeUnknown) as info:
        await make_client(http, api.url).create(REQUEST)
    assert info.value.message == (
        "the video service did not confirm the request "
        "(the video service had an internal error (HTTP 500))"
    )
    assert describe_error(info.value) == info.value.message


async def test_find_created_raises_when_the_listing_cannot_be_read(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    api.on("GET", "/videos", answer(503, "down"))
    client = make_client(http, api.url, max_retries=0)
    with pytest.raises(ServerError):
        await client.find_created(MATCH, since=time.time())
    cannot_list = make_client(http, api.url, caps=Capabilities(list=False))
    with pytest.raises(UnsupportedOperation):
        await cannot_list.find_created(MATCH, since=time.time())
    assert api.count("GET", "/videos") == 1


async def test_a_create_retried_after_429_stays_within_its_budget(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    # Each retry of a create moves when its job may be created; past the budget it stops, so
    # the adoption window after the attempt stays true.
    api.on("POST", "/videos", answer(429, "busy", {"Retry-After": "40"}))
    slept: list[float] = []

    async def record(seconds: float) -> None:
        slept.append(seconds)

    cfg = ClientConfig(base_url=api.url, api_key=SecretStr(KEY), create_retry_budget=60.0)
    client = VideosClient(http, cfg, sleep=record)
    with pytest.raises(RateLimitError):
        await client.create(REQUEST)
    assert slept == [40.0]
    assert api.count("POST", "/videos") == 2


# ---------------------------------------------------------------------- downloads


def _assert_nothing_left(folder: Path) -> None:
    assert [p.name for p in folder.rglob("*") if p.is_file()] == []


async def test_an_endless_download_is_stopped_at_the_size_cap(
    api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    body = Stream(head=MP4_HEAD)
    api.on("GET", "/videos/v1/content", body)
    client = make_client(http, api.url, max_download_bytes=2 * 1024 * 1024)
    with pytest.raises(InvalidResponseError, match="larger than 2 MB"):
        await client.download("v1", tmp_path / "v.mp4")
    await body.finished.wait()
    _assert_nothing_left(tmp_path)
    # Not retried: a second try would only fetch the same endless body.
    assert api.count("GET", "/videos/v1/content") == 1


async def test_a_declared_size_over_the_cap_is_refused_before_reading(
    api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    body = Stream(head=MP4_HEAD, repeat=64, content_length=len(MP4_HEAD) + 64 * 65536)
    api.on("GET", "/videos/v1/content", body)
    client = make_client(http, api.url, max_download_bytes=1024 * 1024)
    with pytest.raises(InvalidResponseError, match="larger than 1 MB"):
        await client.download("v1", tmp_path / "v.mp4")
    _assert_nothing_left(tmp_path)


async def test_a_trickling_download_ends_at_its_deadline(
    api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    # One byte every 20 ms never trips a read timeout, and never ends on its own.
    body = Stream(head=MP4_HEAD, chunk=b"\0", delay=0.02)
    api.on("GET", "/videos/v1/content", body)
    client = make_client(http, api.url, download_timeout=0.5)
    with pytest.raises(InvalidResponseError, match=r"did not finish within 0\.5 s"):
        await client.download("v1", tmp_path / "v.mp4")
    _assert_nothing_left(tmp_path)
    assert api.count("GET", "/videos/v1/content") == 1


async def test_a_redirect_on_content_is_never_saved(
    api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path, media: dict[str, bytes]
) -> None:
    api.on("GET", "/videos/v1/content", raw(302, b"", Location="/v1/elsewhere"))
    api.on("GET", "/elsewhere", raw(200, media["mp4"], "video/mp4"))
    client = make_client(http, api.url)
    with pytest.raises(InvalidResponseError, match=r"redirect \(HTTP 302\)"):
        await client.download("v1", tmp_path / "v.mp4")
    _assert_nothing_left(tmp_path)
    assert api.count("GET", "/elsewhere") == 0


@pytest.mark.parametrize(
    ("variant", "kind", "content_type", "refused"),
    [
        ("video", "mp4", "video/mp4", False),
        ("video", "mp4", "application/octet-stream", False),
        ("video", "mp4", None, False),
        ("thumbnail", "webp", "image/webp", False),
        ("spritesheet", "jpeg", "image/jpeg", False),
        ("thumbnail", "png", "image/png", False),
        # LiteLLM drops `variant`: the "thumbnail" is the mp4.
        ("thumbnail", "mp4", "video/mp4", True),
        ("thumbnail", "mp4", "image/webp", True),
        # A page or a JSON error with a 200 is not content.
        ("video", "html", "text/html", True),
        ("video", "html", "application/octet-stream", True),
        ("video", "json", "application/json", True),
        ("video", "webp", "video/mp4", True),
        ("video", "empty", "video/mp4", True),
    ],
)
async def test_a_download_must_be_what_was_asked_for(
    api: ScriptedAPI,
    http: httpx.AsyncClient,
    tmp_path: Path,
    media: dict[str, bytes],
    variant: ContentVariant,
    kind: str,
    content_type: str | None,
    refused: bool,
) -> None:
    bodies = {
        **media,
        "html": b"<!doctype html><html><body>Sign in</body></html>",
        "json": b'{"error": {"message": "Video variant video not found"}}',
        "empty": b"",
    }

    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=bodies[kind])
        if content_type is not None:
            response.headers["Content-Type"] = content_type
        return response

    api.on("GET", "/videos/v1/content", respond)
    client = make_client(http, api.url)
    dest = tmp_path / f"out.{variant}"
    if refused:
        with pytest.raises(InvalidResponseError) as info:
            await client.download("v1", dest, variant=variant)
        assert info.value.status == 200
        _assert_nothing_left(tmp_path)
        assert api.count("GET", "/videos/v1/content") == 1
    else:
        size = await client.download("v1", dest, variant=variant)
        assert dest.read_bytes() == bodies[kind]
        assert size == len(bodies[kind])


async def test_a_download_cut_short_by_a_dropped_connection_leaves_nothing(
    api: ScriptedAPI, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    # The connection drops mid-body each time: retried, then given up, with no partial file.
    cut = Stream(head=MP4_HEAD, repeat=4, content_length=10**7, abort=True)
    api.on("GET", "/videos/v1/content", cut)
    client = make_client(http, api.url, max_retries=1)
    with pytest.raises(APIConnectionError):
        await client.download("v1", tmp_path / "v.mp4")
    _assert_nothing_left(tmp_path)
    assert api.count("GET", "/videos/v1/content") == 2


# ---------------------------------------------------------------------- redaction and wording


async def test_a_server_echoing_secrets_is_redacted(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
        return web.Response(status=400, text=f"bad request; you sent:\n{headers}")

    api.on("POST", "/videos", echo)
    client = make_client(http, api.url, extra_headers={"X-Team-Token": "team-token-98765"})
    with pytest.raises(BadRequestError) as info:
        await client.create(REQUEST)
    text = info.value.message
    assert KEY not in text and "team-token-98765" not in text
    assert "\n" not in text and len(text) <= 300
    assert describe_error(info.value) == text


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        # vLLM's envelope: an integer code.
        (
            '{"error": {"message": "Model mismatch", "type": "BadRequest", "code": 400}}',
            "Model mismatch",
            "400",
        ),
        # FastAPI's validation answer.
        (
            '{"detail": [{"loc": ["body", "prompt"], "msg": "Field required"}]}',
            "Field required",
            None,
        ),
        ('{"detail": "Invalid model name"}', "Invalid model name", None),
        (
            '{"error": {"message": {"nested": true}, "code": [1]}}',
            "HTTP 400 from the video service",
            None,
        ),
        ("plain words\nover two lines", "plain words over two lines", None),
    ],
)
async def test_error_envelopes_of_every_shape_read_as_one_line(
    api: ScriptedAPI, http: httpx.AsyncClient, body: str, message: str, code: str | None
) -> None:
    api.on("POST", "/videos", raw(400, body))
    with pytest.raises(BadRequestError) as info:
        await make_client(http, api.url).create(REQUEST)
    assert (info.value.message, info.value.code) == (message, code)


async def test_an_html_error_page_becomes_the_status(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    page = "<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
    api.on("GET", "/videos/v1", raw(502, page, "text/html"))
    with pytest.raises(ServerError) as info:
        await make_client(http, api.url, max_retries=0).retrieve("v1")
    assert info.value.message == "HTTP 502 from the video service"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "refused the bot's key (HTTP 401): check OPENAI_API_KEY and OPENAI_AUTH_HEADER"),
        (403, "does not allow this for the bot's key (HTTP 403)"),
        (503, "the video service had an internal error (HTTP 503)"),
        (400, "Prompt rejected by moderation"),
    ],
)
async def test_describe_error_uses_the_bots_own_words(
    api: ScriptedAPI, http: httpx.AsyncClient, status: int, expected: str
) -> None:
    # OpenAI's own 401 text quotes part of the key.
    text = "Prompt rejected by moderation" if status == 400 else "Incorrect API key: sk-pr****123"
    api.on("GET", "/videos/v1", answer(status, text))
    with pytest.raises(VideoAPIError) as info:
        await make_client(http, api.url, max_retries=0).retrieve("v1")
    said = describe_error(info.value)
    assert expected in said
    assert "sk-pr" not in said and "Incorrect" not in said


async def test_describe_error_for_what_never_reached_a_server(http: httpx.AsyncClient) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = make_client(http, f"http://127.0.0.1:{port}/v1", max_retries=0)
    with pytest.raises(APIConnectionError) as info:
        await client.retrieve("v1")
    assert describe_error(info.value) == "the video service could not be reached"


# ---------------------------------------------------------------------- OpenRouter and discovery


async def test_a_model_list_is_read_whole_or_refused(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    client = make_client(http, api.url, max_retries=0)
    listing = {"data": [{"id": "google/veo-3.1"}]}
    api.on("GET", "/videos/models", answer(200, listing))
    assert await client.read_catalog("/videos/models") == listing
    # Past the cap (1 MiB), nothing of it is used.
    api.on("GET", "/videos/models", answer(200, {"data": ["x" * 1024] * 1100}))
    with pytest.raises(InvalidResponseError):
        await client.read_catalog("/videos/models")
    api.on("GET", "/videos/models", raw(200, b"<html>not json</html>", "text/html"))
    with pytest.raises(InvalidResponseError):
        await client.read_catalog("/videos/models")


async def test_an_openrouter_create_keeps_the_boundarys_checks(
    api: ScriptedAPI, http: httpx.AsyncClient
) -> None:
    client = make_client(http, api.url, caps=PROFILES["openrouter"], max_retries=0)
    request = CreateVideo(prompt="a fox", model="google/veo-3.1", seconds="4", size="1280x720")
    api.on("POST", "/videos", answer(202, {"id": "gen-1", "polling_url": "https://evil/x"}))
    created = await client.create(request)
    assert (created.id, created.phase) == ("gen-1", Phase.RUNNING)
    # A yes whose id cannot be used is as ambiguous as a lost answer, never sent again.
    api.on("POST", "/videos", answer(202, {"id": "../../etc", "status": "pending"}))
    with pytest.raises(CreateOutcomeUnknown):
        await client.create(request)
    assert api.count("POST", "/videos") == 2
    # Reads go to the base URL, never to a polling_url the server names.
    api.on(
        "GET",
        "/videos/gen-1",
        answer(200, {"id": "gen-1", "status": "completed", "usage": {"cost": 1.6}}),
    )
    done = await client.retrieve("gen-1")
    assert done.cost_usd == pytest.approx(1.6)
