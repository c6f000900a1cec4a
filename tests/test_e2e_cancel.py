"""Cancel on a job's message, end to end: the real bot on discord.py against the fake Discord,
the simulated Videos API and a real SQLite file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.store import Job, JobBalance
from discordbot.client import VideoBot
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Interaction
from tests.fakediscord.state import Message

CANCEL_ID = re.compile(r"^job:(\d+):cancel$")
# Long enough that only a Cancel ends the job while the test runs.
FOREVER = 3600.0


# ---------------------------------------------------------------------- helpers


async def run_video(w: World, prompt: str, user_index: int = 0) -> Interaction:
    return await w.fake.dispatch_slash(
        "video", {"prompt": prompt}, user=w.users[user_index], channel=w.channel
    )


def cancel_id(message: Message | None) -> str | None:
    """The custom_id of the Cancel button on `message`, if it has one."""
    for button in message.buttons if message is not None else []:
        if CANCEL_ID.match(str(button.get("custom_id"))):
            return str(button["custom_id"])
    return None


def job_id_of(custom_id: str) -> int:
    match = CANCEL_ID.match(custom_id)
    assert match is not None
    return int(match[1])


def status(message: Message | None) -> str:
    embed = message.embed if message is not None else None
    if embed is None:
        return ""
    return next((f["value"] for f in embed.get("fields", []) if f["name"] == "Status"), "")


def title(message: Message | None) -> str:
    embed = message.embed if message is not None else None
    return str(embed.get("title", "")) if embed is not None else ""


def at_service(interaction: Interaction) -> Message | None:
    """The job's message once it shows the job's status read at the video service, with Cancel
    on it."""
    message = interaction.original
    shown = status(message)
    if cancel_id(message) and ("Generating" in shown or "Queued at the video service" in shown):
        return message
    return None


def has_video(interaction: Interaction) -> bool:
    return interaction.original is not None and video_attachment(interaction.original) is not None


def notice(interaction: Interaction) -> Message | None:
    """The private answer the member got, if any."""
    for message in [interaction.original, *interaction.followups]:
        if message is not None and message.ephemeral and not message.deleted:
            return message
    return None


def api_calls(w: World, method: str) -> list[str]:
    return [str(r.route) for r in w.sim.requests if r.method == method]


def delivery_state(w: World, job_id: int) -> str:
    rows = w.rows("SELECT delivery_state FROM jobs WHERE id = ?", (job_id,))
    return str(rows[0][0]) if rows else ""


async def delivered_and_settled(
    w: World, bot: VideoBot, interaction: Interaction, custom_id: str
) -> tuple[Message, Job | None]:
    """The job's message once it carries the video, and the job once its delivery is recorded
    (so settled: charged once)."""
    delivered: Message = await w.wait_for(
        lambda: interaction.original if has_video(interaction) else None
    )
    await w.wait_for(lambda: delivery_state(w, job_id_of(custom_id)) == "done")
    return delivered, await bot.store.get_job(job_id_of(custom_id))


async def balances(w: World) -> tuple[dict[int, JobBalance], int]:
    """The ledger by job, and the first member's usage, from the database file."""
    async with await w.open_store() as store:
        return await store.ledger_sum_by_job(), await store.usage(user_id=w.user.id)


# ---------------------------------------------------------------------- by the owner


