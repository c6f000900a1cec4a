"""Catalog discovery: OpenRouter's `GET /videos/models` mapped onto catalog models, a self-hosted
server's served model mapped onto its preset, hostile lists bounded, and the precedence of the
owner's catalog over what a server says."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.profiles import PROFILES, ProfileName
from bot.catalog import Catalog
from bot.catalog_files import load_presets
from bot.discovery import choose_catalog
from bot.openrouter_models import MAX_ENTRIES, MAX_MODELS, from_openrouter
from bot.served_models import MAX_SERVED, from_served, preset_for, served_ids
from bot.settings import Settings
from bot.sim import SimConfig, SimServer
from bot.sim.openrouter import MODELS

KEY = "sk-discovery-test"


def entry(**changes: Any) -> dict[str, Any]:
    """The simulator's Veo 3.1 entry, with changes (a value of None removes the key)."""
    out = copy.deepcopy(MODELS[0])
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


# ---------------------------------------------------------------------- OpenRouter's list


def test_openrouters_models_become_catalog_models() -> None:
    models, skipped = from_openrouter({"data": list(MODELS)})
    assert skipped == []
    veo, wan, sora = models
    assert (veo.id, veo.label) == ("google/veo-3.1", "Google: Veo 3.1")
    assert veo.seconds == ("4", "6", "8")
    assert (veo.aspect_ratios, veo.resolutions) == (("16:9", "9:16"), ("720p", "1080p"))
    assert veo.sizes == ("1280x720", "720x1280", "1920x1080", "1080x1920")
    assert veo.price_of("1920x1080") == Decimal("0.40")
    assert veo.options.seed and veo.options.audio and veo.options.audio_default
    # Negative prompt: passed through by OpenRouter for this model.
    assert veo.options.negative_prompt
    assert veo.note == "reference images: first frame, last frame"

    assert wan.seconds == ("5", "10", "15")
    assert wan.aspect_ratios == ("16:9", "9:16", "1:1", "4:3", "3:4")
    # `per-video-second` at 720p, `per-video-second-1080p` at 1080p.
    assert wan.price_of("1280x720") == Decimal("0.10")
    assert wan.price_of("1080x1920") == Decimal("0.15")

    # Specified by sizes alone; priced by resolution (1024p for the large sizes).
    assert sora.sizes == ("720x1280", "1280x720", "1024x1792", "1792x1024")
    assert not sora.by_shape
    assert sora.price_of("720x1280") == Decimal("0.30")
    assert sora.price_of("1792x1024") == Decimal("0.50")
    assert not sora.options.seed and not sora.options.audio and not sora.options.negative_prompt
    assert sora.note == "takes no reference image"

    catalog = Catalog(models=tuple(models))
    assert catalog.cost_micros("alibaba/wan-2.6", "1920x1080", "10") == 1_500_000
    assert catalog.resolve("google/veo-3.1", "6", aspect_ratio="9:16").size == "720x1280"


def test_a_model_priced_per_video_is_budgeted_at_its_shortest_length() -> None:
    (spec,), _ = from_openrouter({"data": [entry(pricing_skus={"per-video": "2.00"})]})
    # $2 a video over 4 s is $0.50 a second: the dearest reading of a per-video price.
    assert spec.price_of("1280x720") == Decimal("0.5")


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"id": "x" * 101}, "id"),
        ({"id": "bad id with spaces"}, "id"),
        ({"id": ["google/veo"]}, "id"),
        ({"supported_durations": None}, "durations"),
        ({"supported_durations": []}, "durations"),
        ({"supported_durations": [True]}, "duration"),
        ({"supported_durations": [0]}, "duration"),
        ({"supported_durations": [10**9]}, "duration"),
        ({"supported_durations": [4.5]}, "duration"),
        ({"supported_durations": "4,6,8"}, "durations"),
        ({"supported_durations": list(range(1, 40))}, "more than"),
        ({"supported_aspect_ratios": ["wide"]}, "aspect"),
        ({"supported_resolutions": ["720p", "99999p"]}, "resolution"),
        ({"supported_resolutions": [], "supported_aspect_ratios": []}, "neither"),
        ({"supported_aspect_ratios": [], "supported_sizes": ["100000x100000"]}, "size"),
        ({"pricing_skus": None}, "pricing"),
        ({"pricing_skus": {"per-video-second": "NaN"}}, "price"),
        ({"pricing_skus": {"per-video-second": "-0.10"}}, "price"),
        ({"pricing_skus": {"per-video-second": "1e400"}}, "price"),
        ({"pricing_skus": {"per-video-second": "9" * 100}}, "price"),
        ({"pricing_skus": {"per-video-second": 1000}}, "price"),
        ({"pricing_skus": {"per-video-second": True}}, "price"),
        ({"pricing_skus": {"per-video-second-1080p": "0.4"}}, "no per-second price for 720p"),
        ({"pricing_skus": {f"k{i}": "1" for i in range(100)}}, "prices"),
    ],
)
def test_an_entry_that_does_not_parse_is_skipped_with_its_reason(
    changes: dict[str, Any], why: str
) -> None:
    good = entry(id="alibaba/wan-2.6")
    models, skipped = from_openrouter({"data": [entry(**changes), good]})
    # The odd entry never hides the others.
    assert [m.id for m in models] == ["alibaba/wan-2.6"]
    (reason,) = skipped
    assert reason.startswith("skipped ") and why in reason


