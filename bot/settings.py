"""All configuration, read once from the environment and `.env`.

Secrets are `SecretStr` so they never show up in reprs or logs. A bad value stops start-up with one
line naming the setting (see `load_settings`), never a traceback.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, cast
from urllib.parse import unquote, urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.api.profiles import (
    DEFAULT_AUTH_HEADERS,
    AuthHeader,
    Capabilities,
    CreateEncoding,
    ProfileName,
    ProfileSetting,
    capabilities,
)
from bot.catalog import Catalog
from bot.catalog_files import CatalogError, load_catalog, load_presets

# Used only when a key is set and OPENAI_BASE_URL is not (OpenAI retired its Videos endpoint on
# 2026-09-24; `doctor` says so). With neither set the bot uses its simulator.
DEFAULT_BASE_URL = "https://api.openai.com/v1"


# The gap between the two clean list reads that show a create never started (bot/unconfirmed.py
# CLEAN_READ_GAP): part of what a process taking over a job needs before the grace runs out.
TAKEOVER_LOOK_SECONDS = 10.0


class SettingsError(Exception):
    """A setting is missing or malformed; the message is one line naming it."""


def _split_csv(value: object) -> object:
    # Lists of IDs are written `1,2,3` in .env; JSON arrays are accepted too.
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [p.strip() for p in text.split(",") if p.strip()]
    return value


def _parse_headers(value: object) -> object:
    # `Name: value; Other: value` or a JSON object.
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return {}
        if text.startswith("{"):
            return json.loads(text)
        headers: dict[str, str] = {}
        for part in text.split(";"):
            if not part.strip():
                continue
            name, sep, val = part.partition(":")
            if not sep or not name.strip():
                raise ValueError("write headers as `Name: value; Other: value`")
            headers[name.strip()] = val.strip()
        return headers
    return value


def _strip_dollar(value: object) -> object:
    # Budgets are written `5`, `5.00` or `$5.00`.
    if isinstance(value, str):
        return value.strip().removeprefix("$").strip()
    return value


def _has_space_or_control(text: str) -> bool:
    return any(ch.isspace() or not ch.isprintable() for ch in text)


IdList = Annotated[list[int], NoDecode]
HeaderMap = Annotated[dict[str, str], NoDecode]
# A dollar amount, exact to the micro-dollar (the ledger's unit); at most a million dollars.
Dollars = Annotated[Decimal, Field(ge=0, le=1_000_000, decimal_places=6)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        # `NAME=` in .env means "not set": the default applies, as .env.example relies on.
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
    )

    # --- Discord -------------------------------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_guild_ids: IdList = Field(default_factory=list)
    # Discord's REST API at another address: a shared rate-limit proxy (nirn-proxy,
    # twilight-http-proxy) that several bot processes send through, e.g.
    # http://proxy:8080/api/v10. None: discord.com.
    discord_api_base: str | None = None
    # Shards: how many the bot has in all (None: as many as Discord recommends), and which of
    # them this process runs (empty: all), so several processes can split a large bot.
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: IdList = Field(default_factory=list)
    owner_ids: IdList = Field(default_factory=list)
    # Servers where the bot may be used; empty means any (start-up warns if the bot is public).
    allowed_guild_ids: IdList = Field(default_factory=list)
    # Whether members may use the bot in direct messages (no server's limits apply there).
    allow_dms: bool = False

    # --- Video API -----------------------------------------------------------------------------
    openai_api_key: SecretStr | None = None
    # None: not set (see `base_url`); set with no key means a server without auth.
    openai_base_url: str | None = None
    # `authorization` sends `Authorization: Bearer KEY`; `api-key` sends `api-key: KEY` (Azure).
    # None: the profile's way (api-key for azure, Bearer for the others).
    openai_auth_header: AuthHeader | None = None
    # Often a gateway's own key: never in the settings' repr.
    openai_extra_headers: HeaderMap = Field(default_factory=dict, repr=False)
    openai_timeout_seconds: float = Field(default=60.0, gt=0)
    openai_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    openai_requests_per_minute: int = Field(default=120, ge=1)
    openai_max_retries: int = Field(default=4, ge=0, le=10)
    # A download larger than this (MB), or not finished within the timeout, is refused.
    video_max_download_mb: int = Field(default=500, ge=1, le=100_000)
    video_download_timeout_seconds: float = Field(default=600.0, gt=0)
    # The longest wait between polls a server's `openai-poll-after-ms` may ask for.
    video_max_poll_after_seconds: float = Field(default=60.0, ge=1, le=3600)

    # `auto` probes the server at start; `simulator` uses the built-in one whatever else is set.
    video_api_profile: ProfileSetting = "auto"
    video_api_create_encoding: CreateEncoding | None = None
    video_api_variants: bool | None = None
    video_api_list: bool | None = None
    video_api_list_has_more: bool | None = None
    video_api_delete: bool | None = None
    video_api_remix: bool | None = None
    video_api_edits: bool | None = None
    video_api_extensions: bool | None = None
    video_api_progress: bool | None = None
    video_api_list_headers: Annotated[dict[str, str] | None, NoDecode] = None

    # Bundled presets by name (`veo-3.1,wan-2.5`, `served:<model id>`); the file wins if both.
    video_catalog: Annotated[list[str], NoDecode] = Field(default_factory=list)
    video_catalog_file: Path | None = None
    job_deadline_minutes: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(default=10.0, ge=1)
    create_grace_seconds: float = Field(default=600.0, ge=10)
    delivery_max_attempts: int = Field(default=6, ge=1, le=20)

    # --- Quotas (guild admins can override the per-user ones in their guild) ------------------
    quota_user_daily_dollars: Dollars = Decimal("2.00")
    quota_user_monthly_dollars: Dollars = Decimal("20.00")
    quota_bot_daily_dollars: Dollars = Decimal("25.00")
    quota_exempt_role_ids: IdList = Field(default_factory=list)
    quota_max_active_per_user: int = Field(default=2, ge=1, le=100)
    quota_cooldown_seconds: float = Field(default=30.0, ge=0, le=86_400)
    quota_max_concurrent_jobs: int = Field(default=4, ge=1, le=1000)
    # The most a server's admins may give (unset: the QUOTA_* value above, so by default they
    # can only lower limits); owners raise these to let admins go further.
    admin_max_user_daily_dollars: Dollars | None = None
    admin_max_user_monthly_dollars: Dollars | None = None
    admin_max_active_per_user: int | None = Field(default=None, ge=1, le=100)
    admin_min_cooldown_seconds: float | None = Field(default=None, ge=0, le=86_400)
    admin_may_exempt: bool = False

    # --- Reference images and re-showing videos ----------------------------------------------
    # Images decoded at once in the whole process (each may take a second of CPU and 100 MB).
    reference_max_decodes: int = Field(default=2, ge=1, le=16)
    # Wait between one member's "show again" picks (each downloads, and may re-encode, a video).
    show_again_cooldown_seconds: float = Field(default=60.0, ge=0, le=86_400)

    # --- Storage -------------------------------------------------------------------------------
    data_dir: Path = Path("./data")
    # The database: sqlite:///path (a file; None: bot.sqlite3 under data_dir, one process) or
    # postgresql://user:password@host:port/name, which several bot processes share. Secret: it
    # may carry a password.
    database_url: SecretStr | None = None
    # How long a process's hold on a job lasts unless renewed (renewed every third of it): a
    # process that dies leaves its jobs to the others after at most this long.
    job_lease_seconds: float = Field(default=30.0, ge=1, le=3600)

    # --- Simulator (used when OPENAI_API_KEY is unset) -----------------------------------------
    sim_job_seconds: float = Field(default=20.0, ge=0)
    sim_retention_seconds: float = Field(default=3600.0, gt=0)

    # --- Logging -------------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator(
        "discord_guild_ids",
        "owner_ids",
        "allowed_guild_ids",
        "quota_exempt_role_ids",
        "video_catalog",
        "shard_ids",
        mode="before",
    )
    @classmethod
    def _ids(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("shard_ids")
    @classmethod
    def _shards_within_count(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if not value:
            return value
        count = info.data.get("shard_count")
        if count is None:
            raise ValueError("needs SHARD_COUNT (the shards in all, across every process)")
        bad = [i for i in value if not 0 <= i < count]
        if bad:
            raise ValueError(f"each must be from 0 to {count - 1} (SHARD_COUNT={count}): {bad}")
        if len(set(value)) != len(value):
            raise ValueError("lists a shard twice")
        return value

    @field_validator(
        "quota_user_daily_dollars",
        "quota_user_monthly_dollars",
        "quota_bot_daily_dollars",
        "admin_max_user_daily_dollars",
        "admin_max_user_monthly_dollars",
        mode="before",
    )
    @classmethod
    def _dollars(cls, value: object) -> object:
        return _strip_dollar(value)

    @field_validator("openai_extra_headers", "video_api_list_headers", mode="before")
    @classmethod
    def _headers(cls, value: object) -> object:
        if value is None or value == "":
            return None if value is None else {}
        return _parse_headers(value)

    @field_validator("discord_token", "openai_api_key")
    @classmethod
    def _secret_is_one_word(cls, value: SecretStr | None) -> SecretStr | None:
        # A key pasted with a trailing space or `\r` would end up in an HTTP header, where the
        # HTTP library's error (and its debug log) print the whole header, key included. The
        # message names the problem, never the value.
        if value is not None and _has_space_or_control(value.get_secret_value()):
            raise ValueError("contains spaces or control characters (check for a trailing space)")
        return value

    @field_validator("openai_extra_headers", "video_api_list_headers")
    @classmethod
    def _header_values_are_clean(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, header in (value or {}).items():
            if _has_space_or_control(name) or any(
                ch != " " and _has_space_or_control(ch) for ch in header
            ):
                raise ValueError(f"header {name.strip()!r} has control characters in it")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        if not value.get_secret_value().startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("openai_base_url", "discord_api_base")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("openai_auth_header", "video_api_profile", "log_level", mode="before")
    @classmethod
    def _case_insensitive(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        return (
            value.upper()
            if value.lower() in {"debug", "info", "warning", "error"}
            else value.lower()
        )

    @model_validator(mode="after")
    def _grace_outlasts_a_takeover(self) -> Settings:
        # On a shared database a create whose outcome died with its process is looked for by
        # the process taking the job over: after the lease runs out, and then over two list
        # reads some seconds apart (bot/unconfirmed.py). A shorter grace would refund a job the
        # service may have made, or that could still be sent.
        url = self.database_url
        if url is not None and not url.get_secret_value().startswith("sqlite:"):
            needed = self.job_lease_seconds + TAKEOVER_LOOK_SECONDS + 2 * self.poll_interval_seconds
            if self.create_grace_seconds < needed:
                raise ValueError(
                    f"CREATE_GRACE_SECONDS must be at least {needed:g} on PostgreSQL"
                    " (JOB_LEASE_SECONDS + 10 + twice POLL_INTERVAL_SECONDS), so a process"
                    " taking over a job has time to find out whether its create was made"
                )
        return self

    def secrets(self) -> list[str]:
        """Every configured value that must never be written anywhere: the bot's token, the
        API key, the extra headers' values (often a gateway's key) and the database's password."""
        values = [v.get_secret_value() for v in (self.discord_token, self.openai_api_key) if v]
        values += [v for v in self.openai_extra_headers.values() if v]
        if self.database_url is not None:
            password = urlsplit(self.database_url.get_secret_value()).password
            if password:
                values.append(unquote(password))
        return values

    @property
    def has_key(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())

    @property
    def uses_simulator(self) -> bool:
        """The built-in simulator runs when asked for, or when neither a server nor a key is set
        (a base URL without a key is a server without auth)."""
        if self.video_api_profile == "simulator":
            return True
        return self.openai_base_url is None and not self.has_key

    @property
    def base_url(self) -> str:
        """The server's URL: OPENAI_BASE_URL, or OpenAI's (retired) one when only a key is set."""
        return self.openai_base_url or DEFAULT_BASE_URL

    @property
    def fixed_profile(self) -> ProfileName | None:
        """The profile VIDEO_API_PROFILE names, or None for `auto` and `simulator`."""
        profile = self.video_api_profile
        if profile in {"auto", "simulator"}:
            return None
        return cast("ProfileName", profile)

    def auth_header(self, profile: ProfileName) -> AuthHeader:
        return self.openai_auth_header or DEFAULT_AUTH_HEADERS[profile]

    def capabilities(self, profile: ProfileName | None = None) -> Capabilities:
        """`profile`'s capabilities (default: the configured one, else openai's) with the
        VIDEO_API_* overrides applied."""
        overrides: dict[str, object] = {
            "create_encoding": self.video_api_create_encoding,
            "variants": self.video_api_variants,
            "list": self.video_api_list,
            "list_has_more": self.video_api_list_has_more,
            "delete": self.video_api_delete,
            "remix": self.video_api_remix,
            "edits": self.video_api_edits,
            "extensions": self.video_api_extensions,
            "progress": self.video_api_progress,
            "list_headers": self.video_api_list_headers,
        }
        return capabilities(profile or self.fixed_profile or "openai", overrides)

    def catalog(self) -> Catalog:
        if self.video_catalog_file is None and self.video_catalog:
            return load_presets(self.video_catalog)
        return load_catalog(self.video_catalog_file)

    @property
    def catalog_setting(self) -> str:
        """The setting the catalog comes from, to name in an error."""
        if self.video_catalog_file is None and self.video_catalog:
            return "VIDEO_CATALOG"
        return "VIDEO_CATALOG_FILE"


def load_settings(**overrides: object) -> Settings:
    """Settings from env and `.env`, or SettingsError with one line naming the bad setting."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
        settings.catalog()  # fail at start-up, not at the first command
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(f"{name}: {first['msg']}") from None
    except CatalogError as exc:
        raise SettingsError(f"{settings.catalog_setting}: {exc}") from None
    return settings