@pytest.mark.parametrize("profile", ["vllm-omni", "openai"])
async def test_the_owner_cancels_a_running_job_it_is_stopped_there_and_refunded(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None, profile: str
) -> None:
    async with (
        world(
            fake_discord, tmp_path, database_url=database_url, profile=profile, job_seconds=FOREVER
        ) as w,
        w.bot(video_api_profile=profile) as bot,
    ):
        interaction = await run_video(w, "a sunrise that takes all day")
        message: Message = await w.wait_for(lambda: at_service(interaction))
        custom_id = cancel_id(message)
        assert custom_id is not None
        job_id = job_id_of(custom_id)
        running = await bot.store.get_job(job_id)
        assert running is not None and running.state == "running"
        held, _ = await balances(w)
        assert held[job_id].held == running.cost_micros > 0

        click = await w.fake.dispatch_button(message, custom_id, user=w.user)
        await w.wait_for(lambda: title(interaction.original) == "Cancelled")
        job = await bot.store.get_job(job_id)
        listing = await w.fake.dispatch_slash("videos", {}, user=w.user, channel=w.channel)
        listed: Message = await w.wait_for(
            lambda: next((m for m in [listing.original, *listing.followups] if m and m.embed), None)
        )
    assert job is not None
    assert (job.state, job.error_code, job.cancelled_by) == ("failed", "cancelled", w.user.id)
    # Stopped at the service: one DELETE for its video, which the simulator no longer has.
    assert api_calls(w, "DELETE") == ["DELETE /videos/{id}"]
    assert running.api_video_id not in w.sim.videos
    # The message says so, with no video and no button left; nothing else was said.
    assert interaction.original is not None
    assert video_attachment(interaction.original) is None
    assert interaction.original.buttons == []
    assert "Nothing was charged" in str(interaction.original.embed)
    assert "Video failed" not in str(interaction.original.embed)
    assert click.acknowledged and notice(click) is None
    assert not any(video_attachment(m) for m in w.messages())
    # Refunded: the reservation is gone and the member's usage is back to nothing.
    ledger, usage = await balances(w)
    assert ledger[job_id] == JobBalance(held=0, spent=0)
    assert usage == 0
    # `/videos` lists it as cancelled.
    assert listed.ephemeral
    assert f"job {job_id} · cancelled" in str(listed.embed)


