"""Per-model options and settling at a reported cost, end to end: the real bot on discord.py
against the fake Discord, the simulator over loopback, a real SQLite file.

Options: Wan 2.2 takes a negative prompt and a seed (and its servers fix the seed unless one is
sent, so the bot draws one); Sora 2 takes neither. Reported cost: the simulator's OpenRouter
prices Veo differently from the bot's preset, so the job's `usage.cost` is not the estimate the
member's reservation was made at."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.catalog_files import load_presets
from bot.sim.openrouter import MODELS
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Interaction, Upload
from tests.fakediscord.state import Message
from tests.test_e2e_actions import delivered, modal_inputs, notice, png, submit
from tests.test_e2e_quota import assert_books_balance, settled

WAN = "Wan-AI/Wan2.2-T2V-A14B-Diffusers"
SORA = "openai/sora-2"
PRESETS = ["wan-2.2", "sora-2"]
CATALOG = load_presets(PRESETS)
VEO = "google/veo-3.1"


@pytest.fixture
async def w(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    # SGLang: JSON creates, any extra field taken (as the server does), so the request log
    # shows exactly what the bot sent.
    async with world(
        fake_discord,
        tmp_path,
        database_url=database_url,
        profile="sglang",
        seconds=tuple(CATALOG.all_seconds()),
        sizes=tuple(CATALOG.all_sizes()),
        job_seconds=0.5,
        fps=6,
    ) as env:
        yield env


def posts(w: World) -> list[Any]:
    return [r for r in w.sim.requests if r.method == "POST"]


def field(message: Message, name: str) -> str | None:
    for embed in message.embeds:
        for item in embed.get("fields") or []:
            if item["name"] == name:
                return str(item["value"])
    return None


async def finished(w: World, interaction: Interaction) -> Message:
    message: Message = await w.wait_for(lambda: delivered(interaction))
    return message


async def slash(w: World, options: dict[str, Any]) -> Interaction:
    return await w.fake.dispatch_slash("video", options, user=w.user, channel=w.channel)


async def test_options_reach_a_model_that_takes_them_and_the_seed_is_shown(w: World) -> None:
    async with w.bot(video_catalog=PRESETS) as bot:
        command = w.fake.command("video", guild=w.guild)
        assert command is not None
        offered = {o["name"] for o in command.options}
        # Some model takes each of these; none makes sound to switch.
        assert {"negative_prompt", "seed"} <= offered and "sound" not in offered
        chosen = await slash(
            w,
            {"prompt": "a red fox", "model": WAN, "seed": 1234, "negative_prompt": "blurry, text"},
        )
        drawn = await slash(w, {"prompt": "a blue fox", "model": WAN, "seconds": "5"})
        plain = await slash(w, {"prompt": "a green fox", "model": SORA, "seconds": "4"})
        shown = [await finished(w, i) for i in (chosen, drawn, plain)]
        jobs = await settled(bot)
        await assert_books_balance(bot.store)
    sent = {r.json["prompt"]: r.json for r in posts(w)}
    assert len(sent) == 3
    assert sent["a red fox"]["seed"] == 1234
    assert sent["a red fox"]["negative_prompt"] == "blurry, text"
    # No seed given for a model whose server would fix one: a random one is sent.
    seed = sent["a blue fox"]["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**32
    assert "negative_prompt" not in sent["a blue fox"]
    # Sora takes no options: its body carries none.
    assert set(sent["a green fox"]) == {"prompt", "model", "seconds", "size"}
    assert "generate_audio" not in sent["a red fox"]
    # The seed used is kept with the job and shown in the finished message.
    by_prompt = {j.prompt: j for j in jobs}
    assert (by_prompt["a red fox"].seed, by_prompt["a red fox"].negative_prompt) == (
        1234,
        "blurry, text",
    )
    assert by_prompt["a blue fox"].seed == seed
    assert by_prompt["a green fox"].seed is None
    assert [field(m, "Seed") for m in shown] == ["1234", str(seed), None]


async def test_options_a_model_does_not_take_are_refused_privately_with_no_call(w: World) -> None:
    async with w.bot(video_catalog=PRESETS):
        asked = await slash(
            w, {"prompt": "a green fox", "model": SORA, "seed": 7, "negative_prompt": "blur"}
        )
        message: Message = await w.wait_for(lambda: notice(asked))
    text = message.embeds[0]["description"]
    assert "Sora 2 does not take a negative prompt or a seed" in text
    assert "It takes no negative prompt, seed or sound setting" in text
    assert posts(w) == []


async def test_the_animate_form_takes_options_for_a_model_that_takes_them(w: World) -> None:
    async with w.bot(video_catalog=PRESETS) as bot:
        target = await w.fake.post_message(
            w.channel, w.user, "look", attachments=[Upload("cat.png", png(), "image/png")]
        )
        menu = await w.fake.dispatch_message_command("Animate image", target, user=w.user)
        await w.wait_for(lambda: menu.state == "modal", timeout=5)
        assert set(modal_inputs(menu)) == {"Prompt", "Model", "Length", "Size", "Options"}
        sent = await submit(
            w,
            menu,
            {"Prompt": "the cat yawns", "Model": [WAN], "Options": "seed 77\navoid: people\npad"},
        )
        message = await w.wait_for(lambda: delivered(sent))
        refused_menu = await w.fake.dispatch_message_command("Animate image", target, user=w.user)
        refused = await submit(
            w, refused_menu, {"Prompt": "the cat yawns", "Model": [SORA], "Options": "seed 5"}
        )
        answer: Message = await w.wait_for(lambda: notice(refused))
        (job,) = await settled(bot)
    assert "Sora 2 does not take a seed" in answer.embeds[0]["description"]
    (create,) = posts(w)
    # With a reference the create is multipart: the fields went as form fields.
    assert {"seed", "negative_prompt"} <= set(create.form_fields)
    assert (job.seed, job.negative_prompt) == (77, "people")
    assert field(message, "Seed") == "77"


# ---------------------------------------------------------------------- a reported cost


def veo_priced(per_second: str) -> dict[str, Any]:
    (veo,) = [m for m in MODELS if m["id"] == VEO]
    return {**veo, "pricing_skus": {"per-video-second": per_second}}


@pytest.mark.parametrize(
    ("per_second", "daily", "spent", "uncharged", "entry"),
    [
        # Reserved at the preset's $0.40/s (4 s: $1.60); the service reports $1.00.
        ("0.25", "1000", 1_000_000, 0, ("adjust_down", -600_000)),
        # The service reports $2.40, but the member's daily limit of $2.00 leaves only $0.40.
        ("0.60", "2", 2_000_000, 400_000, ("adjust_up", 400_000)),
    ],
)
async def test_a_reported_cost_settles_the_reservation(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    database_url: str | None,
    per_second: str,
    daily: str,
    spent: int,
    uncharged: int,
    entry: tuple[str, int],
) -> None:
    async with (
        world(
            fake_discord,
            tmp_path,
            database_url=database_url,
            profile="openrouter",
            api_key=None,
            openrouter_models=(veo_priced(per_second),),
            job_seconds=0.5,
            fps=6,
        ) as w,
        w.bot(video_catalog=["veo-3.1"], quota_user_daily_dollars=daily) as bot,
    ):
        asked = await slash(w, {"prompt": "a lighthouse", "seconds": "4"})
        # No buttons here: OpenRouter makes no remixes, edits or extensions.
        await w.wait_for(lambda: asked.original and video_attachment(asked.original))
        (job,) = await settled(bot)
        entries = await bot.store.ledger_entries(job.id)
        balances = await bot.store.ledger_sum_by_job()
        await assert_books_balance(bot.store)
    assert job.reported_cost_micros == int(float(per_second) * 4 * 1_000_000)
    assert (job.cost_micros, job.uncharged_micros) == (spent, uncharged)
    assert balances[job.id] == (0, spent)
    assert [(e.reason, e.amount_micros) for e in entries] == [
        ("reserve", 1_600_000),
        ("settle", -1_600_000),
        ("settle", 1_600_000),
        entry,
    ]
