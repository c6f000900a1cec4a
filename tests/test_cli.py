"""`python -m videobot generate` end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from pathlib import Path
from typing import Any

import av
import pytest
from aiohttp import web
from PIL import Image

from bot.sim import SimConfig, SimServer
from tests.scripted_api import Responder, ScriptedAPI, Stream, answer, raw, video

ROOT = Path(__file__).resolve().parents[1]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SIM_", "VIDEO_"))}
    # The shortest poll interval the settings allow: a job is seen finished a second after it
    # is, not ten (the default) later.
    env.update(
        DATA_DIR=str(tmp_path / "data"),
        SIM_JOB_SECONDS="1",
        LOG_LEVEL="WARNING",
        POLL_INTERVAL_SECONDS="1",
    )
    env.update(extra)
    return env


async def run_cli(
    tmp_path: Path, *args: str, wait_limit: float = 120, **env: str
) -> tuple[int, str, str]:
    # cwd is the test's own folder so a developer's .env never leaks into the run.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "videobot",
        *args,
        cwd=tmp_path,
        env={**cli_env(tmp_path, **env), "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), wait_limit)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def image_bytes(width: int, height: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buf, fmt)
    return buf.getvalue()


async def test_generate_with_the_embedded_simulator_writes_a_playable_mp4(tmp_path: Path) -> None:
    out_file = tmp_path / "fox.mp4"
    code, out, err = await run_cli(
        tmp_path,
        "generate",
        "a red fox in the snow",
        "--model",
        "sora-2",
        "--seconds",
        "4",
        "--size",
        "1280x720",
        "--out",
        str(out_file),
    )
    assert code == 0, err
    sim_lines = [line for line in out.splitlines() if "simulator" in line]
    assert len(sim_lines) == 1
    assert "No OPENAI_BASE_URL or OPENAI_API_KEY set" in sim_lines[0]
    assert f"video: {out_file}" in out
    assert "completed" in out
    with av.open(str(out_file)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1280, 720)
        assert container.duration is not None
        assert abs(container.duration / av.time_base - 4) < 0.2
    thumb = out_file.with_suffix(".webp")
    with Image.open(thumb) as img:
        assert img.format == "WEBP"


async def test_generate_with_a_key_uses_the_configured_base_url(tmp_path: Path) -> None:
    reference = tmp_path / "photo.jpg"
    reference.write_bytes(image_bytes(640, 480, "JPEG"))
    sim = SimServer(SimConfig(job_seconds=0.5, api_key="sk-test-123"))
    async with sim as url:
        code, out, err = await run_cli(
            tmp_path,
            "generate",
            "a lighthouse",
            "--size",
            "720x1280",
            "--reference",
            str(reference),
            "--out",
            str(tmp_path / "l.mp4"),
            OPENAI_API_KEY="sk-test-123",
            OPENAI_BASE_URL=url,
            POLL_INTERVAL_SECONDS="1",
        )
    assert code == 0, err
    assert "simulator" not in out
    assert "sk-test-123" not in out + err
    assert (tmp_path / "l.mp4").stat().st_size > 1000
    (job,) = sim.videos.values()
    # The 640x480 photo was fitted to the requested size before upload.
    assert job.reference is not None
    with Image.open(io.BytesIO(job.reference)) as fitted:
        assert fitted.size == (720, 1280)


BAD_INPUT = [
    (["--size", "640x480"], "size"),
    (["--seconds", "5"], "seconds"),
    (["--model", "no-such-model"], "model"),
    (["--reference", "missing.png"], "not found"),
    (["--reference", "notes.txt"], "reference image refused"),
    (["--reference", "bomb.png"], "reference image refused"),
]


@pytest.mark.parametrize(("extra", "expected"), BAD_INPUT)
async def test_bad_input_exits_with_one_line_and_sends_nothing(
    tmp_path: Path, extra: list[str], expected: str
) -> None:
    (tmp_path / "notes.txt").write_text("not an image")
    # A tiny file that claims an enormous canvas: Pillow's bomb check must refuse it.
    Image.new("1", (20_000, 20_000)).save(tmp_path / "bomb.png", optimize=True)
    async with ScriptedAPI() as api:
        code, _out, err = await run_cli(
            tmp_path,
            "generate",
            "a cat",
            *extra,
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=api.url,
        )
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert expected in lines[0].lower()
    assert "Traceback" not in err
    assert api.seen == []


async def test_empty_prompt_is_refused(tmp_path: Path) -> None:
    code, _, err = await run_cli(tmp_path, "generate", "   ", OPENAI_API_KEY="sk-test")
    assert code == 1
    assert err.strip() == "error: the prompt is empty"


async def test_malformed_setting_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    code, out, err = await run_cli(
        tmp_path, "generate", "a cat", OPENAI_BASE_URL="ftp://example.invalid"
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("configuration error: OPENAI_BASE_URL")
    assert out == ""


async def test_a_failed_job_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    async with SimServer(SimConfig(job_seconds=0.5, moderation_word="forbidden")) as url:
        code, _, err = await run_cli(
            tmp_path,
            "generate",
            "something forbidden",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=url,
            POLL_INTERVAL_SECONDS="1",
        )
    assert code == 1
    assert "failed" in err
    assert len(err.strip().splitlines()) == 1


async def test_run_without_a_discord_token_says_what_to_set(tmp_path: Path) -> None:
    code, _, err = await run_cli(tmp_path, "run")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "DISCORD_TOKEN" in lines[0]
    assert "discord.com/developers/applications" in lines[0]


async def test_generate_leaves_only_private_files_in_the_data_dir(tmp_path: Path) -> None:
    code, _, err = await run_cli(tmp_path, "generate", "a quiet pond", "--seconds", "4")
    assert code == 0, err
    data = tmp_path / "data"
    files = [p for p in data.rglob("*") if p.is_file()]
    assert any(p.suffix == ".mp4" for p in files)
    loose = [str(p) for p in files if p.stat().st_mode & 0o077]
    assert loose == []


# ---------------------------------------------------------------------- hostile servers

KEY = "sk-cli-secret-0123456789"
# A key-shaped secret in the extra headers, which a gateway may echo back.
TEAM = "team-credential-31415"


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from bot.sim.media import render_video

    folder = tmp_path_factory.mktemp("clip")
    return render_video(folder / "clip.mp4", 64, 64, 1, 4, "a fox").read_bytes()


def completed(vid: str = "v1", **fields: object) -> Responder:
    return answer(200, video(vid, status="completed", progress=100, **fields))


async def generate_against(
    tmp_path: Path, api: ScriptedAPI, **env: str
) -> tuple[int, str, str, Path]:
    out_file = tmp_path / "out" / "fox.mp4"
    # Any: run_cli's own keyword (wait_limit) is not among these, but mypy cannot know that.
    settings: dict[str, Any] = {
        "OPENAI_API_KEY": KEY,
        "OPENAI_BASE_URL": api.url,
        "OPENAI_EXTRA_HEADERS": f"X-Team: {TEAM}",
        "VIDEO_API_PROFILE": "openai",
        "POLL_INTERVAL_SECONDS": "1",
        "OPENAI_MAX_RETRIES": "1",
        **env,
    }
    code, out, err = await run_cli(
        tmp_path,
        "generate",
        "a fox",
        "--model",
        "sora-2",
        "--seconds",
        "4",
        "--size",
        "1280x720",
        "--out",
        str(out_file),
        **settings,
    )
    return code, out, err, out_file


def assert_one_line_error(code: int, out: str, err: str, *expected: str) -> str:
    assert code == 1, (out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    for text in expected:
        assert text in lines[0], lines[0]
    assert KEY not in out + err and TEAM not in out + err
    return lines[0]


def files_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


HOSTILE_CONTENT = [
    ("html_page", raw(200, "<!doctype html><p>Sign in</p>", "text/html"), "text/html"),
    ("json_error", raw(200, '{"error": "Video variant video not found"}'), "application/json"),
    ("redirect", raw(302, b"", Location="http://127.0.0.1:9/x.mp4"), "redirect (HTTP 302)"),
    ("not_a_video", raw(200, b"GIF89a" + bytes(64), "application/octet-stream"), "not a video"),
]


@pytest.mark.parametrize(
    ("name", "responder", "said"), HOSTILE_CONTENT, ids=[h[0] for h in HOSTILE_CONTENT]
)
async def test_hostile_content_is_one_line_and_leaves_no_video(
    tmp_path: Path, name: str, responder: Responder, said: str
) -> None:
    async with ScriptedAPI() as api:
        api.on("POST", "/videos", answer(200, video("v1")))
        api.on("GET", "/videos/v1", completed())
        api.on("GET", "/videos/v1/content", responder)
        code, out, err, out_file = await generate_against(tmp_path, api)
    assert_one_line_error(code, out, err, said)
    assert files_in(out_file.parent) == []


async def test_an_endless_download_is_cut_at_the_size_limit(tmp_path: Path) -> None:
    body = Stream(head=b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2")
    async with ScriptedAPI() as api:
        api.on("POST", "/videos", answer(200, video("v1")))
        api.on("GET", "/videos/v1", completed())
        api.on("GET", "/videos/v1/content", body)
        code, out, err, out_file = await generate_against(tmp_path, api, VIDEO_MAX_DOWNLOAD_MB="2")
    assert_one_line_error(code, out, err, "larger than 2 MB")
    assert files_in(out_file.parent) == []
    assert body.sent < 64 * 1024 * 1024


async def test_a_key_echoed_in_a_401_is_never_printed(tmp_path: Path) -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        sent = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        return web.json_response(
            {"error": {"message": f"Incorrect API key provided: {KEY}. Headers: {sent}"}},
            status=401,
        )

    async with ScriptedAPI() as api:
        api.on("POST", "/videos", echo)
        code, out, err, _ = await generate_against(tmp_path, api)
    line = assert_one_line_error(code, out, err, "OPENAI_API_KEY", "OPENAI_AUTH_HEADER")
    assert "Incorrect" not in line


@pytest.mark.parametrize(
    ("responder", "said"),
    [
        (raw(302, b"", Location="/v1/videos/v2"), "redirect (HTTP 302)"),
        (raw(200, "<html>maintenance</html>", "text/html"), "not JSON"),
        (answer(403, "denied for sk-other-0000000000"), "does not allow this"),
        (raw(502, "<html><h1>502 Bad Gateway</h1></html>", "text/html"), "HTTP 502"),
    ],
)
async def test_a_hostile_status_read_ends_the_cli_in_one_line(
    tmp_path: Path, responder: Responder, said: str
) -> None:
    async with ScriptedAPI() as api:
        api.on("POST", "/videos", answer(200, video("v1")))
        api.on("GET", "/videos/v1", responder)
        code, out, err, out_file = await generate_against(tmp_path, api)
    line = assert_one_line_error(code, out, err, said)
    assert "sk-other" not in line
    assert files_in(out_file.parent) == []


async def test_odd_job_values_and_a_useless_poll_hint_still_finish(
    tmp_path: Path, mp4: bytes
) -> None:
    running = raw(
        200,
        '{"id": "v1", "status": "in_progress", "progress": 1e400, "completed_at": 1e30}',
        **{"openai-poll-after-ms": "inf"},
    )
    async with ScriptedAPI() as api:
        api.on("POST", "/videos", answer(200, video("v1")))
        api.on("GET", "/videos/v1", running, completed())
        api.on("GET", "/videos/v1/content", raw(200, mp4, "video/mp4"))
        code, _out, err, out_file = await generate_against(
            tmp_path, api, VIDEO_API_VARIANTS="false"
        )
    assert code == 0, err
    assert out_file.read_bytes() == mp4


async def test_a_failed_job_with_an_integer_code_is_one_line(tmp_path: Path) -> None:
    failed = answer(
        200, video("v1", status="failed", error={"code": 500, "message": "CUDA OOM\nat step 3"})
    )
    async with ScriptedAPI() as api:
        api.on("POST", "/videos", answer(200, video("v1")))
        api.on("GET", "/videos/v1", failed)
        code, out, err, _ = await generate_against(tmp_path, api)
    assert_one_line_error(code, out, err, "job v1 failed: CUDA OOM at step 3")


async def test_an_mp4_for_a_thumbnail_is_refused_and_one_is_made_from_the_video(
    tmp_path: Path, mp4: bytes
) -> None:
    async with ScriptedAPI() as api:
        api.on("POST", "/videos", answer(200, video("v1")))
        api.on("GET", "/videos/v1", completed())
        # A gateway that drops `variant` answers every content request with the video.
        api.on("GET", "/videos/v1/content", raw(200, mp4, "video/mp4"))
        code, out, err, out_file = await generate_against(tmp_path, api)
    assert code == 0, err
    assert "thumbnail was refused" in out
    # The video itself was checked and is kept; the thumbnail is its first frame, made here.
    assert files_in(out_file.parent) == ["fox.mp4", "fox.webp"]
    assert out_file.read_bytes() == mp4
    with Image.open(out_file.with_suffix(".webp")) as thumb:
        assert thumb.format == "WEBP"


async def test_a_lost_create_answer_is_adopted_when_its_job_is_listed(
    tmp_path: Path, mp4: bytes
) -> None:
    async def listed(request: web.Request) -> web.StreamResponse:
        now = int(time.time())
        body = {"object": "list", "data": [video("v9", created_at=now)], "has_more": False}
        return web.json_response(body)

    async with ScriptedAPI() as api:
        api.on("POST", "/videos", answer(500, "upstream timeout"))
        api.on("GET", "/videos", listed)
        api.on("GET", "/videos/v9", completed("v9", created_at=int(time.time())))
        api.on("GET", "/videos/v9/content", raw(200, mp4, "video/mp4"))
        code, out, err, out_file = await generate_against(tmp_path, api, VIDEO_API_VARIANTS="false")
        posts = api.count("POST", "/videos")
    assert code == 0, err
    assert "job v9 created" in out
    assert out_file.read_bytes() == mp4
    assert posts == 1


@pytest.mark.parametrize("can_list", [True, False])
async def test_a_lost_create_answer_not_found_exits_1_without_resending(
    tmp_path: Path, can_list: bool
) -> None:
    async with ScriptedAPI() as api:
        api.on("POST", "/videos", answer(502, "bad gateway"))
        api.on("GET", "/videos", answer(200, {"object": "list", "data": [], "has_more": False}))
        code, out, err, out_file = await generate_against(
            tmp_path, api, VIDEO_API_LIST=str(can_list).lower()
        )
        posts, lists = api.count("POST", "/videos"), api.count("GET", "/videos")
    assert_one_line_error(code, out, err, "did not confirm the request", "HTTP 502")
    assert posts == 1
    assert lists == (2 if can_list else 0)
    assert files_in(out_file.parent) == []


async def test_a_lost_create_answer_with_two_lookalike_jobs_takes_neither(tmp_path: Path) -> None:
    async def listed(request: web.Request) -> web.StreamResponse:
        now = int(time.time())
        twins = [video("v8", created_at=now), video("v9", created_at=now)]
        return web.json_response({"object": "list", "data": twins, "has_more": False})

    async with ScriptedAPI() as api:
        api.on("POST", "/videos", answer(500, "upstream timeout"))
        api.on("GET", "/videos", listed)
        code, out, err, out_file = await generate_against(tmp_path, api)
        posts = api.count("POST", "/videos")
        reads = [s.path for s in api.seen if s.method == "GET" and s.path != "/videos"]
    assert_one_line_error(code, out, err, "cannot be told apart")
    assert posts == 1
    assert reads == []  # neither job was read, let alone downloaded
    assert files_in(out_file.parent) == []


async def test_what_is_not_given_is_the_catalogs_default_as_for_video(tmp_path: Path) -> None:
    """No --seconds or --size: the model's own defaults, filled in by `Catalog.resolve` exactly
    as `/video` does (LTX-Video's default length is 5 s, not its shortest; its server would fix
    the seed, so a random one is sent)."""
    import json

    failed = answer(200, video("v1", status="failed", error={"code": "x", "message": "stop"}))
    async with ScriptedAPI() as api:
        api.on("POST", "/videos", answer(200, video("v1")))
        api.on("GET", "/videos/v1", failed)
        code, out, err = await run_cli(
            tmp_path,
            "generate",
            "a fox",
            OPENAI_API_KEY=KEY,
            OPENAI_BASE_URL=api.url,
            VIDEO_API_PROFILE="openai",
            VIDEO_CATALOG="ltx-video",
            POLL_INTERVAL_SECONDS="1",
        )
        (create,) = [s for s in api.seen if s.method == "POST"]
    assert_one_line_error(code, out, err, "job v1 failed: stop")
    sent = json.loads(create.body)
    assert (sent["model"], sent["seconds"], sent["size"]) == (
        "Lightricks/LTX-Video",
        "5",
        "768x512",
    )
    assert isinstance(sent.get("seed"), int)


async def test_a_model_the_catalog_does_not_offer_is_one_plain_line(tmp_path: Path) -> None:
    code, out, err = await run_cli(tmp_path, "generate", "a fox", "--model", "sora-9`x")
    line = assert_one_line_error(code, out, err, "Model sora-9'x is not offered here")
    assert "`" not in line
