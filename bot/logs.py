"""The process's logging: one handler, every record redacted, chatty libraries capped.

At DEBUG, some libraries print what must never reach a log file: discord.py's HTTP and webhook
loggers print request URLs, which carry interaction tokens; aiosqlite prints every statement's
parameters (the jobs table holds those tokens); httpcore and httpx trace requests and their
headers. Those loggers never go below INFO, whatever LOG_LEVEL says, and every record of every
logger passes `RedactingFilter` (configured secrets, key and token shapes) on its way out.
"""

from __future__ import annotations

import logging
from typing import TextIO

from bot.redact import RedactingFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that print secrets or tokens at DEBUG: held at INFO or above.
CAPPED_AT_INFO = (
    "discord.http",
    "discord.webhook",
    "discord.gateway",
    "discord.client",
    "discord.state",
    "aiosqlite",
    "httpcore",
    "hpack",
)
# Loggers that print every request at INFO: held at WARNING or above.
CAPPED_AT_WARNING = ("httpx",)


def configure_logging(level: str | int, stream: TextIO | None = None) -> logging.Handler:
    """Log to `stream` (standard error) at `level` through one redacting handler; returns the
    handler."""
    numeric = level if isinstance(level, int) else logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    cap_loggers(numeric)
    return handler


def cap_loggers(level: int) -> None:
    """Hold the loggers that print secrets at DEBUG (and requests at INFO) above those levels."""
    for name in CAPPED_AT_INFO:
        logging.getLogger(name).setLevel(max(logging.INFO, level))
    for name in CAPPED_AT_WARNING:
        logging.getLogger(name).setLevel(max(logging.WARNING, level))
