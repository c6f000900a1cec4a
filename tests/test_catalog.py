"""The catalog: bundled presets, picking them by name, aspect ratio and resolution, defaults, per
model options, and how `/video` is shaped from it (choices, or autocomplete past 25)."""

from __future__ import annotations

import json
import os
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.api.models import parse_size
from bot.catalog import Catalog, NotOffered
from bot.catalog_files import CatalogError, load_catalog, load_preset, load_presets, preset_names
from bot.settings import Settings, SettingsError, load_settings
from bot.shapes import standard_size
from cogs.video import VideoCommand
from discordbot.client import VideoBot
from discordbot.menus import CHOICE_LIMIT, command_menus, suggestions

FAMILIES = {
    "sora-2",
    "sora-2-pro",
    "veo-3.1",
    "veo-3.1-fast",
    "wan-2.2",
    "wan-2.5",
    "wan-2.6",
    "kling",
    "seedance",
    "ltx-video",
    "served",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Settings read the process environment and ./.env; isolate both.
    for name in list(os.environ):
        if name.startswith(("VIDEO_", "OPENAI_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def every_preset() -> Catalog:
    """All presets merged, the template named as a server would serve it."""
    return load_presets([f"{n}:Org/Served-Model" if n == "served" else n for n in preset_names()])


# ---------------------------------------------------------------------- presets


def test_the_families_that_remain_have_presets() -> None:
    assert set(preset_names()) >= FAMILIES


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_valid_priced_and_says_whose_prices_they_are(name: str) -> None:
    preset = load_preset(name)
    assert preset.name == name
    assert preset.source and preset.note
    assert "owner's to adjust" in preset.note
    for spec in preset.models:
        assert spec.sizes and spec.seconds
        for size in spec.sizes:
            width, height = parse_size(size)
            # Video encoders need even sides; the simulator renders exactly this size.
            assert width % 2 == 0 and height % 2 == 0, size
            price = spec.price_of(size)
            assert price is not None and price > 0, (spec.id, size)
            # Looked up by size alone too (a remix or extension keeps its source's size).
            assert spec.price_per_second[size] == price
            assert preset.cost_micros(spec.id, size, spec.seconds[0]) > 0
        if spec.options.random_seed:
            assert spec.options.seed


def test_presets_carry_the_real_durations_and_shapes() -> None:
    veo = load_preset("veo-3.1").default
    assert veo.seconds == ("4", "6", "8")
    assert veo.aspect_ratios == ("16:9", "9:16")
    assert veo.sizes == ("1280x720", "720x1280", "1920x1080", "1080x1920")
    assert veo.options.negative_prompt and veo.options.seed and veo.options.audio
    assert load_preset("wan-2.5").default.seconds == ("5", "10")
    assert load_preset("wan-2.6").default.seconds == ("5", "10", "15")
    assert load_preset("sora-2-pro").default.seconds == ("4", "8", "12")
    assert "1792x1024" in load_preset("sora-2-pro").default.sizes
    assert [m.seconds[0] for m in load_preset("kling").models] == ["3", "3"]
    # Self-hosted Wan: the server would fix the seed, so the bot sends a random one.
    assert load_preset("wan-2.2").default.options.random_seed


# ---------------------------------------------------------------------- VIDEO_CATALOG


def test_video_catalog_merges_presets_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_CATALOG", "veo-3.1, wan-2.5")
    catalog = load_settings().catalog()
    assert [m.id for m in catalog.models] == ["google/veo-3.1", "alibaba/wan-2.5"]
    assert catalog.default.id == "google/veo-3.1"
    assert catalog.all_seconds() == ["4", "5", "6", "8", "10"]


def test_an_unknown_preset_is_one_line_naming_the_known_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VIDEO_CATALOG", "veo-3.1,veo-9")
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("VIDEO_CATALOG: unknown preset 'veo-9'; known presets: ")
    assert "\n" not in message
    for name in FAMILIES:
        assert name in message


def test_the_catalog_file_overrides_presets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "mine.json"
    path.write_text(
        json.dumps({"models": [load_preset("kling").models[0].model_dump(mode="json")]})
    )
    monkeypatch.setenv("VIDEO_CATALOG", "veo-3.1")
    monkeypatch.setenv("VIDEO_CATALOG_FILE", str(path))
    assert [m.id for m in load_settings().catalog().models] == ["kwaivgi/kling-v3.0-std"]


def test_unset_keeps_the_bundled_default() -> None:
    assert [m.id for m in load_settings().catalog().models] == ["sora-2", "sora-2-pro"]


def test_the_served_template_takes_the_served_model_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_CATALOG", "served")
    with pytest.raises(SettingsError, match=r"^VIDEO_CATALOG: .*served:<model id>"):
        load_settings()
    monkeypatch.setenv("VIDEO_CATALOG", "served:Wan-AI/Wan2.2-TI2V-5B-Diffusers,veo-3.1")
    catalog = load_settings().catalog()
    assert [m.id for m in catalog.models] == ["Wan-AI/Wan2.2-TI2V-5B-Diffusers", "google/veo-3.1"]
    assert catalog.default.label == "Wan2.2-TI2V-5B-Diffusers"
    # Any one-model preset can be renamed for a gateway that knows it by another id.
    renamed = load_presets(["veo-3.1:gemini/veo-3.1-generate-preview"])
    assert renamed.default.id == "gemini/veo-3.1-generate-preview"
    assert renamed.default.seconds == ("4", "6", "8")


@pytest.mark.parametrize(
    ("names", "fragment"),
    [
        (["veo-3.1", "veo-3.1"], "in both preset"),
        (["kling:my-kling"], "has 2 models"),
        (["veo-3.1:"], "write the model id"),
        ([], "no preset named"),
    ],
)
def test_bad_preset_lists_are_refused(names: list[str], fragment: str) -> None:
    with pytest.raises(CatalogError, match=fragment):
        load_presets(names)


# ---------------------------------------------------------------------- the file format


def test_a_catalog_file_may_specify_aspect_ratios_and_resolutions(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "id": "m",
                        "label": "M",
                        "seconds": [5],
                        "aspect_ratios": ["16:9", "1:1"],
                        "resolutions": ["480p", "720p"],
                        "frame_sizes": {"16:9@480p": "832x480"},
                        "price_per_second": {"480p": "0.05", "720p": "0.10"},
                    }
                ]
            }
        )
    )
    spec = load_catalog(path).default
    assert spec.sizes == ("832x480", "480x480", "1280x720", "720x720")
    assert spec.shape_of("832x480") == ("16:9", "480p")
    assert spec.price_of("720x720") == Decimal("0.10")


