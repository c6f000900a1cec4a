"""`python -m videobot doctor`: is the video server set up so that a `/video` would work?

It reads the settings, probes the server with the same cheap reads as `VIDEO_API_PROFILE=auto`
(never a create), and prints what it found: reachable, auth accepted, the profile and what it can
do, the catalog `/video` will offer and where it came from (the owner's file or presets, discovered
from the server, or the default), and the models served against it. The first problem is said in
plain words with the setting that fixes it, and the exit status is 0 only when nothing stands in
the way.
Everything printed passes `bot.redact.redact`: a server may quote the key back.
"""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TextIO
from urllib.parse import urlsplit

import httpx

from bot.api.client import VideosClient
from bot.api.config import make_http_client
from bot.api.errors import VideoAPIError
from bot.api.probe import (
    AZURE_HOSTS,
    OPENROUTER_HOSTS,
    PROBE_TIMEOUT,
    VIDEO_MODELS_PATH,
    Findings,
    choose,
    probe,
)
from bot.api.profiles import Capabilities, ProfileName
from bot.api.ratelimit import MinuteRateLimiter
from bot.backend import client_config, server_key
from bot.catalog_files import CatalogError
from bot.discovery import (
    DISCOVERING,
    CatalogChoice,
    choose_catalog,
    configured,
    default_choice,
)
from bot.redact import redact
from bot.served_models import served_ids
from bot.settings import Settings

# Profiles that differ only in what the probe cannot see matter little for the doctor: a fixed
# profile of the same family is not a problem.
_FAMILIES: tuple[frozenset[str], ...] = (
    frozenset({"openai", "azure"}),
    frozenset({"sglang", "fastvideo"}),
)
# Worded so that redaction (which hides whatever follows "Bearer ") leaves them whole.
_HEADER_WORDS = {"authorization": "the key sent as Bearer", "api-key": "the api-key header"}


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problem: str | None = None
    # The profile the bot would use, once the probe has told it.
    profile: ProfileName | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def say(self, line: str) -> None:
        self.lines.append(redact(line, 500))

    def fail(self, problem: str) -> Report:
        self.problem = redact(problem, 500)
        return self

    def text(self) -> str:
        last = f"problem: {self.problem}" if self.problem else "ok: a /video would work"
        return "\n".join([*self.lines, last]) + "\n"


def describe(caps: Capabilities) -> str:
    def yes(value: bool) -> str:
        return "yes" if value else "no"

    parts = [
        f"list {yes(caps.list)}",
        f"delete {yes(caps.delete)}",
        f"remix {yes(caps.remix)}",
        "variants yes"
        if caps.variants
        else "variants no (thumbnails made from the video's first frame)",
        "JSON always (OpenRouter's body, a reference as a data URL)"
        if caps.dialect == "openrouter"
        else "multipart always"
        if caps.create_encoding == "multipart"
        else "multipart only with a reference image",
    ]
    return ", ".join(parts)


async def diagnose(settings: Settings, *, http: httpx.AsyncClient | None = None) -> Report:
    """Everything `doctor` finds, stopping at the first problem."""
    report = Report()
    if settings.uses_simulator:
        why = (
            "VIDEO_API_PROFILE=simulator"
            if settings.video_api_profile == "simulator"
            else "neither OPENAI_BASE_URL nor OPENAI_API_KEY is set"
        )
        profile = settings.fixed_profile or "openai"
        report.say(f"video backend: the built-in simulator ({why})")
        report.say(f"profile: {profile} (simulated)")
        report.say(f"capabilities: {describe(settings.capabilities(profile))}")
        report.say("videos are simulated: set OPENAI_BASE_URL (and a key if needed) for a server")
        own = configured(settings)
        if own is None and profile in DISCOVERING:
            report.say("catalog: discovered at start from the simulator's model list")
            return report
        for line in (own or default_choice(profile)).lines():
            report.say(line)
        return report
    url = settings.base_url
    report.say(f"video backend: {url}")
    if settings.openai_base_url is None:
        return report.fail(
            "OPENAI_API_KEY is set but OPENAI_BASE_URL is not, so the bot would call OpenAI's own "
            "endpoint, which stopped serving videos on 2026-09-24: set OPENAI_BASE_URL to your "
            "server's URL (it usually ends in /v1)"
        )
    async with AsyncExitStack() as stack:
        if http is None:
            http = make_http_client(PROBE_TIMEOUT, PROBE_TIMEOUT)
            stack.push_async_callback(http.aclose)
        first = settings.fixed_profile or _first_guess(url)
        config = client_config(settings, base_url=url, api_key=server_key(settings), profile=first)
        limiter = MinuteRateLimiter(settings.openai_requests_per_minute)
        findings = await probe(VideosClient(http, config, limiter=limiter))
        _judge(settings, findings, report)
        if not report.ok or report.profile is None:
            return report
        # What `/video` will offer: read as the bot reads it at start (bot/discovery.py).
        config = client_config(
            settings, base_url=url, api_key=server_key(settings), profile=report.profile
        )
        client = VideosClient(http, config, limiter=limiter)
        try:
            offered = await choose_catalog(settings, client, report.profile)
        except CatalogError as exc:
            return report.fail(f"{settings.catalog_setting}: {exc}")
        served = await _served(client, report.profile, findings)
    return _judge_catalog(findings, offered, served, report)


