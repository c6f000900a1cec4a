"""Hostile and careless input: every prompt and attachment gets a clear answer, nothing refused
is charged, and the bot keeps serving afterwards."""

from __future__ import annotations

import asyncio
import io
import unicodedata
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import SecretStr

from bot.api.client import VideosClient
from bot.api.config import ClientConfig
from bot.api.models import CreateVideo
from bot.catalog_files import load_catalog
from bot.notice import notice
from bot.prompt import MAX_PROMPT_CHARS, clean_prompt, prompt_problem
from bot.queueview import Outlook
from bot.quota import QuotaDefaults, QuotaPolicy
from bot.reference import ReferenceRejected, fit_reference
from bot.sender import Sender
from bot.sim import SimConfig, SimServer
from bot.store import Job, Store
from bot.submit import JobService, Origin, Refused
from bot.tracker import Tracker
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Upload

PROMPTS = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(categories=["Cc", "Zs", "Zl", "Zp"]), max_size=40),
    st.sampled_from(
        [
            "",
            "   \n\t  ",
            "**bold** __under__ `code` ||spoiler|| > quote",
            "@everyone @here <@123456789012345678> <@&987654321098765432>",
            "a" * 6000,
            "\x00\x1b[31mred\x1b[0m",
            "\u202eevil reversed text",
        ]
    ),
)


@given(st.text())
def test_a_cleaned_prompt_has_no_control_characters_and_no_edges(text: str) -> None:
    cleaned = clean_prompt(text)
    assert cleaned == cleaned.strip()
    assert all(c in "\n\t" or unicodedata.category(c) != "Cc" for c in cleaned)
    assert clean_prompt(cleaned) == cleaned
    # Printable text passes through unchanged.
    printable = "".join(c for c in text if c.isprintable() and not c.isspace())
    assert all(c in cleaned for c in printable)


def test_prompt_problems_say_what_is_wrong() -> None:
    assert str(prompt_problem("")) == "The prompt is empty."
    too_long = prompt_problem("x" * (MAX_PROMPT_CHARS + 1))
    assert too_long is not None
    assert str(MAX_PROMPT_CHARS) in too_long.plain()
    assert prompt_problem("a fox") is None


async def _submit_all(tmp: Path, prompts: list[str]) -> list[tuple[str, Job | Refused]]:
    # A prepared clip: only the prompts sent matter here, not a render per prompt.
    sim = SimServer(SimConfig(job_seconds=60, clip="prepared"))
    async with sim as url, httpx.AsyncClient() as http:
        store = await Store.open(tmp / "bot.sqlite3")
        try:
            client = VideosClient(http, ClientConfig(base_url=url, api_key=SecretStr("sk-test")))
            tracker = Tracker(store, client, _Quiet(), sender=Sender(store, client, tmp))
            policy = QuotaPolicy(
                store,
                QuotaDefaults(
                    user_daily_micros=10**9,
                    user_monthly_micros=10**9,
                    bot_daily_micros=10**9,
                    max_active_per_user=None,
                    cooldown_seconds=None,
                    max_concurrent=None,
                ),
            )
            service = JobService(store, client, load_catalog(None), tracker, tmp, policy=policy)
            results: list[tuple[str, Job | Refused]] = []
            for i, prompt in enumerate(prompts):
                # Unvalidated on purpose: the service itself must cope with whatever arrives.
                request = CreateVideo.model_construct(
                    prompt=prompt, model="sora-2", seconds="4", size="1280x720"
                )
                origin = Origin(user_id=1 + i % 3, channel_id=10, guild_id=20)
                results.append((prompt, await service.submit(origin, request)))
            sent = [v.prompt or "" for v in (await client.list(limit=100)).data]
            return [*results, ("<sent>", Refused(notice("{sent}", sent="\u0000".join(sent))))]
        finally:
            await store.close()


class _Quiet:
    async def job_changed(self, job: Job, outlook: Outlook | None = None) -> None:
        return None

    async def job_finished(self, job: Job) -> None:
        return None


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(PROMPTS, min_size=1, max_size=6))
def test_any_prompt_is_refused_clearly_or_sent_clean(
    tmp_path_factory: pytest.TempPathFactory, prompts: list[str]
) -> None:
    tmp = tmp_path_factory.mktemp("prompts")
    results = asyncio.run(_submit_all(tmp, [*prompts, "a plain fox, to show it still serves"]))
    *answers, (_, sent_marker) = results
    assert isinstance(sent_marker, Refused)
    sent = sent_marker.message.plain().split("\u0000") if sent_marker.message else []
    expected_sent = []
    for prompt, outcome in answers:
        cleaned = clean_prompt(prompt)
        if prompt_problem(cleaned):
            assert isinstance(outcome, Refused)
            assert outcome.message.plain() == str(prompt_problem(cleaned))
        else:
            assert not isinstance(outcome, Refused), outcome
            assert outcome.prompt == cleaned
            expected_sent.append(cleaned)
    assert sorted(sent) == sorted(expected_sent)
    assert answers[-1][0].startswith("a plain fox")