@pytest.mark.parametrize(
    ("model", "fragment"),
    [
        ({"aspect_ratios": ["16:9"]}, "go together"),
        ({"aspect_ratios": ["wide"], "resolutions": ["720p"]}, "16:9"),
        ({"aspect_ratios": ["16:9"], "resolutions": ["hd"]}, "720p"),
        (
            {
                "aspect_ratios": ["16:9"],
                "resolutions": ["720p"],
                "frame_sizes": {"4:3@720p": "1x1"},
            },
            "frame_sizes",
        ),
        (
            {"sizes": ["1280x720"], "price_per_second": {"720p": "1", "1080p": "1"}},
            "does not make",
        ),
        ({"sizes": ["1280x720"], "seconds_by_resolution": {"720p": [9]}}, "some of its seconds"),
        ({"sizes": ["1280x720"], "default_seconds": 9}, "default_seconds"),
        ({"sizes": ["1280x720"], "options": {"random_seed": True}}, "random_seed needs seed"),
        ({"sizes": ["1280x720"], "price_per_second": {"720p": "-1"}}, "negative"),
    ],
)
def test_inconsistent_models_are_one_clear_error(
    tmp_path: Path, model: dict[str, Any], fragment: str
) -> None:
    body = {"id": "m", "label": "M", "seconds": [4], "price_per_second": {"720p": "0.1"}, **model}
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"models": [body]}))
    with pytest.raises(CatalogError, match=fragment) as info:
        load_catalog(path)
    assert "\n" not in str(info.value)


def test_standard_sizes() -> None:
    assert standard_size("16:9", "720p") == "1280x720"
    assert standard_size("9:16", "1080p") == "1080x1920"
    assert standard_size("1:1", "720p") == "720x720"
    assert standard_size("4:3", "480p") == "640x480"


# ---------------------------------------------------------------------- resolve


