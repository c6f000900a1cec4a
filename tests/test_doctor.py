"""`python -m videobot doctor` against the simulator imitating each server, and against each way a
setup goes wrong: what it says, which setting it names, and its exit status."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bot.api.profiles import PROFILE_NAMES, PROFILES, ProfileName
from bot.doctor import describe, run_doctor
from bot.settings import Settings
from bot.sim import SimConfig, SimServer
from tests.scripted_api import ScriptedAPI, answer

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-test-123"
WRONG = "sk-wrong-123"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "VIDEO_", "SIM_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def settings(**values: Any) -> Settings:
    if isinstance(values.get("openai_api_key"), str):
        values["openai_api_key"] = SecretStr(values["openai_api_key"])
    return Settings(_env_file=None, **values)


async def doctor(s: Settings) -> tuple[int, str]:
    out = io.StringIO()
    code = await run_doctor(s, out)
    return code, out.getvalue()


@contextlib.asynccontextmanager
async def sim_url(**config: Any) -> AsyncIterator[str]:
    server = SimServer(SimConfig(job_seconds=1.0, **config))
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


def problem(output: str) -> str:
    (line,) = [line for line in output.splitlines() if line.startswith("problem: ")]
    return line


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("profile", PROFILE_NAMES)
async def test_every_profile_is_recognised_and_ready(profile: ProfileName) -> None:
    keyless = profile == "fastvideo"
    async with sim_url(profile=profile, api_key=None if keyless else KEY) as url:
        code, output = await doctor(
            settings(openai_base_url=url, openai_api_key=None if keyless else KEY)
        )
    assert code == 0, output
    assert output.splitlines()[-1] == "ok: a /video would work"
    assert f"profile: {profile} (auto: chosen because" in output
    assert f"capabilities: {describe(PROFILES[profile])}" in output
    assert "reachable: yes" in output
    if profile == "fastvideo":
        assert "auth: none sent" in output
        assert "not checked" in output  # FastVideo has no /models
    else:
        assert "models: every catalog model is served" in output
    assert KEY not in output


async def test_a_named_profile_is_taken_as_set() -> None:
    async with sim_url(profile="sglang") as url:
        code, output = await doctor(settings(openai_base_url=url, video_api_profile="sglang"))
    assert code == 0, output
    assert "profile: sglang (set by VIDEO_API_PROFILE)" in output


async def test_a_wrong_key_is_named_without_showing_it() -> None:
    async with sim_url(api_key=KEY) as url:
        code, output = await doctor(settings(openai_base_url=url, openai_api_key=WRONG))
    assert code == 1
    line = problem(output)
    assert line.startswith("problem: the key was refused (401")
    assert line.endswith("check OPENAI_API_KEY")
    assert WRONG not in output


async def test_a_bearer_token_at_azure_says_to_use_the_api_key_header() -> None:
    async with sim_url(profile="azure", api_key=KEY) as url:
        code, output = await doctor(
            settings(
                openai_base_url=url,
                openai_api_key=KEY,
                video_api_profile="azure",
                openai_auth_header="authorization",
            )
        )
        auto_code, auto_output = await doctor(settings(openai_base_url=url, openai_api_key=KEY))
    assert code == 1
    assert problem(output) == (
        "problem: 401 with the key sent as Bearer: this looks like Azure (the api-key header was "
        "accepted); set OPENAI_AUTH_HEADER=api-key"
    )
    # Left to `auto` (and no header named), the bot finds Azure and sends the key its way.
    assert auto_code == 0, auto_output
    assert "profile: azure" in auto_output and "auth: accepted (the api-key header)" in auto_output


async def test_a_server_that_wants_a_key_says_to_set_one() -> None:
    async with sim_url(profile="sglang", api_key=KEY) as url:
        code, output = await doctor(settings(openai_base_url=url))
    assert code == 1
    assert problem(output).endswith("set OPENAI_API_KEY")
    assert "wants a key (401" in output


async def test_a_base_url_without_v1_is_pointed_out() -> None:
    async with sim_url(api_key=KEY) as url:
        code, output = await doctor(
            settings(openai_base_url=url.removesuffix("/v1"), openai_api_key=KEY)
        )
    assert code == 1
    assert problem(output) == (
        "problem: 404 on /videos: check OPENAI_BASE_URL (it usually ends in /v1)"
    )


async def test_a_catalog_model_the_server_does_not_serve_is_named_with_those_it_does() -> None:
    served = ("gemini/veo-3.1-generate-preview", "gemini/veo-3.1-fast-generate-preview")
    async with sim_url(profile="litellm", served_models=served, check_model=True) as url:
        code, output = await doctor(settings(openai_base_url=url, openai_api_key=KEY))
    assert code == 1
    line = problem(output)
    assert "sora-2, sora-2-pro" in line and "does not serve" in line
    assert all(model in line for model in served)
    assert line.endswith("or point VIDEO_CATALOG_FILE at a catalog of them")
    assert "set VIDEO_CATALOG to presets" in line


async def test_a_server_of_one_model_is_named_in_the_fix() -> None:
    model = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    # With no catalog named, the served model is discovered (see test_discovery.py); a catalog
    # the owner named that the server does not serve is the problem, and the fix names it.
    async with sim_url(profile="vllm-omni", served_models=(model,)) as url:
        code, output = await doctor(settings(openai_base_url=url, video_catalog=["veo-3.1"]))
    assert code == 1
    assert f"set VIDEO_CATALOG=served:{model}," in problem(output)
    async with sim_url(profile="vllm-omni", served_models=(model,)) as url:
        code, output = await doctor(
            settings(openai_base_url=url, video_catalog=[f"served:{model}"])
        )
    assert code == 0, output


async def test_a_catalog_of_the_served_model_passes(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    model = "Wan-AI/Wan2.2-T2V-A14B-Diffusers"
    catalog.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "id": model,
                        "label": "Wan 2.2",
                        "sizes": ["1280x720"],
                        "seconds": [4],
                        "price_per_second": {"1280x720": "0"},
                    }
                ]
            }
        )
    )
    async with sim_url(profile="vllm-omni", served_models=(model,), check_model=True) as url:
        code, output = await doctor(settings(openai_base_url=url, video_catalog_file=catalog))
    assert code == 0, output
    assert "profile: vllm-omni" in output


async def test_a_server_that_is_down_asks_whether_it_is_running() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    code, output = await doctor(settings(openai_base_url=url, openai_api_key=KEY))
    assert code == 1
    assert problem(output) == (
        f"problem: could not connect to {url}: is the server running? (check OPENAI_BASE_URL)"
    )


async def test_a_profile_that_does_not_fit_the_server_is_a_problem() -> None:
    async with sim_url(profile="sglang") as url:
        code, output = await doctor(settings(openai_base_url=url, video_api_profile="openai"))
    assert code == 1
    assert "set VIDEO_API_PROFILE=sglang, or auto" in problem(output)


async def test_the_simulator_and_a_key_without_a_server() -> None:
    code, output = await doctor(settings())
    assert code == 0
    assert output.startswith("video backend: the built-in simulator (neither OPENAI_BASE_URL")
    code, output = await doctor(settings(openai_api_key=KEY))
    assert code == 1
    assert "set OPENAI_BASE_URL" in problem(output)
    assert KEY not in output


async def test_python_m_bot_doctor_exits_by_what_it_found(tmp_path: Path) -> None:
    async with sim_url(profile="vllm-omni") as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "VIDEO_"))}
        env.update(OPENAI_BASE_URL=url, PYTHONPATH=str(ROOT))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "videobot",
            "doctor",
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode() + err.decode()
    assert "profile: vllm-omni" in out.decode()


async def test_a_server_quoting_the_key_back_never_gets_it_printed() -> None:
    secret = "sk-e2e-secret-key-0123456789"

    async def quoting(request: web.Request) -> web.StreamResponse:
        said = f"Incorrect API key {secret}; you sent {request.headers.get('Authorization')}"
        return web.json_response({"error": {"message": said, "code": None}}, status=401)

    async with ScriptedAPI() as api:
        api.on("GET", "/models", quoting)
        api.on("GET", "/videos", quoting)
        code, output = await doctor(settings(openai_base_url=api.url, openai_api_key=secret))
    assert code == 1
    assert "the key was refused (401" in problem(output)
    assert secret not in output and "0123456789" not in output


def test_naming_list_headers_turns_listing_on_unless_it_is_switched_off() -> None:
    assert not settings(video_api_profile="litellm").capabilities().list
    headers = {"custom-llm-provider": "openai"}
    on = settings(video_api_profile="litellm", video_api_list_headers=headers).capabilities()
    assert on.list and on.list_headers == headers
    off = settings(
        video_api_profile="litellm", video_api_list_headers=headers, video_api_list=False
    ).capabilities()
    assert not off.list
    assert settings(video_api_profile="azure").auth_header("azure") == "api-key"
    assert settings(openai_auth_header="authorization").auth_header("azure") == "authorization"


async def test_a_server_that_fails_its_reads_is_not_ready() -> None:
    async with ScriptedAPI() as api:
        api.on("GET", "/models", answer(200, {"object": "list", "data": [{"id": "sora-2"}]}))
        api.on("GET", "/videos", answer(503, "upstream unavailable"))
        code, output = await doctor(settings(openai_base_url=api.url, openai_api_key=KEY))
    assert code == 1
    assert problem(output).startswith("problem: GET /videos")
    assert "503 (upstream unavailable)" in output


# ---------------------------------------------------------------------- README's "Which server?"

# How the simulator imitates each server of README's table, the key the row needs (None: no
# key), and what the row's placeholders stand for there.
WHICH_SERVER: dict[str, tuple[dict[str, Any], str | None, dict[str, str]]] = {
    "OpenRouter": ({"profile": "openrouter", "api_key": KEY}, KEY, {}),
    "LiteLLM": (
        {
            "profile": "litellm",
            "api_key": KEY,
            "served_models": ("gemini/veo-3.1-generate-preview",),
            "check_model": True,
        },
        KEY,
        {"<model id>": "gemini/veo-3.1-generate-preview"},
    ),
    "vLLM-Omni": (
        {"profile": "vllm-omni", "served_models": ("Wan-AI/Wan2.2-T2V-A14B-Diffusers",)},
        None,
        {},
    ),
    "SGLang": (
        {"profile": "sglang", "served_models": ("Wan-AI/Wan2.2-T2V-A14B-Diffusers",)},
        None,
        {},
    ),
    "FastVideo": (
        {"profile": "fastvideo"},
        None,
        {"<model id>": "FastVideo/FastWan2.1-T2V-1.3B-Diffusers"},
    ),
    "Azure": (
        {"profile": "azure", "api_key": KEY, "served_models": ("my-sora-2",)},
        KEY,
        {"<deployment>": "my-sora-2"},
    ),
    "OpenAI-compatible": (
        {"profile": "openai", "api_key": KEY, "served_models": ("acme/video-1",)},
        KEY,
        {"<preset>": "sora-2", "<model id>": "acme/video-1"},
    ),
}
_SETTING = re.compile(r"`([A-Z][A-Z0-9_]*)=([^`]+)`")


def which_server_rows() -> list[tuple[str, dict[str, str]]]:
    """README's "Which server?" table: each row's server and the settings it names."""
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("### Which server?", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5 or cells[0] in {"server", "---"}:
            continue
        rows.append((cells[0], dict(_SETTING.findall(" | ".join(cells[2:])))))
    return rows


def test_the_readme_names_every_server_of_the_table() -> None:
    servers = [name for name, _ in which_server_rows()]
    assert len(servers) == len(WHICH_SERVER)
    for name in WHICH_SERVER:
        assert any(name in server for server in servers), name


@pytest.mark.parametrize("row", which_server_rows(), ids=lambda row: row[0].split()[0])
async def test_each_row_of_which_server_works_with_doctor(row: tuple[str, dict[str, str]]) -> None:
    server, named = row
    ((sim_config, key, placeholders),) = [
        value for name, value in WHICH_SERVER.items() if name in server
    ]
    values: dict[str, Any] = {}
    for name, written in named.items():
        value = written
        for placeholder, meant in placeholders.items():
            value = value.replace(placeholder, meant)
        assert "<" not in value, f"{server}: {name}={value}: a placeholder the test does not fill"
        values[name.lower()] = value.split(",") if name == "VIDEO_CATALOG" else value
    async with sim_url(**sim_config) as url:
        code, output = await doctor(settings(openai_base_url=url, openai_api_key=key, **values))
    assert code == 0, output
    profile = sim_config["profile"]
    assert f"profile: {profile} (" in output
    assert "catalog: " in output
    if profile in ("openrouter", "vllm-omni", "sglang") and "VIDEO_CATALOG" not in named:
        assert "catalog: discovered from GET " in output
    if key is not None:
        assert KEY not in output