def _first_guess(url: str) -> ProfileName:
    host = (urlsplit(url).hostname or "").lower()
    if host in OPENROUTER_HOSTS:
        return "openrouter"
    return "azure" if host.endswith(AZURE_HOSTS) else "openai"


def _judge(settings: Settings, findings: Findings, report: Report) -> Report:
    url = findings.base_url
    gone = findings.unreachable
    if gone is not None:
        if gone.timed_out:
            return report.fail(
                f"{url} did not answer within {PROBE_TIMEOUT:.0f} s: is the server running, and "
                "is OPENAI_BASE_URL right?"
            )
        return report.fail(
            f"could not connect to {url}: is the server running? (check OPENAI_BASE_URL)"
        )
    report.say("reachable: yes")

    choice = choose(findings)
    fixed = settings.fixed_profile
    profile: ProfileName = fixed or choice.profile
    if problem := _auth_problem(settings, findings, profile):
        return report.fail(problem)
    sent = settings.auth_header(profile) if settings.has_key else "none"
    if sent == "none":
        report.say("auth: none sent (no OPENAI_API_KEY), and the server did not ask for one")
    else:
        report.say(f"auth: accepted ({_HEADER_WORDS[sent]})")

    if findings.wrong_path:
        return report.fail("404 on /videos: check OPENAI_BASE_URL (it usually ends in /v1)")

    if fixed is not None:
        report.say(f"profile: {fixed} (set by VIDEO_API_PROFILE)")
        if choice.confident and not _same_family(fixed, choice.profile):
            return report.fail(
                f"VIDEO_API_PROFILE={fixed}, but the server looks like {choice.profile} "
                f"({choice.reason}): set VIDEO_API_PROFILE={choice.profile}, or auto"
            )
    else:
        report.say(f"profile: {profile} (auto: chosen because {choice.reason})")
        if not choice.confident:
            report.say(
                "  the probe was not sure; set VIDEO_API_PROFILE if the server is another kind"
            )
    caps = settings.capabilities(profile)
    report.profile = profile
    report.say(f"capabilities: {describe(caps)}")
    for answer in (findings.missing, findings.listing if caps.list else None):
        if answer is not None and answer.status is not None and answer.status >= 500:
            return report.fail(
                f"GET {answer.path} answered {answer.status} ({answer.message()}): the server "
                "is up but failing; check its logs"
            )

    return report


def _judge_catalog(
    findings: Findings, offered: CatalogChoice, served: list[str] | None, report: Report
) -> Report:
    """The catalog the bot will offer and where it came from, then whether the server serves
    every model in it (where the server lists its models)."""
    for line in offered.lines():
        report.say(line)
    catalog = [m.id for m in offered.catalog.models]
    if served is None:
        report.say("models: the server does not list its models (no /models); not checked")
        return report
    shown = ", ".join(served[:12]) + (" ..." if len(served) > 12 else "") or "none"
    missing = [m for m in catalog if m not in served]
    if missing:
        which = ", ".join(missing)
        if len(served) == 1:
            fix = (
                f"set VIDEO_CATALOG=served:{served[0]}, or point VIDEO_CATALOG_FILE at a "
                "catalog of it"
            )
        else:
            fix = (
                "set VIDEO_CATALOG to presets named with the server's models "
                "(preset:model-id), or point VIDEO_CATALOG_FILE at a catalog of them"
            )
        return report.fail(
            f"the catalog in use offers {which}, which the server does not serve (it serves: "
            f"{shown}): {fix}"
        )
    report.say(f"models: every catalog model is served ({', '.join(catalog)}; served: {shown})")
    return report


async def _served(
    client: VideosClient, profile: ProfileName, findings: Findings
) -> list[str] | None:
    """The models the server says it serves: OpenRouter's video models, or GET /models."""
    if profile != "openrouter":
        return findings.served_models
    try:
        ids, _ = served_ids(await client.read_catalog(VIDEO_MODELS_PATH))
    except VideoAPIError:
        return None
    return ids


def _auth_problem(settings: Settings, findings: Findings, profile: ProfileName) -> str | None:
    refused = findings.models if findings.models and findings.models.refused_auth else None
    refused = refused or findings.auth_refused
    if refused is None:
        return None
    status = refused.status
    said = refused.message()
    if not settings.has_key:
        return f"the server wants a key ({status}: {said}): set OPENAI_API_KEY"
    used = findings.auth
    final = settings.auth_header(profile)
    if findings.other_auth_works:
        other = "api-key" if used == "authorization" else "authorization"
        if final == other:
            return None
        if used == "authorization":
            return (
                f"{status} with the key sent as Bearer: this looks like Azure (the api-key "
                "header was accepted); set OPENAI_AUTH_HEADER=api-key"
            )
        return (
            f"{status} with the api-key header, but the key sent as Bearer was accepted: set "
            "OPENAI_AUTH_HEADER=authorization"
        )
    return f"the key was refused ({status}: {said}): check OPENAI_API_KEY"


def _same_family(a: str, b: str) -> bool:
    return a == b or any(a in family and b in family for family in _FAMILIES)


async def run_doctor(settings: Settings, out: TextIO = sys.stdout) -> int:
    report = await diagnose(settings)
    out.write(report.text())
    out.flush()
    return 0 if report.ok else 1
