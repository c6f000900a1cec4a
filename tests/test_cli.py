"""`python -m bot generate` end to end, in a subprocess, as a user runs it."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path

import av
import pytest
from PIL import Image

from bot.sim import SimConfig, SimServer
from tests.scripted_api import ScriptedAPI

ROOT = Path(__file__).resolve().parents[1]


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SIM_", "VIDEO_"))}
    env.update(DATA_DIR=str(tmp_path / "data"), SIM_JOB_SECONDS="1", LOG_LEVEL="WARNING")
    env.update(extra)
    return env


async def run_cli(
    tmp_path: Path, *args: str, wait_limit: float = 120, **env: str
) -> tuple[int, str, str]:
    # cwd is the test's own folder so a developer's .env never leaks into the run.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
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
    assert "No OPENAI_API_KEY" in sim_lines[0]
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
