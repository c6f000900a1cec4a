"""Telling which kind of server answers at the base URL, from a few cheap reads (never a create).

`VIDEO_API_PROFILE=auto` (the default when a server is configured) runs `probe` at start and takes
the profile `choose` names; `python -m videobot doctor` shows the same findings. Every read goes
through `VideosClient.probe_get`, the one place with video HTTP, and the whole probe is bounded:
at most four GETs with short timeouts.

What tells the servers apart (see the README's profiles table):
- LiteLLM adds `x-litellm-*` headers, and its list asks for a provider (`custom-llm-provider`).
- Azure OpenAI lives on `*.openai.azure.com` and takes the key in an `api-key` header.
- vLLM-Omni answers errors in vLLM's envelope, whose `code` is an integer.
- SGLang and FastVideo are FastAPI apps: errors are `{"detail": ...}` and lists have no
  `has_more`; SGLang serves `/v1/models`, FastVideo does not.
- OpenRouter lives on `openrouter.ai`, has no job list, and answers `GET /videos/models` with
  its catalog (models carrying `supported_*` and `pricing_skus`); that read is made only where
  the listing was refused, and elsewhere stands for the read of a video that cannot exist.
- What is left speaks OpenAI's own shape.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from bot.api.client import VideosClient
from bot.api.errors import APITimeoutError, VideoAPIError
from bot.api.profiles import AuthHeader, ProfileName
from bot.redact import redact

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 5.0
Envelope = Literal["openai", "vllm", "fastapi", "unknown"]
AZURE_HOSTS = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
OPENROUTER_HOSTS = ("openrouter.ai",)
# Where OpenRouter tells its video models (bot/discovery.py reads it in full).
VIDEO_MODELS_PATH = "/videos/models"
# Keys only OpenRouter's video model entries carry.
_OPENROUTER_MODEL_KEYS = frozenset(
    {"pricing_skus", "supported_durations", "supported_resolutions", "supported_aspect_ratios"}
)
_LITELLM_WORDS = ("custom-llm-provider", "custom_llm_provider", "litellm")


@dataclass
class Answer:
    """One probe read as it came back (or why nothing came back)."""

    path: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    text: str = ""
    # Why there is no answer: the server could not be reached, or did not answer in time.
    failure: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    @property
    def refused_auth(self) -> bool:
        return self.status in (401, 403)

    def message(self) -> str:
        """The server's own words for an error answer, on one redacted line."""
        body = self.body
        if isinstance(body, dict):
            inner = body.get("error", body)
            if isinstance(inner, dict):
                said = inner.get("message") or inner.get("detail")
                if said:
                    return redact(said, 200)
            elif isinstance(inner, str):
                return redact(inner, 200)
        return redact(self.text, 200) or f"HTTP {self.status}"


