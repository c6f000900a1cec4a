"""All configuration, read once from the environment and `.env`.

Secrets are `SecretStr` so they never show up in reprs or logs. A bad value stops start-up with one
line naming the setting (see `load_settings`), never a traceback.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.api.profiles import Capabilities, CreateEncoding, ProfileName, capabilities
from bot.catalog import Catalog, CatalogError, load_catalog

DEFAULT_BASE_URL = "https://api.openai.com/v1"


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
    owner_ids: IdList = Field(default_factory=list)

    # --- Video API -----------------------------------------------------------------------------
    openai_api_key: SecretStr | None = None
    openai_base_url: str = DEFAULT_BASE_URL
    # `authorization` sends `Authorization: Bearer KEY`; `api-key` sends `api-key: KEY` (Azure).
    openai_auth_header: Literal["authorization", "api-key"] = "authorization"
    openai_extra_headers: HeaderMap = Field(default_factory=dict)
    openai_timeout_seconds: float = Field(default=60.0, gt=0)
    openai_connect_timeout_seconds: float = Field(default=10.0, gt=0)
    openai_requests_per_minute: int = Field(default=120, ge=1)
    openai_max_retries: int = Field(default=4, ge=0, le=10)

    video_api_profile: ProfileName = "openai"
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

    video_catalog_file: Path | None = None
    job_deadline_minutes: float = Field(default=60.0, gt=0)
    poll_interval_seconds: float = Field(default=10.0, ge=1)
    create_grace_seconds: float = Field(default=600.0, ge=10)

    # --- Quotas (guild admins can override the per-user ones in their guild) ------------------
    quota_user_daily_dollars: Dollars = Decimal("2.00")
    quota_user_monthly_dollars: Dollars = Decimal("20.00")
    quota_bot_daily_dollars: Dollars = Decimal("25.00")
    quota_exempt_role_ids: IdList = Field(default_factory=list)
    quota_max_active_per_user: int = Field(default=2, ge=1, le=100)
    quota_cooldown_seconds: float = Field(default=30.0, ge=0, le=86_400)
    quota_max_concurrent_jobs: int = Field(default=4, ge=1, le=1000)

    # --- Storage -------------------------------------------------------------------------------
    data_dir: Path = Path("./data")

    # --- Simulator (used when OPENAI_API_KEY is unset) -----------------------------------------
    sim_job_seconds: float = Field(default=20.0, ge=0)
    sim_retention_seconds: float = Field(default=3600.0, gt=0)

    # --- Logging -------------------------------------------------------------------------------
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("discord_guild_ids", "owner_ids", "quota_exempt_role_ids", mode="before")
    @classmethod
    def _ids(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator(
        "quota_user_daily_dollars",
        "quota_user_monthly_dollars",
        "quota_bot_daily_dollars",
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

    @field_validator("openai_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
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

    @property
    def uses_simulator(self) -> bool:
        return self.openai_api_key is None or not self.openai_api_key.get_secret_value()

    def capabilities(self) -> Capabilities:
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
        return capabilities(self.video_api_profile, overrides)

    def catalog(self) -> Catalog:
        return load_catalog(self.video_catalog_file)


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
        raise SettingsError(f"VIDEO_CATALOG_FILE: {exc}") from None
    return settings