def test_resolve_fills_the_model_defaults() -> None:
    default = load_catalog().resolve()
    assert (default.model, default.seconds, default.size) == ("sora-2", "4", "720x1280")
    veo = load_presets(["veo-3.1"]).resolve()
    assert (veo.model, veo.seconds, veo.size) == ("google/veo-3.1", "4", "1280x720")
    assert (veo.aspect_ratio, veo.resolution) == ("16:9", "720p")
    assert veo.audio is True  # Veo makes sound unless asked not to
    assert veo.cost_micros == 4 * 400_000
    # A preset's own default length.
    assert load_presets(["wan-2.7"]).resolve().seconds == "5"
    # Where a resolution allows fewer lengths, the default is one it allows.
    assert load_presets(["veo-3.1"]).resolve(resolution="1080p").seconds == "8"


def test_aspect_ratio_and_resolution_map_to_a_size() -> None:
    catalog = every_preset()
    assert catalog.resolve(
        "google/veo-3.1", aspect_ratio="9:16", resolution="1080p", seconds="8"
    ).size == ("1080x1920")
    # The model's own frame where it differs from the standard one.
    square = catalog.resolve("alibaba/wan-2.5", aspect_ratio="1:1", resolution="720p")
    assert square.size == "960x960"
    assert square.cost_micros == 5 * 100_000
    # Only one given: the other is the model's first.
    assert catalog.resolve("alibaba/wan-2.5", aspect_ratio="9:16").size == "480x832"
    assert catalog.resolve("google/veo-3.1", resolution="1080p").size == "1920x1080"
    # A model listed by size is picked by shape too where a size has that exact ratio.
    assert catalog.resolve("openai/sora-2-pro", aspect_ratio="16:9").size == "1280x720"
    # A size agreeing with the shape is fine; one that does not is refused.
    assert (
        catalog.resolve("google/veo-3.1", size="1280x720", aspect_ratio="16:9").size == "1280x720"
    )
    with pytest.raises(NotOffered, match="choose a size, or an aspect ratio"):
        catalog.resolve("google/veo-3.1", size="1280x720", aspect_ratio="9:16")


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"model": "google/veo-3.1", "seconds": "12"}, "Durations: 4, 6, 8 seconds"),
        (
            {"model": "google/veo-3.1", "seconds": "4", "resolution": "1080p"},
            "does not make 4-second videos at 1080p. Durations: 8 seconds",
        ),
        (
            {"model": "google/veo-3.1", "aspect_ratio": "1:1"},
            "Aspect ratios: 16:9, 9:16; resolutions: 720p, 1080p",
        ),
        ({"model": "google/veo-3.1", "size": "1792x1024"}, "Aspect ratios: 16:9, 9:16"),
        ({"model": "openai/sora-2", "size": "1792x1024"}, "Sizes: 720x1280, 1280x720"),
        ({"model": "nope"}, "Choose one of: "),
        ({"model": "openai/sora-2", "negative_prompt": "blur"}, "does not take a negative prompt"),
        ({"model": "openai/sora-2", "seed": 7}, "does not take a seed"),
        ({"model": "google/veo-3.1", "seed": -1}, "from 0 to 4294967295"),
        ({"model": "openai/sora-2", "audio": False}, "always makes videos with sound"),
        ({"model": "Lightricks/LTX-Video", "audio": True}, "always makes videos without sound"),
    ],
)
def test_a_combination_not_offered_says_what_is(request_: dict[str, Any], expected: str) -> None:
    with pytest.raises(NotOffered) as info:
        every_preset().resolve(**request_)
    assert expected in str(info.value)


@pytest.mark.parametrize("option", ["model", "seconds", "size", "aspect_ratio", "resolution"])
def test_a_typed_value_is_quoted_short_and_cannot_break_out(option: str) -> None:
    # Autocompleted options take whatever the member types (Discord allows 6000 characters).
    typed = "`" + "9" * 5000
    request: dict[str, Any] = {"model": "google/veo-3.1", option: typed}
    with pytest.raises(NotOffered) as info:
        every_preset().resolve(**request)
    message = str(info.value)
    assert "9" * 41 not in message
    assert "``" not in message and "99999`" not in message


def test_options_reach_only_models_that_take_them() -> None:
    catalog = every_preset()
    veo = catalog.resolve("google/veo-3.1", negative_prompt=" blur ", seed=7, audio=False)
    assert (veo.negative_prompt, veo.seed, veo.audio) == ("blur", 7, False)
    # Sora takes none of them: nothing is to be sent, even where its default is asked for.
    sora = catalog.resolve("openai/sora-2", negative_prompt="  ", audio=True)
    assert (sora.negative_prompt, sora.seed, sora.audio) == (None, None, None)
    # Kling's sound is off unless asked; Veo takes a seed but keeps its own unless given one.
    assert catalog.resolve("kwaivgi/kling-v3.0-std").audio is False
    assert catalog.resolve("google/veo-3.1").seed is None