def test_a_hostile_list_is_bounded() -> None:
    many = [entry(id=f"vendor/model-{i}") for i in range(MAX_ENTRIES + 50)]
    models, skipped = from_openrouter({"data": many})
    assert len(models) == MAX_MODELS
    assert any(f"first {MAX_ENTRIES} of" in s for s in skipped)
    assert any(f"first {MAX_MODELS} usable" in s for s in skipped)

    junk: list[Any] = [None, 7, "google/veo-3.1", [], {"id": None}, entry(), entry()]
    models, skipped = from_openrouter({"data": junk})
    assert [m.id for m in models] == ["google/veo-3.1"]
    assert len(skipped) == 6 and skipped[-1] == "skipped google/veo-3.1: listed twice"

    bodies: list[Any] = [None, [], {"data": "all of them"}, {"data": {"id": "x"}}, "text"]
    for body in bodies:
        assert from_openrouter(body) == ([], ["the answer has no list of models (`data`)"])


def test_a_label_keeps_only_plain_text() -> None:
    (spec,), _ = from_openrouter(
        {"data": [entry(name="**Veo** <@&123> `3.1` @everyone\u202e\n" + "x" * 300)]}
    )
    assert spec.label.startswith("Veo &123 3.1 everyone x")
    assert len(spec.label) <= 100
    assert not set(spec.label) & set("*<>`@\u202e\n")
    (unnamed,), _ = from_openrouter({"data": [entry(name="***")]})
    assert unnamed.label == "google/veo-3.1"


# ---------------------------------------------------------------------- served models


@pytest.mark.parametrize(
    ("served", "preset"),
    [
        ("Wan-AI/Wan2.2-T2V-A14B", "wan-2.2"),
        ("Wan-AI/Wan2.2-TI2V-5B-Diffusers", "wan-2.2"),
        ("Wan-AI/Wan2.2-T2V-A14B-Diffusers", "wan-2.2"),
        ("alibaba/wan-2.5", "wan-2.5"),
        ("Lightricks/LTX-Video-0.9.7-dev", "ltx-video"),
        ("google/veo-3.1-fast", "veo-3.1-fast"),
        ("hunyuanvideo-community/HunyuanVideo", "served"),
        ("Wan-AI/Wan2.1-T2V-14B", "served"),
    ],
)
def test_a_served_model_is_mapped_onto_its_preset(served: str, preset: str) -> None:
    assert preset_for(served) == preset
    catalog, mapped = from_served([served])
    assert mapped == [(served, preset)]
    (spec,) = catalog.models
    # Under the id the server knows it by, with the preset's lengths, sizes and prices.
    assert spec.id == served
    if preset != "served":
        original = load_presets([preset]).default
        assert (spec.seconds, spec.sizes) == (original.seconds, original.sizes)
        assert spec.price_per_second == original.price_per_second


def test_models_of_the_bundled_default_keep_it() -> None:
    catalog, mapped = from_served(["sora-2"])
    assert [m.id for m in catalog.models] == ["sora-2"]
    assert mapped == [("sora-2", "default")]


def test_served_ids_are_bounded() -> None:
    data: list[Any] = [{"id": f"org/model-{i}"} for i in range(MAX_SERVED + 5)]
    data += [{"id": "x" * 500}, {"id": 5}, "model", {"id": "org/model-0"}]
    ids, skipped = served_ids({"object": "list", "data": data})
    assert ids == [f"org/model-{i}" for i in range(MAX_SERVED)]
    assert len(skipped) == 4
    assert served_ids({"data": None}) == ([], ["the answer has no list of models (`data`)"])


# ---------------------------------------------------------------------- against a server


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


