"""The process's log at every level: no key, bot token or interaction token is ever written."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.logs import CAPPED_AT_INFO, configure_logging
from bot.redact import RedactingFilter, forget_secrets, register_secret
from tests.e2e import API_KEY, video_attachment, world
from tests.fakediscord import FakeDiscord


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in (*CAPPED_AT_INFO, "httpx")}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)
        forget_secrets()


@pytest.mark.usefixtures("restore_logging")
def test_loggers_that_print_tokens_stay_above_debug() -> None:
    configure_logging("DEBUG", io.StringIO())
    assert logging.getLogger().level == logging.DEBUG
    for name in CAPPED_AT_INFO:
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("bot.tracker").isEnabledFor(logging.DEBUG)


@pytest.mark.usefixtures("restore_logging")
def test_every_record_is_redacted_tracebacks_included() -> None:
    out = io.StringIO()
    configure_logging("DEBUG", out)
    register_secret("gateway-secret-value ")  # as pasted, with a trailing space
    log = logging.getLogger("bot.somewhere")
    log.info("sent %s to %s", "Bearer sk-live-abcdef123", "/interactions/123/" + "t" * 60)
    try:
        raise RuntimeError("header X-Gateway: gateway-secret-value refused")
    except RuntimeError:
        log.exception("request failed")
    text = out.getvalue()
    assert "sk-live-abcdef123" not in text
    assert "t" * 60 not in text
    assert "gateway-secret-value" not in text
    assert "/interactions/123/[redacted]" in text
    assert "Traceback" in text and "RuntimeError" in text  # still a useful log


def test_the_filter_keeps_records_whose_arguments_cannot_be_formatted() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d things", ("many",), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "%d things"


@pytest.mark.usefixtures("restore_logging")
async def test_a_debug_run_logs_no_secret_and_no_interaction_token(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    out = io.StringIO()
    async with world(fake_discord, tmp_path) as w:
        settings = w.settings(log_level="DEBUG")
        for secret in settings.secrets():
            register_secret(secret)
        configure_logging("DEBUG", out)
        async with w.bot():
            interaction = await w.fake.dispatch_slash(
                "video", {"prompt": "a lighthouse at dusk"}, user=w.user, channel=w.channel
            )
            await w.wait_for(
                lambda: interaction.original is not None and video_attachment(interaction.original)
            )
    text = out.getvalue()
    assert " DEBUG bot." in text  # the run really logged at DEBUG
    for secret in (API_KEY, fake_discord.token, interaction.token):
        assert secret not in text