async def test_cancelling_a_job_waiting_for_a_slot_sends_nothing(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> None:
    async with (
        world(fake_discord, tmp_path, database_url=database_url, job_seconds=FOREVER) as w,
        w.bot(quota_max_concurrent_jobs=1) as bot,
    ):
        first = await run_video(w, "the one that holds the only slot")
        await w.wait_for(lambda: len(w.sim.videos) == 1)
        second = await run_video(w, "the one that waits")
        message: Message = await w.wait_for(
            lambda: second.original if cancel_id(second.original) else None
        )
        assert "1st in line" in status(message)
        custom_id = cancel_id(message)
        assert custom_id is not None
        job_id = job_id_of(custom_id)
        click = await w.fake.dispatch_button(message, custom_id, user=w.user)
        await w.wait_for(lambda: title(second.original) == "Cancelled")
        job = await bot.store.get_job(job_id)
        holder = await bot.store.get_job(job_id - 1)
    assert job is not None and (job.state, job.cancelled) == ("failed", True)
    assert job.api_video_id is None and job.create_attempted_at is None
    # Only the first job's create ever left; nothing was deleted.
    assert api_calls(w, "POST") == ["POST /videos"]
    assert api_calls(w, "DELETE") == []
    assert "Nothing was charged" in str(second.original and second.original.embed)
    assert second.original is not None and second.original.buttons == []
    assert notice(click) is None
    ledger, _ = await balances(w)
    assert ledger[job_id] == JobBalance(held=0, spent=0)
    # The job holding the slot goes on, its Cancel still there.
    assert holder is not None and holder.state == "running"
    assert cancel_id(first.original) == f"job:{holder.id}:cancel"


# ---------------------------------------------------------------------- by anyone else


async def test_anyone_else_is_refused_privately_and_the_job_goes_on(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> None:
    async with (
        world(fake_discord, tmp_path, database_url=database_url, users=2, job_seconds=3.0) as w,
        w.bot() as bot,
    ):
        interaction = await run_video(w, "a kite that keeps flying")
        message: Message = await w.wait_for(
            lambda: interaction.original if cancel_id(interaction.original) else None
        )
        custom_id = cancel_id(message)
        assert custom_id is not None
        click = await w.fake.dispatch_button(message, custom_id, user=w.users[1])
        answer: Message = await w.wait_for(lambda: notice(click))
        delivered, job = await delivered_and_settled(w, bot, interaction, custom_id)
    assert "Only the member who started this video can cancel it" in str(answer.embed)
    assert answer.ephemeral
    assert job is not None and (job.state, job.cancelled_by) == ("succeeded", None)
    assert api_calls(w, "DELETE") == []
    # Delivered as usual, with the finished video's buttons instead of Cancel.
    assert cancel_id(delivered) is None
    assert title(delivered) != "Cancelled"
    ledger, _ = await balances(w)
    assert ledger[job.id] == JobBalance(held=0, spent=job.cost_micros)


async def test_a_job_that_finished_meanwhile_is_delivered_and_its_member_told(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> None:
    async with (
        world(fake_discord, tmp_path, database_url=database_url, job_seconds=FOREVER) as w,
        w.bot() as bot,
    ):
        interaction = await run_video(w, "a clip done just before the click")
        message: Message = await w.wait_for(lambda: at_service(interaction))
        custom_id = cancel_id(message)
        assert custom_id is not None
        (video,) = w.sim.videos.values()
        # The service finishes it now; the click leaves before the bot can have noticed (no
        # await in between), so the bot learns of the end from the click or its next round.
        video.job_seconds = 0.0
        click = await w.fake.dispatch_button(message, custom_id, user=w.user)
        answer: Message = await w.wait_for(lambda: notice(click))
        delivered, job = await delivered_and_settled(w, bot, interaction, custom_id)
    assert "already finished" in str(answer.embed)
    assert answer.ephemeral
    assert job is not None and (job.state, job.cancelled_by) == ("succeeded", None)
    assert api_calls(w, "DELETE") == []
    assert cancel_id(delivered) is None and title(delivered) != "Cancelled"
    assert sum(1 for m in w.messages() if video_attachment(m)) == 1
    ledger, _ = await balances(w)
    assert ledger[job.id] == JobBalance(held=0, spent=job.cost_micros)


async def test_cancel_keeps_working_after_a_restart(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> None:
    async with world(
        fake_discord, tmp_path, database_url=database_url, users=2, job_seconds=FOREVER
    ) as w:
        async with w.bot():
            interaction = await run_video(w, "a job that outlives its process")
            message: Message = await w.wait_for(lambda: at_service(interaction))
        custom_id = cancel_id(message)
        assert custom_id is not None
        # A new process on the same data directory: nothing about the button is in its memory.
        async with w.bot() as second:
            intruder = await w.fake.dispatch_button(message, custom_id, user=w.users[1])
            await w.wait_for(lambda: notice(intruder))
            click = await w.fake.dispatch_button(message, custom_id, user=w.user)
            await w.wait_for(lambda: title(interaction.original) == "Cancelled")
            job = await second.store.get_job(job_id_of(custom_id))
    assert click.acknowledged and notice(click) is None
    assert job is not None and job.cancelled
    assert api_calls(w, "DELETE") == ["DELETE /videos/{id}"]
    ledger, usage = await balances(w)
    assert ledger[job.id] == JobBalance(held=0, spent=0) and usage == 0


async def test_a_cancel_after_the_reply_can_no_longer_be_edited_is_shown_by_the_click(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> None:
    async with (
        world(fake_discord, tmp_path, database_url=database_url, job_seconds=FOREVER) as w,
        w.bot(),
    ):
        interaction = await run_video(w, "a job older than its token")
        message: Message = await w.wait_for(lambda: at_service(interaction))
        custom_id = cancel_id(message)
        assert custom_id is not None
        # Sixteen minutes pass at Discord: the job's interaction token is dead, the click's new.
        w.fake.clock.advance(16 * 60)
        before = len(w.messages())
        click = await w.fake.dispatch_button(message, custom_id, user=w.user)
        await w.wait_for(lambda: title(interaction.original) == "Cancelled")
        # Its delivery (the end of any job) is done: it said nothing more.
        await w.wait_for(lambda: delivery_state(w, job_id_of(custom_id)) == "done")
    assert interaction.original is not None and interaction.original.buttons == []
    assert "Nothing was charged" in str(interaction.original.embed)
    assert len(w.messages()) == before
    assert notice(click) is None
