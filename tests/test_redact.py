"""Redaction: no key, token or configured secret survives into text the bot stores, logs, shows
or prints, and that text is one bounded line."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.redact import RedactingFilter, forget_secrets, redact, register_secret


@pytest.fixture(autouse=True)
def clean_secrets() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    "text",
    [
        "Incorrect API key provided: sk-proj-AbCdEf123456. You can find your key at ...",
        "Incorrect API key provided: sk-proj-****************************abcd.",
        "key=sk-ant-api03-xyz_789-QQ",
    ],
)
def test_openai_style_keys_are_removed(text: str) -> None:
    out = redact(text)
    assert "sk-" not in out
    assert "[redacted]" in out


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
        'you sent {"authorization": "Bearer tok_live_123456"}',
        "bearer abc.def-ghi rejected",
    ],
)
def test_bearer_tokens_are_removed(text: str) -> None:
    out = redact(text)
    assert "eyJ" not in out and "tok_live" not in out and "abc.def-ghi" not in out


def test_echoed_auth_headers_keep_their_name_but_not_their_value() -> None:
    out = redact("headers: api-key: 0123456789abcdef; x-api-key=zzzzsecretzzzz")
    assert "0123456789abcdef" not in out and "zzzzsecretzzzz" not in out
    assert "api-key: [redacted]" in out


@pytest.mark.parametrize("suffix", ["", " ", "\r", "\n", "\r\n"])
def test_registered_secrets_are_removed_with_or_without_stray_whitespace(suffix: str) -> None:
    # A value pasted into .env may carry a trailing space or a Windows line end.
    register_secret("plain-gateway-secret-42" + suffix)
    out = redact("upstream said: plain-gateway-secret-42 is not valid for this team")
    assert "plain-gateway-secret-42" not in out
    assert "[redacted]" in out


def test_short_values_are_not_registered() -> None:
    # Redacting "team" everywhere would garble text and protects nothing.
    register_secret("team")
    assert redact("the team is fine") == "the team is fine"


def test_one_bounded_line() -> None:
    out = redact("line one\nline two\r\n\tline three " + "x" * 1000, 120)
    assert "\n" not in out and "\r" not in out and "\t" not in out
    assert len(out) <= 120
    assert out.startswith("line one line two line three")
    assert out.endswith("…")
    assert len(redact("y" * 5000, None)) == 5000


async def test_the_client_registers_its_key_and_extra_header_values() -> None:
    # A key without any recognisable shape is only caught because it was registered.
    config = ClientConfig(
        base_url="http://127.0.0.1:9/v1",
        api_key=SecretStr("azure0key0with0no0shape"),
        auth_header="api-key",
        extra_headers={"X-Org": "org-credential-5555 "},
    )
    async with httpx.AsyncClient() as http:
        VideosClient(http, config)
    out = redact("echo: azure0key0with0no0shape / X-Org=org-credential-5555")
    assert "azure0key0with0no0shape" not in out and "org-credential-5555" not in out


def test_logs_are_redacted_including_arguments_and_tracebacks() -> None:
    register_secret("log-secret-value-77")
    logger = logging.getLogger("test_redact")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    keep = Keep()
    keep.addFilter(RedactingFilter())
    logger.addHandler(keep)
    try:
        logger.warning("server said %s", "nope: log-secret-value-77 / Bearer abcdefgh")
        try:
            raise RuntimeError("boom with sk-live-abcdef0123")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(keep)
    formatter = logging.Formatter()
    text = "\n".join(formatter.format(r) for r in records)
    assert "log-secret-value-77" not in text
    assert "abcdefgh" not in text
    assert "sk-live-abcdef0123" not in text
    assert "Traceback" in text  # multi-line output keeps its lines
