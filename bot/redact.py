"""Redaction of secrets from any text the bot stores, logs, shows or prints.

A server's words are untrusted: a gateway may echo the request's headers into an error body, and
a provider's 401 text may quote part of the key. Everything that leaves the process as text passes
through `redact`, which removes the configured secrets (registered once at start-up), anything
shaped like an API key or a bearer token, and folds the text onto one bounded line.
"""

from __future__ import annotations

import logging
import re
import threading

_REPLACEMENT = "[redacted]"
# Shapes of credentials whatever the configuration: OpenAI-style keys, bearer tokens, and the
# value of an auth header quoted back (`api-key: ...`, `Authorization: ...`).
_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_\-*.]{3,}"),
    re.compile(r"(?i)\bbearer\s+[^\s\"',;]+"),
    re.compile(r"(?i)\b(api-key|authorization|x-api-key)(\"?\s*[:=]\s*\"?)[^\s\"',;]+"),
    # An interaction or webhook token in a Discord URL (`/webhooks/<app id>/<token>`,
    # `/interactions/<id>/<token>/callback`): the id stays, the token goes.
    re.compile(r"(/(?:webhooks|interactions)/\d+)(/)[A-Za-z0-9_\-.]{20,}"),
    # A Discord bot token's shape (base64 user id, timestamp, HMAC).
    re.compile(r"\b[A-Za-z0-9_\-]{23,28}\.[A-Za-z0-9_\-]{6,7}\.[A-Za-z0-9_\-]{27,40}\b"),
)
# Secrets shorter than this are not registered: redacting "abc" everywhere would garble text
# and a key that short protects nothing anyway.
_MIN_SECRET = 6


class _Registry:
    """The secrets registered so far; replaced whole under a lock so readers never lock."""

    lock = threading.Lock()
    secrets: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Redact `value` (and its stripped form) from now on, in every thread."""
    if not value:
        return
    forms = {value, value.strip()}
    with _Registry.lock:
        known = set(_Registry.secrets)
        known.update(f for f in forms if len(f) >= _MIN_SECRET)
        # Longest first, so a secret that contains another is removed whole.
        _Registry.secrets = tuple(sorted(known, key=len, reverse=True))


def forget_secrets() -> None:
    """For tests: start again with no registered secrets."""
    with _Registry.lock:
        _Registry.secrets = ()


def redact(text: object, limit: int | None = 300) -> str:
    """`text` on one line, without secrets, at most `limit` characters (None: no cap)."""
    out = str(text)
    for secret in _Registry.secrets:
        if secret in out:
            out = out.replace(secret, _REPLACEMENT)
    for pattern in _PATTERNS:
        out = pattern.sub(_sub, out)
    out = " ".join(out.split())
    if limit is not None and len(out) > limit:
        out = out[: max(0, limit - 1)].rstrip() + "…"
    return out


def _sub(match: re.Match[str]) -> str:
    if match.lastindex and match.lastindex >= 2:
        # Keep the header's name so the text still says what was wrong.
        return f"{match.group(1)}{match.group(2)}{_REPLACEMENT}"
    return _REPLACEMENT


class RedactingFilter(logging.Filter):
    """A handler filter that redacts every record's message (arguments merged first) and its
    traceback text. Multi-line output such as tracebacks keeps its lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        record.msg = "\n".join(redact(line, None) for line in message.splitlines()) or message
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = "\n".join(redact(line, None) for line in record.exc_text.splitlines())
        return True