class Server:
    def __init__(self, profile: ProfileName, **config: Any) -> None:
        self.profile = profile
        config.setdefault("api_key", KEY)
        self.sim = SimServer(SimConfig(profile=profile, **config))
        self.http = httpx.AsyncClient(timeout=5.0)
        self.client: VideosClient

    async def __aenter__(self) -> Server:
        url = await self.sim.start()
        config = ClientConfig(url, SecretStr(KEY), capabilities=PROFILES[self.profile])
        self.client = VideosClient(self.http, config)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()
        await self.sim.stop()


@pytest.fixture
async def openrouter() -> AsyncIterator[Server]:
    async with Server("openrouter") as server:
        yield server


async def test_openrouter_is_discovered_with_one_read(openrouter: Server) -> None:
    offered = await choose_catalog(settings(), openrouter.client, "openrouter")
    assert offered.discovered
    assert offered.origin == "discovered from GET /videos/models (3 models)"
    assert [m.id for m in offered.catalog.models] == [m["id"] for m in MODELS]
    assert [(r.method, r.path) for r in openrouter.sim.requests] == [("GET", "/v1/videos/models")]
    lines = offered.lines()
    assert lines[0] == "catalog: discovered from GET /videos/models (3 models)"
    assert "- alibaba/wan-2.6: 5, 10, 15 s; 16:9, 9:16, 1:1, 4:3, 3:4 at 720p, 1080p" in lines[2]
    assert "720p $0.1/s, 1080p $0.15/s" in lines[2]


async def test_the_owners_catalog_wins_over_discovery(openrouter: Server, tmp_path: Path) -> None:
    presets = await choose_catalog(
        settings(video_catalog=["veo-3.1"]), openrouter.client, "openrouter"
    )
    assert presets.origin == "presets veo-3.1 (VIDEO_CATALOG)"
    assert [m.id for m in presets.catalog.models] == ["google/veo-3.1"]
    assert presets.lines()[1].startswith("- google/veo-3.1 (preset veo-3.1): 4, 6, 8 s; 16:9")
    path = tmp_path / "catalog.json"
    path.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "id": "mine",
                        "label": "Mine",
                        "sizes": ["1280x720"],
                        "seconds": [4],
                        "price_per_second": {"1280x720": "0.01"},
                    }
                ]
            }
        )
    )
    own = await choose_catalog(
        settings(video_catalog=["veo-3.1"], video_catalog_file=path),
        openrouter.client,
        "openrouter",
    )
    assert own.origin == f"the file {path} (VIDEO_CATALOG_FILE)"
    assert [m.id for m in own.catalog.models] == ["mine"]
    # Neither read the server.
    assert openrouter.sim.requests == []


async def test_a_list_with_nothing_usable_falls_back_saying_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    hostile = ({"id": "evil/model", "supported_durations": [-1]},)
    async with Server("openrouter", openrouter_models=hostile) as server:
        offered = await choose_catalog(settings(), server.client, "openrouter")
    assert not offered.discovered
    assert offered.origin == "presets sora-2,sora-2-pro (openrouter's fallback)"
    assert [m.id for m in offered.catalog.models] == ["openai/sora-2", "openai/sora-2-pro"]
    (note,) = offered.notes
    assert note.startswith("GET /videos/models gave no usable model (skipped evil/model:")
    assert any("catalog discovery" in r.getMessage() for r in caplog.records)


async def test_an_unreadable_list_falls_back() -> None:
    async with Server("openrouter", api_key="another-key") as server:
        offered = await choose_catalog(settings(), server.client, "openrouter")
    assert not offered.discovered
    (note,) = offered.notes
    assert note.startswith("GET /videos/models failed (")
    assert KEY not in note


@pytest.mark.parametrize("profile", ["vllm-omni", "sglang"])
async def test_a_self_hosted_servers_model_is_discovered(profile: ProfileName) -> None:
    async with Server(profile, served_models=("Wan-AI/Wan2.2-T2V-A14B",)) as server:
        offered = await choose_catalog(settings(), server.client, profile)
    assert offered.discovered
    assert (
        offered.origin == "discovered from GET /models (Wan-AI/Wan2.2-T2V-A14B -> preset wan-2.2)"
    )
    (spec,) = offered.catalog.models
    assert (spec.id, spec.label, spec.seconds) == ("Wan-AI/Wan2.2-T2V-A14B", "Wan 2.2", ("5", "8"))
    assert offered.lines()[1].startswith("- Wan-AI/Wan2.2-T2V-A14B (preset wan-2.2): 5, 8 s;")


@pytest.mark.parametrize("profile", ["openai", "azure", "litellm", "fastvideo"])
async def test_other_servers_are_not_asked(profile: ProfileName) -> None:
    async with Server(profile) as server:
        offered = await choose_catalog(settings(), server.client, profile)
        assert server.sim.requests == []
    assert offered.origin == "the bundled default"
    assert not offered.discovered