def test_a_server_that_fixes_the_seed_gets_a_random_one() -> None:
    catalog = load_presets(["wan-2.2"])
    seeds = {catalog.resolve(rng=random.Random(n)).seed for n in range(5)}
    assert None not in seeds and len(seeds) == 5
    assert all(0 <= s < 2**32 for s in seeds if s is not None)
    assert catalog.resolve(seed=1024).seed == 1024


def test_check_and_cost_keep_working_for_every_size() -> None:
    catalog = every_preset()
    for spec in catalog.models:
        for size in spec.sizes:
            seconds = spec.seconds_at(size)[0]
            assert catalog.check(spec.id, seconds, size) is None
            assert catalog.cost_micros(spec.id, size, seconds) > 0
    with pytest.raises(KeyError):
        catalog.cost_micros("google/veo-3.1", "640x480", "4")


# ---------------------------------------------------------------------- /video's options


def test_a_small_catalog_is_offered_as_choices() -> None:
    choices, autocomplete = command_menus(load_presets(["veo-3.1"]))
    assert autocomplete == []
    assert [c.value for c in choices["seconds"]] == ["4", "6", "8"]
    assert [c.value for c in choices["aspect_ratio"]] == ["16:9", "9:16"]
    assert [c.value for c in choices["resolution"]] == ["720p", "1080p"]
    # A catalog of sizes only has no aspect ratio or resolution options.
    choices, _ = command_menus(load_catalog())
    assert set(choices) == {"model", "seconds", "size"}


def test_past_25_values_an_option_autocompletes() -> None:
    catalog = every_preset()
    assert len(catalog.all_sizes()) > CHOICE_LIMIT
    choices, autocomplete = command_menus(catalog)
    assert autocomplete == ["size"]
    assert all(len(c) <= CHOICE_LIMIT for c in choices.values())
    many = Catalog(
        models=tuple(
            catalog.default.model_copy(update={"id": f"m{i}", "label": f"Model {i}"})
            for i in range(CHOICE_LIMIT + 1)
        )
    )
    assert "model" in command_menus(many)[1]


def test_autocomplete_follows_the_model_already_picked() -> None:
    catalog = every_preset()
    values = [v for _, v in suggestions(catalog, "seconds", "", model="google/veo-3.1")]
    assert values == ["4", "6", "8"]
    sizes = [v for _, v in suggestions(catalog, "size", "", model="google/veo-3.1")]
    assert sizes == ["1280x720", "720x1280", "1920x1080", "1080x1920"]
    narrowed = suggestions(catalog, "size", "", model="alibaba/wan-2.6", aspect_ratio="1:1")
    assert [v for _, v in narrowed] == ["960x960", "1440x1440"]
    typed = suggestions(catalog, "size", "1080", model="google/veo-3.1")
    assert [v for _, v in typed] == ["1920x1080", "1080x1920"]
    # No model picked yet: every model's, at most 25.
    assert len(suggestions(catalog, "size", "")) == CHOICE_LIMIT
    assert suggestions(catalog, "size", "portrait", model="openai/sora-2") == [
        ("720x1280 (portrait)", "720x1280")
    ]


def bot_with(**overrides: Any) -> VideoBot:
    settings = Settings(_env_file=None, discord_token=SecretStr("x"), **overrides)
    bot = VideoBot(settings)
    bot.tree.add_command(VideoCommand(bot).command)
    return bot


def synced_options(bot: VideoBot) -> dict[str, dict[str, Any]]:
    (video,) = [c.to_dict(bot.tree) for c in bot.tree.get_commands()]
    return {o["name"]: o for o in video["options"]}


async def test_the_command_hash_changes_with_the_catalog_and_only_then() -> None:
    default = bot_with()
    again = bot_with()
    veo = bot_with(video_catalog=["veo-3.1"])
    everything = bot_with(video_catalog=["seedance", "veo-3.1", "wan-2.6"])
    assert default.command_hash() == again.command_hash()
    assert len({default.command_hash(), veo.command_hash(), everything.command_hash()}) == 3
    options = synced_options(veo)
    assert [c["value"] for c in options["seconds"]["choices"]] == ["4", "6", "8"]
    assert "aspect_ratio" in options and "aspect_ratio" not in synced_options(default)
    size = synced_options(everything)["size"]
    assert size.get("autocomplete") is True and not size.get("choices")


