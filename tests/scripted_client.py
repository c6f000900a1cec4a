"""A VideosClient for a scripted API on loopback (tests/scripted_api.py): no retries, so each
scripted answer is the one the code under test acts on."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import SecretStr

from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.profiles import Capabilities


def client_for(http: httpx.AsyncClient, url: str, **caps: Any) -> VideosClient:
    """A client of the API at `url` with the capabilities `caps` (the profile's defaults else)."""
    config = ClientConfig(
        base_url=url, api_key=SecretStr("sk-test"), capabilities=Capabilities(**caps), max_retries=0
    )
    return VideosClient(http, config)
