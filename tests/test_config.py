"""Settings and the model catalog: configuration, not code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.api.profiles import PROFILES
from bot.catalog import Catalog, format_dollars
from bot.catalog_files import CatalogError, load_catalog
from bot.settings import SettingsError, load_settings
from bot.shapes import size_label

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Settings read the process environment and ./.env; isolate both.
    import os

    for name in list(os.environ):
        if name.startswith(
            (
                "OPENAI_",
                "DISCORD_",
                "VIDEO_",
                "SIM_",
                "DATA_DIR",
                "OWNER_IDS",
                "JOB_",
                "QUOTA_",
                "POLL_",
                "LOG_",
                "SHARD_",
            )
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_need_no_account() -> None:
    s = load_settings()
    assert s.uses_simulator
    assert s.openai_base_url is None and s.video_api_profile == "auto"
    assert s.data_dir == Path("./data")
    assert s.discord_token is None
    assert s.capabilities() == PROFILES["openai"]


def test_default_catalog_matches_the_spec() -> None:
    cat = load_catalog()
    assert [m.id for m in cat.models] == ["sora-2", "sora-2-pro"]
    assert cat.all_seconds() == ["4", "8", "12"]
    assert set(cat.all_sizes()) == {"720x1280", "1280x720", "1024x1792", "1792x1024"}
    assert format_dollars(cat.cost_micros("sora-2", "1280x720", "8")) == "$0.80"
    assert format_dollars(cat.cost_micros("sora-2-pro", "720x1280", "4")) == "$1.20"
    assert format_dollars(cat.cost_micros("sora-2-pro", "1792x1024", "12")) == "$6.00"


def test_catalog_check_explains_refusals() -> None:
    cat = load_catalog()
    assert cat.check("sora-2", "4", "1280x720") is None
    assert "sora-9" in (cat.check("sora-9", "4", "1280x720") or "")
    assert "1792x1024" in (cat.check("sora-2", "4", "1792x1024") or "")
    assert "5-second" in (cat.check("sora-2", "5", "1280x720") or "")


def test_size_labels() -> None:
    assert size_label("1280x720") == "1280x720 (landscape)"
    assert size_label("720x1280") == "720x1280 (portrait)"
    assert size_label("512x512") == "512x512 (square)"


def test_catalog_file_overrides_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "id": "veo-3",
                        "label": "Veo 3",
                        "sizes": ["1280x720"],
                        "seconds": [8],
                        "price_per_second": {"1280x720": "0.40"},
                    }
                ]
            }
        )
    )
    monkeypatch.setenv("VIDEO_CATALOG_FILE", str(path))
    cat = load_settings().catalog()
    assert cat.default.id == "veo-3"
    assert cat.default.seconds == ("8",)
    assert cat.cost_micros("veo-3", "1280x720", "8") == 3_200_000


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("not json", "not valid JSON"),
        ('{"models": []}', "models"),
        (
            '{"models": [{"id": "a", "label": "A", "sizes": ["1x1"], "seconds": ["4"],'
            ' "price_per_second": {}}]}',
            "no price",
        ),
        (
            '{"models": [{"id": "a", "label": "A", "sizes": ["wide"], "seconds": ["4"],'
            ' "price_per_second": {"wide": 1}}]}',
            "1280x720",
        ),
    ],
)
def test_bad_catalog_is_one_clear_error(tmp_path: Path, body: str, fragment: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(body)
    with pytest.raises(CatalogError, match=fragment):
        load_catalog(path)


def test_missing_catalog_file_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_CATALOG_FILE", "/nonexistent/catalog.json")
    with pytest.raises(SettingsError, match=r"^VIDEO_CATALOG_FILE: cannot read"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPENAI_REQUESTS_PER_MINUTE", "lots"),
        ("OPENAI_BASE_URL", "api.example.com"),
        ("VIDEO_API_PROFILE", "nonesuch"),
        ("DISCORD_GUILD_IDS", "123,abc"),
        ("OPENAI_EXTRA_HEADERS", "no colon here"),
        ("VIDEO_API_VARIANTS", "maybe"),
    ],
)
def test_malformed_setting_names_itself(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(f"{name}: ")
    assert "\n" not in str(info.value)


def test_lists_headers_and_overrides_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_GUILD_IDS", "1, 2,3")
    monkeypatch.setenv("OPENAI_EXTRA_HEADERS", "X-Gateway: a; X-Team: b")
    monkeypatch.setenv("VIDEO_API_PROFILE", "SGLang")
    monkeypatch.setenv("VIDEO_API_REMIX", "true")
    s = load_settings()
    assert s.discord_guild_ids == [1, 2, 3]
    assert s.openai_extra_headers == {"X-Gateway": "a", "X-Team": "b"}
    caps = s.capabilities()
    assert caps.remix is True  # overridden
    assert caps.variants is False  # from the sglang profile
    assert caps.list_has_more is False


def test_shards_default_to_discords_count_and_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.shard_count, s.shard_ids) == (None, [])
    monkeypatch.setenv("SHARD_COUNT", "4")
    monkeypatch.setenv("SHARD_IDS", "2, 3")
    s = load_settings()
    assert (s.shard_count, s.shard_ids) == (4, [2, 3])


@pytest.mark.parametrize(
    ("count", "ids", "fragment"),
    [
        (None, "0", "SHARD_IDS: Value error, needs SHARD_COUNT"),
        ("2", "0,2", "SHARD_IDS: Value error, each must be from 0 to 1 (SHARD_COUNT=2): [2]"),
        ("2", "-1", "SHARD_IDS: Value error, each must be from 0 to 1"),
        ("2", "1,1", "SHARD_IDS: Value error, lists a shard twice"),
        ("2", "one", "SHARD_IDS: "),
        ("0", None, "SHARD_COUNT: Input should be greater than or equal to 1"),
    ],
)
def test_bad_shards_are_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, count: str | None, ids: str | None, fragment: str
) -> None:
    for name, value in (("SHARD_COUNT", count), ("SHARD_IDS", ids)):
        if value is not None:
            monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(fragment)


def test_env_file_is_read_and_empty_values_mean_default(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((ROOT / ".env.example").read_text())
    s = load_settings()
    assert s.uses_simulator
    assert s.video_api_variants is None


def test_every_setting_is_documented_in_env_example() -> None:
    from bot.settings import Settings

    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {name.upper() for name in Settings.model_fields} == documented


def test_secrets_do_not_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-very-secret-123")
    monkeypatch.setenv("DISCORD_TOKEN", "discord-secret-456")
    s = load_settings()
    assert "sk-very-secret-123" not in repr(s) and "discord-secret-456" not in repr(s)
    assert not s.uses_simulator


def test_catalog_model_is_frozen() -> None:
    cat = load_catalog()
    assert isinstance(cat, Catalog)
    with pytest.raises(ValidationError):
        cat.models[0].id = "x"  # type: ignore[misc]