# ---------------------------------------------------------------------- per-model options


def _options_catalog() -> Catalog:
    return load_presets(["wan-2.2", "veo-3.1", "sora-2"])


def test_options_are_refused_for_a_model_that_does_not_take_them_naming_what_it_takes() -> None:
    from bot.options import option_refusal

    catalog = _options_catalog()
    sora = catalog.get("openai/sora-2")
    wan = catalog.get("Wan-AI/Wan2.2-T2V-A14B-Diffusers")
    veo = catalog.get("google/veo-3.1")
    assert sora is not None and wan is not None and veo is not None
    said = str(option_refusal(sora, negative_prompt="blurry", seed=7))
    assert "does not take a negative prompt or a seed" in said
    assert "It takes no negative prompt, seed or sound setting" in said
    assert "always makes videos with sound" in said
    # Sora always makes sound: asking for it is no option at all, asking for silence is refused.
    assert option_refusal(sora, audio=True) is None
    assert "sound off" in str(option_refusal(sora, audio=False))
    said = str(option_refusal(wan, audio=True))
    assert "It takes a negative prompt and a seed." in said
    assert option_refusal(wan, negative_prompt="blurry", seed=7) is None
    assert option_refusal(veo, negative_prompt="blurry", seed=7, audio=False) is None
    # A blank negative prompt is no negative prompt.
    assert option_refusal(sora, negative_prompt="  ") is None


def test_a_random_seed_is_drawn_only_where_the_catalog_says_the_server_would_fix_one() -> None:
    catalog = _options_catalog()
    rng = random.Random(5)
    wan = catalog.resolve("Wan-AI/Wan2.2-T2V-A14B-Diffusers", rng=rng)
    again = catalog.resolve("Wan-AI/Wan2.2-T2V-A14B-Diffusers", rng=rng)
    assert wan.seed is not None and again.seed is not None and wan.seed != again.seed
    assert 0 <= wan.seed < 2**32
    # A seed the member gives is kept; Veo and Sora pick their own when none is sent.
    assert catalog.resolve("Wan-AI/Wan2.2-T2V-A14B-Diffusers", seed=42).seed == 42
    assert catalog.resolve("google/veo-3.1").seed is None
    assert catalog.resolve("openai/sora-2").seed is None


def test_a_create_body_carries_the_options_only_when_set() -> None:
    from bot.api.models import CreateVideo

    plain = CreateVideo(prompt="a fox", model="m", seconds="4", size="1280x720")
    assert plain.json_body() == {
        "prompt": "a fox",
        "model": "m",
        "seconds": "4",
        "size": "1280x720",
    }
    assert plain.form() == plain.json_body()
    full = CreateVideo(prompt="a fox", model="m", negative_prompt="blurry", seed=1234, audio=False)
    assert full.json_body() == {
        "prompt": "a fox",
        "model": "m",
        "negative_prompt": "blurry",
        "seed": 1234,
        "generate_audio": False,
    }
    assert full.form(audio_field="generate_sound") == {
        "prompt": "a fox",
        "model": "m",
        "negative_prompt": "blurry",
        "seed": "1234",
        "generate_sound": "false",
    }
    with pytest.raises(ValueError):
        CreateVideo(prompt="a fox", seed=2**32)
    with pytest.raises(ValueError):
        CreateVideo(prompt="a fox", seed=-1)


def test_a_reported_cost_becomes_exact_micro_dollars() -> None:
    from bot.api.models import micros_of_dollars

    assert micros_of_dollars(0.1) == 100_000
    assert micros_of_dollars(1.6) == 1_600_000
    assert micros_of_dollars(0.0000004) == 0
    assert micros_of_dollars(10_000.0) == 10_000_000_000


def test_video_offers_each_option_only_where_some_model_takes_it() -> None:
    from cogs.video import video_parameters

    def names(catalog: Catalog) -> list[str]:
        return [p.name for p in video_parameters(catalog)]

    assert "seed" not in names(load_presets(["sora-2"]))
    assert "negative_prompt" not in names(load_presets(["sora-2"]))
    assert "sound" not in names(load_presets(["wan-2.2"]))
    assert {"negative_prompt", "seed"} <= set(names(load_presets(["wan-2.2"])))
    assert {"negative_prompt", "seed", "sound"} <= set(names(load_presets(["veo-3.1"])))