def _image(fmt: str, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (90, 20, 200)).save(buf, fmt)
    return buf.getvalue()


ATTACHMENTS = st.one_of(
    st.binary(max_size=2048),
    st.builds(
        lambda fmt, cut: _image(fmt)[: max(1, int(len(_image(fmt)) * cut))],
        st.sampled_from(["PNG", "JPEG", "WEBP", "GIF"]),
        st.floats(0.0, 1.0),
    ),
    st.sampled_from(
        [
            b"%PDF-1.7\n",
            b"GIF89a",
            b"\x89PNG\r\n\x1a\n",
            b"RIFF\x00\x00\x00\x00WEBP",
            b"\xff\xd8\xff",
        ]
    ),
)


@settings(max_examples=150, deadline=None)
@given(ATTACHMENTS, st.sampled_from(["crop", "pad"]))
def test_any_attachment_is_fitted_exactly_or_refused_with_a_reason(data: bytes, fit: str) -> None:
    reason = ""
    try:
        ref = fit_reference(data, "128x96", mode=fit)  # type: ignore[arg-type]
    except ReferenceRejected as exc:
        reason = exc.reason
    else:
        with Image.open(io.BytesIO(ref.data)) as img:
            assert img.size == (128, 96)
        return
    assert reason


@pytest.fixture
async def w(fake_discord: FakeDiscord, tmp_path: Path) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path) as env:
        yield env


async def test_nasty_input_through_discord_then_the_bot_still_serves(w: World) -> None:
    prompts = ["\x00\x07 a lamp \x1b[0m", "   ", "**bold** <@1> @everyone", "b" * 4000]
    attachments = [
        Upload("cut.png", _image("PNG")[:40], "image/png"),
        Upload("doc.webp", b"%PDF-1.7 not an image", "image/webp"),
    ]
    async with w.bot() as bot:
        answered = []
        for prompt in prompts:
            answered.append(
                await w.fake.dispatch_slash(
                    "video", {"prompt": prompt}, user=w.user, channel=w.channel
                )
            )
        for upload in attachments:
            answered.append(
                await w.fake.dispatch_slash(
                    "video",
                    {"prompt": "animate", "reference": upload},
                    user=w.user,
                    channel=w.channel,
                )
            )
        await w.wait_for(lambda: all(i.original is not None or i.followups for i in answered))
        last = await w.fake.dispatch_slash(
            "video", {"prompt": "a plain fox"}, user=w.user, channel=w.channel
        )
        await w.wait_for(lambda: last.original is not None and video_attachment(last.original))
        jobs = await bot.store.recent_jobs(w.user.id, 50)
    sent = sorted(v.prompt for v in w.sim.videos.values())
    expected = [clean_prompt(p) for p in [*prompts, "a plain fox"] if clean_prompt(p)]
    assert sent == sorted(expected)
    assert "a lamp [0m" in sent  # control characters gone, the rest kept as typed
    assert len(jobs) == 4  # the whitespace prompt and both attachments were never jobs
    refused = [answered[1], answered[4], answered[5]]
    for interaction in refused:
        notes = [m for m in [interaction.original, *interaction.followups] if m and m.ephemeral]
        assert notes, interaction


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\u202eevil reversed text", "evil reversed text"),
        ("invoice\u202excod.mp4", "invoicexcod.mp4"),
        ("\u2066isolated\u2069 and \u200fmarked", "isolated and marked"),
        ("zero\u200bwidth\ufeff space\u2060s", "zerowidth spaces"),
        ("ascii\u200djoiner", "asciijoiner"),
    ],
)
def test_prompts_lose_direction_overrides_and_invisible_characters(raw: str, shown: str) -> None:
    assert clean_prompt(raw) == shown


def test_joiners_that_write_a_script_or_an_emoji_stay() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # "I want", with a ZWNJ
    assert clean_prompt(f"a {family} at the beach") == f"a {family} at the beach"
    assert clean_prompt(persian) == persian
