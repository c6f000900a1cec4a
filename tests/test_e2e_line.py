"""Where a job stands, on its message, end to end: its place in line behind the concurrency cap,
when it should be done, and the estimated bar of a service that reports no progress. The real
bot on discord.py against the fake Discord, the simulated Videos API and a real SQLite file."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Interaction
from tests.fakediscord.state import Message

ETA = re.compile(r"should be done <t:\d+:R>")
ESTIMATE = re.compile(r"about (\d+)% \(estimate\)")
FOREVER = 3600.0


async def run_video(w: World, prompt: str, user_index: int = 0) -> Interaction:
    return await w.fake.dispatch_slash(
        "video", {"prompt": prompt}, user=w.users[user_index], channel=w.channel
    )


def status_of(embed: dict[str, Any] | None) -> str:
    if not embed:
        return ""
    return next((f["value"] for f in embed.get("fields", []) if f["name"] == "Status"), "")


def status(message: Message | None) -> str:
    return status_of(message.embed if message is not None else None)


def has_video(interaction: Interaction) -> bool:
    return interaction.original is not None and video_attachment(interaction.original) is not None


def edits_of(w: World, interaction: Interaction) -> list[str]:
    """The Status field of every edit of `interaction`'s reply, in order."""
    return [
        status_of((r.json.get("embeds") or [None])[0])
        for r in w.fake.requests
        if r.method == "PATCH" and interaction.token in r.path and isinstance(r.json, dict)
    ]


def finish_all(w: World) -> None:
    """The service finishes every job it has now (each at its next read)."""
    for video in w.sim.videos.values():
        video.job_seconds = 0.0


async def test_the_third_of_three_jobs_shows_its_place_and_eta_and_all_arrive_once(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> None:
    async with (
        world(fake_discord, tmp_path, database_url=database_url, users=3, job_seconds=1.0) as w,
        w.bot(quota_max_concurrent_jobs=1) as bot,
    ):
        # One job of the kind finishes first: the ETAs rest on what the bot learned from it.
        learner = await run_video(w, "the first of its kind")
        await w.wait_for(lambda: has_video(learner))
        # The next ones run until the test lets them finish, one by one.
        w.sim.config.job_seconds = FOREVER
        three: list[Interaction] = []
        for i in range(3):
            three.append(await run_video(w, f"clip {i} of three", user_index=i))
            # Each one's job is made before the next is asked for, so the line's order is known.
            await w.wait_for(lambda: three[-1].original and three[-1].original.embed)
        first, second, third = three
        waiting: Message = await w.wait_for(
            lambda: third.original if ETA.search(status(third.original)) else None
        )
        shown = status(waiting)
        # Waiting behind two: the slot holder and the first in line.
        assert "2nd in line" in shown, shown
        assert "1st in line" in status(second.original)
        assert len(w.sim.videos) == 2  # the learner's and the slot holder's: nothing more sent
        # The line moves up as the slot frees.
        finish_all(w)
        await w.wait_for(lambda: "1st in line" in status(third.original))
        await w.wait_for(lambda: len(w.sim.videos) == 3)
        finish_all(w)
        await w.wait_for(lambda: len(w.sim.videos) == 4)
        finish_all(w)
        await w.wait_for(lambda: all(has_video(i) for i in three), timeout=60)
        jobs = await asyncio.gather(*(bot.store.recent_jobs(u.id, 5) for u in w.users))
    assert has_video(first)
    # Each delivered once: one create each, one mp4 each.
    assert [r.route for r in w.sim.requests if r.method == "POST"] == ["POST /videos"] * 4
    videos = [m for m in w.messages() if video_attachment(m)]
    assert len(videos) == 4
    assert sorted(len(j) for j in jobs) == [1, 1, 2]
    assert all(j.state == "succeeded" for js in jobs for j in js)


@pytest.mark.parametrize("profile", ["vllm-omni", "litellm"])
async def test_a_service_without_progress_shows_an_estimated_bar_that_moves(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None, profile: str
) -> None:
    async with (
        world(
            fake_discord, tmp_path, database_url=database_url, profile=profile, job_seconds=FOREVER
        ) as w,
        w.bot(video_api_profile=profile) as bot,
    ):
        interaction = await run_video(w, "a slow dolly shot")

        def estimates() -> list[int]:
            seen: list[int] = []
            for shown in edits_of(w, interaction):
                match = ESTIMATE.search(shown)
                if match and (not seen or seen[-1] != int(match[1])):
                    seen.append(int(match[1]))
            return seen

        moves: list[int] = await w.wait_for(lambda: len(estimates()) >= 2 and estimates(), 60)
        (job,) = await bot.store.recent_jobs(w.user.id, 1)
    # The bar grew from elapsed / expected, and says it is an estimate.
    assert moves == sorted(moves) and moves[0] < moves[-1] < 100
    assert not job.progress  # the service itself never said more than 0
    final = status(interaction.original)
    assert ESTIMATE.search(final) and ETA.search(final)
    # The time since it started is shown as a relative time Discord keeps moving.
    assert re.search(r"started <t:\d+:R>", final)