@dataclass
class Findings:
    """What the probe saw; `choose` turns it into a profile."""

    base_url: str
    # How the key went out in the reads below ("none" without a key).
    auth: AuthHeader | Literal["none"]
    models: Answer | None = None
    # /models again with the key in the other header, after the configured one was refused.
    other_auth: Answer | None = None
    listing: Answer | None = None
    missing: Answer | None = None

    @property
    def answers(self) -> list[Answer]:
        return [a for a in (self.models, self.other_auth, self.listing, self.missing) if a]

    @property
    def unreachable(self) -> Answer | None:
        """The first read that got no answer at all, when none got one."""
        answered = [a for a in self.answers if a.status is not None]
        return None if answered else next(iter(self.answers), None)

    @property
    def auth_refused(self) -> Answer | None:
        """A read refused for its credentials (after any switch to the other header)."""
        for answer in (self.listing, self.missing, self.models):
            if answer is not None and answer.refused_auth:
                return answer
        return None

    @property
    def other_auth_works(self) -> bool:
        return self.other_auth is not None and self.other_auth.ok

    @property
    def served_models(self) -> list[str] | None:
        """Model ids from GET /models, or None when the server does not list them."""
        answer = self.models if not self.other_auth_works else self.other_auth
        if answer is None or not answer.ok or not isinstance(answer.body, dict):
            return None
        data = answer.body.get("data")
        if not isinstance(data, list):
            return None
        ids = [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
        return ids[:200]

    @property
    def litellm_sign(self) -> str | None:
        for answer in self.answers:
            if any(name.lower().startswith("x-litellm-") for name in answer.headers):
                return "the server sends x-litellm-* headers"
        if self.listing is not None and not self.listing.ok:
            said = self.listing.message().lower()
            if any(word in said for word in _LITELLM_WORDS):
                return "listing videos asks for a provider (custom-llm-provider)"
        return None

    @property
    def azure_sign(self) -> str | None:
        host = (urlsplit(self.base_url).hostname or "").lower()
        if host.endswith(AZURE_HOSTS):
            return f"the host {host} is Azure's"
        if self.auth == "authorization" and self.other_auth_works:
            return "the key sent as Bearer was refused and the api-key header accepted"
        return None

    @property
    def openrouter_sign(self) -> str | None:
        host = (urlsplit(self.base_url).hostname or "").lower()
        if host in OPENROUTER_HOSTS or host.endswith(tuple("." + h for h in OPENROUTER_HOSTS)):
            return f"the host {host} is OpenRouter's"
        answer = self.missing
        if answer is not None and answer.path == VIDEO_MODELS_PATH and answer.ok:
            body = answer.body
            data = body.get("data") if isinstance(body, dict) else None
            if isinstance(data, list) and any(
                isinstance(m, dict) and _OPENROUTER_MODEL_KEYS & m.keys() for m in data[:50]
            ):
                return "GET /videos/models lists video models in OpenRouter's shape"
        return None

    @property
    def envelope(self) -> Envelope:
        """The shape of the error for a video that cannot exist."""
        answer = self.missing
        if answer is None or answer.ok or not isinstance(answer.body, dict):
            return "unknown"
        body = answer.body
        inner = body.get("error")
        if isinstance(inner, dict):
            code = inner.get("code")
            return "vllm" if isinstance(code, int) and not isinstance(code, bool) else "openai"
        if body.get("object") == "error" and isinstance(body.get("code"), int):
            return "vllm"
        if "detail" in body:
            return "fastapi"
        return "unknown"

    @property
    def list_has_more(self) -> bool | None:
        answer = self.listing
        if answer is None or not answer.ok or not isinstance(answer.body, dict):
            return None
        return "has_more" in answer.body

    @property
    def wrong_path(self) -> bool:
        """GET /videos itself is not there: the base URL points somewhere else (OpenRouter,
        which lists no jobs, aside)."""
        return (
            self.listing is not None and self.listing.status == 404 and self.openrouter_sign is None
        )


@dataclass(frozen=True)
class Choice:
    profile: ProfileName
    reason: str
    # False when the probe could not see enough and fell back to a guess.
    confident: bool = True


def choose(findings: Findings) -> Choice:
    """The profile the findings point to, and why, in words for the log and `doctor`."""
    if (gone := findings.unreachable) is not None:
        return Choice("openai", f"the server could not be probed ({gone.failure})", False)
    if findings.auth_refused is not None and not findings.other_auth_works:
        if findings.auth == "none":
            return Choice("openai", "the server wants a key and OPENAI_API_KEY is not set", False)
        return Choice("openai", "the server refused the key, so it could not be probed", False)
    if (sign := findings.openrouter_sign) is not None:
        return Choice("openrouter", sign + ": OpenRouter")
    if findings.wrong_path:
        return Choice("openai", "GET /videos answered 404 (is OPENAI_BASE_URL right?)", False)
    if (sign := findings.litellm_sign) is not None:
        return Choice("litellm", sign + ": a LiteLLM proxy")
    if (sign := findings.azure_sign) is not None:
        return Choice("azure", sign + ": Azure OpenAI")
    envelope = findings.envelope
    if envelope == "vllm":
        return Choice("vllm-omni", "errors carry integer codes (vLLM's envelope): vLLM-Omni")
    if envelope == "fastapi" or findings.list_has_more is False:
        shape = (
            "errors are FastAPI's {detail}" if envelope == "fastapi" else "lists have no has_more"
        )
        if findings.served_models is not None:
            return Choice("sglang", f"{shape} and /models answers: SGLang")
        return Choice("fastvideo", f"{shape} and there is no /models: FastVideo")
    if envelope == "openai":
        return Choice("openai", "errors and lists have OpenAI's shape")
    return Choice("openai", "nothing set the server apart; assuming OpenAI's shape", False)


async def probe(client: VideosClient, *, wait: float = PROBE_TIMEOUT) -> Findings:
    """At most four GETs: /models (again with the other auth header if the key was refused),
    /videos?limit=1, and /videos/<an id that cannot exist> (where the listing was refused:
    /videos/models, OpenRouter's catalog, which any other server answers as a video it does not
    have); the first read that gets no answer ends the probe, so a server that hangs costs one
    timeout. Never raises for what it sees."""
    key = client.config.api_key.get_secret_value()
    auth: AuthHeader | Literal["none"] = client.config.auth_header if key else "none"
    findings = Findings(client.config.base_url, auth)
    findings.models = await _read(client, "/models", wait=wait)
    if findings.models.status is None:
        return findings
    use: AuthHeader | None = None
    if findings.models.refused_auth and key:
        other: AuthHeader = "authorization" if auth == "api-key" else "api-key"
        findings.other_auth = await _read(client, "/models", wait=wait, auth_header=other)
        if findings.other_auth.ok:
            use = other
    findings.listing = await _read(
        client, "/videos", params={"limit": "1"}, wait=wait, auth_header=use
    )
    if findings.listing.status is None:
        return findings
    missing = "/videos/video_probe_" + secrets.token_hex(8)
    if not findings.listing.ok:
        missing = VIDEO_MODELS_PATH
    findings.missing = await _read(client, missing, wait=wait, auth_header=use)
    return findings


async def _read(
    client: VideosClient,
    path: str,
    *,
    wait: float,
    params: dict[str, str] | None = None,
    auth_header: AuthHeader | None = None,
) -> Answer:
    answer = Answer(path)
    try:
        status, headers, raw = await client.probe_get(
            path, params=params, auth_header=auth_header, wait=wait
        )
    except VideoAPIError as exc:
        answer.failure = redact(exc.message, 200)
        answer.timed_out = isinstance(exc, APITimeoutError)
        log.debug("probe GET %s: %s", path, answer.failure)
        return answer
    answer.status = status
    answer.headers = {k.lower(): redact(v, 200) for k, v in list(headers.items())[:100]}
    answer.text = raw.decode("utf-8", "replace")
    try:
        answer.body = json.loads(answer.text)
    except ValueError:
        answer.body = None
    log.debug("probe GET %s -> %d", path, status)
    return answer
