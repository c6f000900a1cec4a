"""`/video` end to end: what a member sees in Discord, what the video API receives, and what the
database holds, with the real discord.py client, the simulator and a real SQLite file."""

from __future__ import annotations

import asyncio
import io
import itertools
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from bot.store import JobBalance
from tests.e2e import World, tracker_rounds, video_attachment, world
from tests.fakediscord import FakeDiscord, Interaction, Upload
from tests.fakediscord.rest import RequestRecord
from tests.fakediscord.state import Message
from tests.pgserver import SQLITE_ONLY

DEFERRED = 5  # DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE


@pytest.fixture
async def w(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, database_url=database_url, users=5) as env:
        yield env


def decode(data: bytes) -> tuple[int, int, float]:
    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(data)
        handle.flush()
        with av.open(handle.name) as container:
            stream = container.streams.video[0]
            assert container.duration is not None
            return (
                stream.codec_context.width,
                stream.codec_context.height,
                container.duration / av.time_base,
            )


def intake_rows(w: World) -> int:
    return int(w.rows("SELECT count(*) FROM intake")[0][0])


def field_values(message: Message) -> dict[str, str]:
    embed = message.embed
    assert embed is not None
    return {f["name"]: f["value"] for f in embed.get("fields", [])}


async def test_video_with_every_option_ends_as_the_mp4_in_the_reply(w: World) -> None:
    async with w.bot():
        photo = io.BytesIO()
        Image.new("RGB", (800, 600), (30, 160, 90)).save(photo, "PNG")
        interaction = await w.fake.dispatch_slash(
            "video",
            {
                "prompt": "a red fox in the snow",
                "model": "sora-2-pro",
                "seconds": "8",
                "size": "1792x1024",
                "reference": Upload("photo.png", photo.getvalue(), "image/png"),
            },
            user=w.user,
            channel=w.channel,
        )
        await w.wait_for(lambda: interaction.acknowledged, timeout=3)
        assert interaction.response_type == DEFERRED

        def delivered() -> Message | None:
            original = interaction.original
            if original is not None and video_attachment(original):
                return original
            return None

        message: Message = await w.wait_for(delivered)
    data = video_attachment(message)
    assert data is not None
    width, height, seconds = decode(data)
    assert (width, height) == (1792, 1024)
    assert abs(seconds - 8) < 0.2
    # The member watched it progress before it finished.
    assert message.edited
    shown = " ".join(str(h.get("embeds")) for h in message.history)
    assert "queued" in shown.lower() or "%" in shown
    embed = message.embed
    assert embed is not None
    assert "a red fox in the snow" in str(embed)
    # The API got the fitted reference as multipart `input_reference`, at the requested size.
    (job,) = w.sim.videos.values()
    assert (job.model, job.seconds, job.size) == ("sora-2-pro", "8", "1792x1024")
    assert job.reference is not None
    with Image.open(io.BytesIO(job.reference)) as fitted:
        assert fitted.size == (1792, 1024)
    creates = [r for r in w.sim.requests if r.method == "POST"]
    assert len(creates) == 1
    assert "input_reference" in creates[0].files


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"model": "sora-2", "size": "1792x1024"}, "does not make 1792x1024"),
        ({"prompt": "   "}, "prompt is empty"),
    ],
)
async def test_a_refused_request_is_private_and_reaches_no_api(
    w: World, options: dict[str, str], expected: str
) -> None:
    async with w.bot():
        interaction = await w.fake.dispatch_slash(
            "video", {"prompt": "a cat", **options}, user=w.user, channel=w.channel
        )
        await w.wait_for(lambda: interaction.original is not None)
    original = interaction.original
    assert original is not None
    assert original.ephemeral
    assert expected in str(original.embed)
    assert [m for m in w.messages() if not m.ephemeral and not m.deleted] == []
    assert w.sim.requests == []


async def run_video(w: World, prompt: str, user_index: int = 0, **options: str) -> Interaction:
    return await w.fake.dispatch_slash(
        "video", {"prompt": prompt, **options}, user=w.users[user_index], channel=w.channel
    )


def final_message(w: World, interaction: Interaction) -> Message | None:
    """The message carrying the job's outcome: the edited reply, or a channel reply after it."""
    original = interaction.original
    if original is not None and (video_attachment(original) or "❌" in str(original.embed)):
        return original
    for message in w.messages():
        ref = message.reference or {}
        if str(ref.get("message_id")) == str(original.id if original else None):
            return message
    return None


async def test_a_failed_job_says_why_and_refunds(w: World) -> None:
    w.sim.config.moderation_word = "forbidden"
    async with w.bot() as bot:
        interaction = await run_video(w, "something forbidden here")
        await w.wait_for(
            lambda: (
                interaction.original is not None
                and "content policy" in str(interaction.original.embed).lower()
            )
        )
        # Failed and refunded in one transaction, before the member is told.
        (job,) = await bot.store.recent_jobs(w.user.id, 5)
        assert job.state == "failed"
        balances = await bot.store.ledger_sum_by_job()
        assert balances[job.id].held == 0
        assert balances[job.id].spent == 0
    original = interaction.original
    assert original is not None
    assert video_attachment(original) is None


async def test_everyone_in_a_prompt_pings_nobody(w: World) -> None:
    async with w.bot():
        interaction = await run_video(w, "@everyone look at <@&123> dancing")
        await w.wait_for(
            lambda: interaction.original is not None and video_attachment(interaction.original)
        )
    for record in w.fake.requests:
        payload = record.json if isinstance(record.json, dict) else {}
        allowed = payload.get("allowed_mentions")
        if "content" in payload or "embeds" in payload:
            assert allowed is not None, record.route
            assert "everyone" not in allowed.get("parse", []), record.route
            assert "roles" not in allowed.get("parse", []), record.route
    assert all(not m.mentions for m in w.messages() if m.author.id != w.user.id)


def has_video(interaction: Interaction) -> bool:
    return interaction.original is not None and video_attachment(interaction.original) is not None


async def test_after_the_token_expires_the_result_is_a_channel_reply_to_the_user(w: World) -> None:
    async with w.bot():
        interaction = await run_video(w, "a slow sunrise")
        await w.wait_for(lambda: interaction.acknowledged and interaction.edits >= 1)
        # Sixteen minutes pass at Discord: the interaction token is dead.
        w.fake.clock.advance(16 * 60)

        def reply() -> Message | None:
            for message in w.messages():
                if message is not interaction.original and video_attachment(message):
                    return message
            return None

        message: Message = await w.wait_for(reply)
    assert (401, 50027) in interaction.errors
    assert [u.id for u in message.mentions] == [w.user.id]
    assert f"<@{w.user.id}>" in message.content
    assert message.referenced is interaction.original
    assert not has_video(interaction)


async def test_a_video_over_the_upload_limit_is_reencoded_to_fit(w: World) -> None:
    async with w.bot():
        roomy = await run_video(w, "waves", seconds="4", size="1280x720")
        await w.wait_for(lambda: has_video(roomy))
        assert roomy.original is not None
        full = video_attachment(roomy.original)
        assert full is not None
        limit = len(full) * 2 // 3
        tight = await w.fake.dispatch_slash(
            "video",
            {"prompt": "waves again", "seconds": "4", "size": "1280x720"},
            user=w.user,
            channel=w.channel,
            attachment_size_limit=limit,
        )
        await w.wait_for(lambda: has_video(tight), timeout=60)
    assert tight.original is not None
    fitted = video_attachment(tight.original)
    assert fitted is not None
    assert len(fitted) <= limit
    width, height, seconds = decode(fitted)
    assert abs(width / height - 1280 / 720) < 0.01  # shrunk, if at all, keeping the shape
    assert abs(seconds - 4) < 0.3
    assert "Re-encoded" in str(tight.original.embed)


async def test_a_video_that_cannot_fit_shows_the_thumbnail_and_says_why(w: World) -> None:
    async with w.bot():
        tiny = await w.fake.dispatch_slash(
            "video",
            {"prompt": "a very detailed city"},
            user=w.user,
            channel=w.channel,
            attachment_size_limit=12_000,
        )
        await w.wait_for(
            lambda: tiny.original is not None and "upload limit" in str(tiny.original.embed),
            timeout=60,
        )
    original = tiny.original
    assert original is not None
    assert video_attachment(original) is None
    # The preview is shown when it fits; nothing over the limit was attempted.
    assert all(a.filename.endswith(".webp") and a.size <= 12_000 for a in original.attachments)
    assert not any(status == 413 for status, _ in tiny.errors)


async def test_a_restart_mid_job_delivers_exactly_once(w: World) -> None:
    w.sim.config.job_seconds = 4.0
    async with w.bot() as bot:
        interaction = await run_video(w, "a lighthouse in a storm")
        await w.wait_for(lambda: len(w.sim.videos) == 1)
        (job,) = await bot.store.recent_jobs(w.user.id, 1)
    # The first process is gone before the video was done; a new one starts on the same files.
    async with w.bot() as second:
        await w.wait_for(lambda: has_video(interaction))
        await tracker_rounds(second, 2)  # the next rounds must post nothing again
        done = await second.store.get_job(job.id)
    assert done is not None
    assert done.delivery_state == "done"
    posted = [m for m in w.messages() if video_attachment(m)]
    assert len(posted) == 1
    # The finished reply shows the thumbnail as the embed's picture, beside the mp4.
    embed = posted[0].embed
    assert embed is not None
    assert "thumbnail-" in str((embed.get("image") or {}).get("url", ""))
    assert sum(1 for r in w.sim.requests if r.method == "POST") == 1
    # The second start found the same commands and did not sync them again.
    syncs = [r for r in w.fake.requests if r.method == "PUT" and r.route.endswith("/commands")]
    assert len(syncs) == 1
    balances = await _ledger(w)
    assert balances[job.id].spent == job.cost_micros
    assert balances[job.id].held == 0


async def _ledger(w: World) -> dict[int, JobBalance]:
    async with await w.open_store() as store:
        return await store.ledger_sum_by_job()


async def test_twenty_concurrent_requests_from_five_users_all_arrive(w: World) -> None:
    async with w.bot():
        interactions = await asyncio.gather(
            *(run_video(w, f"clip {i} by member {i % 5}", i % 5) for i in range(20))
        )
        await w.wait_for(lambda: all(has_video(i) for i in interactions), timeout=120)
    assert all(i.response_type == DEFERRED for i in interactions)
    assert sum(1 for r in w.sim.requests if r.method == "POST") == 20
    for i, interaction in enumerate(interactions):
        assert interaction.original is not None
        assert f"clip {i} by member {i % 5}" in str(interaction.original.embed)


async def test_videos_lists_my_jobs_privately_and_shows_one_again(w: World) -> None:
    async with w.bot():
        first = await run_video(w, "a paper boat")
        await w.wait_for(lambda: has_video(first))
        other = await run_video(w, "someone else's clip", user_index=1)
        await w.wait_for(lambda: has_video(other))
        listing = await w.fake.dispatch_slash("videos", {}, user=w.user, channel=w.channel)
        await w.wait_for(lambda: listing.followups or (listing.original and listing.original.embed))
        message = listing.followups[0] if listing.followups else listing.original
        assert message is not None
        assert message.ephemeral
        assert "a paper boat" in str(message.embed)
        assert "someone else" not in str(message.embed)
        select = next(c for c in message.walk_components() if c.get("type") == 3)
        (choice,) = [o["value"] for o in select["options"]]
        again = await w.fake.dispatch_select(message, select["custom_id"], [choice], user=w.user)
        await w.wait_for(
            lambda: (
                any(video_attachment(m) for m in again.followups)
                or (again.original is not None and video_attachment(again.original))
            )
        )
    shown = [m for m in [again.original, *again.followups] if m is not None]
    assert all(m.ephemeral for m in shown)


async def test_an_unexpected_error_shows_a_reference_not_a_traceback(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    async with w.bot() as bot:

        async def broken(user_id: int) -> int:
            raise RuntimeError("internal detail: table jobs is on fire")

        bot.store.count_jobs = broken  # type: ignore[method-assign]
        listing = await w.fake.dispatch_slash("videos", {}, user=w.user, channel=w.channel)
        await w.wait_for(
            lambda: (
                any("reference" in str(m.embeds) for m in listing.followups)
                or (listing.original is not None and "reference" in str(listing.original.embeds))
            )
        )
    shown = " ".join(str(m.embeds) + m.content for m in [listing.original, *listing.followups] if m)
    assert "on fire" not in shown
    assert "Traceback" not in shown
    reference = shown.split("reference ")[1].split("'")[0].split('"')[0]
    assert any(reference in r.getMessage() and r.exc_info for r in caplog.records)


async def test_over_the_concurrency_cap_jobs_wait_in_a_visible_queue(w: World) -> None:
    w.sim.config.job_seconds = 3.0
    async with w.bot(quota_max_concurrent_jobs=1):
        first = await run_video(w, "first in line")
        await w.wait_for(lambda: len(w.sim.videos) == 1)
        second = await run_video(w, "second in line", user_index=1)
        await w.wait_for(
            lambda: second.original is not None and "1st in line" in str(second.original.embed)
        )
        assert len(w.sim.videos) == 1  # held back, not sent
        await w.wait_for(lambda: has_video(first) and has_video(second), timeout=60)
    assert len(w.sim.videos) == 2


async def test_progress_edits_are_spaced_out(w: World) -> None:
    w.sim.config.job_seconds = 8.0
    async with w.bot():
        interaction = await run_video(w, "a slow pan over hills")
        await w.wait_for(lambda: has_video(interaction), timeout=60)
    patches = sorted(
        r.at for r in w.fake.requests if r.method == "PATCH" and str(interaction.token) in r.path
    )
    assert len(patches) >= 2  # it did show progress
    gaps = [b - a for a, b in itertools.pairwise(patches[:-1])]
    # Progress edits are at least the sink's interval apart (the final result may follow sooner).
    assert all(gap >= 2.9 for gap in gaps), gaps


def image_file(width: int, height: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (220, 120, 30)).save(buf, fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fit", ["crop", "pad"])
async def test_a_reference_of_another_shape_arrives_at_exactly_the_size(w: World, fit: str) -> None:
    async with w.bot():
        interaction = await w.fake.dispatch_slash(
            "video",
            {
                "prompt": "the photo comes alive",
                "size": "720x1280",
                "reference": Upload("wide.jpg", image_file(1600, 500, "JPEG"), "image/jpeg"),
                "fit": fit,
            },
            user=w.user,
            channel=w.channel,
        )
        await w.wait_for(lambda: has_video(interaction))
    (job,) = w.sim.videos.values()
    assert job.reference is not None
    with Image.open(io.BytesIO(job.reference)) as sent:
        assert sent.size == (720, 1280)
        assert job.reference_content_type == f"image/{(sent.format or '').lower()}"


def bomb() -> bytes:
    # A few hundred bytes that decode to 400 million pixels.
    buf = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buf, "PNG", optimize=True)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("upload", "expected"),
    [
        (lambda: Upload("notes.png", b"this is not an image at all", "image/png"), "image"),
        (lambda: Upload("huge.png", b"\0" * (21 * 1024 * 1024), "image/png"), "MB"),
        (lambda: Upload("bomb.png", bomb(), "image/png"), "pixels"),
    ],
)
async def test_a_bad_reference_is_refused_privately_with_no_call_and_no_charge(
    w: World, upload: Any, expected: str
) -> None:
    async with w.bot() as bot:
        interaction = await w.fake.dispatch_slash(
            "video",
            {"prompt": "animate this", "reference": upload()},
            user=w.user,
            channel=w.channel,
        )

        def refusal() -> Message | None:
            return next((m for m in interaction.followups if m.ephemeral), None)

        message: Message = await w.wait_for(refusal)
        assert await bot.store.count_jobs(w.user.id) == 0
        assert await bot.store.ledger_entries() == []
    assert expected in str(message.embed)
    assert w.sim.requests == []
    public = [m for m in w.messages() if not m.ephemeral and not m.deleted]
    assert public == []


async def test_a_request_cut_off_before_it_was_recorded_is_answered_on_restart(w: World) -> None:
    big = io.BytesIO()
    # Just within the 25-megapixel cap, and slow enough to fit that the stop comes first.
    Image.new("RGB", (5000, 5000), (40, 90, 160)).save(big, "PNG", compress_level=1)

    async with w.bot():
        interaction = await w.fake.dispatch_slash(
            "video",
            {
                "prompt": "cut off mid-request",
                "reference": Upload("big.png", big.getvalue(), "image/png"),
            },
            user=w.user,
            channel=w.channel,
        )
        await w.wait_for(lambda: interaction.acknowledged and intake_rows(w) == 1)
        # The bot stops while the reference is still being fitted: no job row was written.
    async with w.bot() as second:
        await w.wait_for(
            lambda: (
                interaction.original is not None
                and "nothing was charged" in str(interaction.original.embed).lower()
            )
        )
        assert await second.store.count_jobs(w.user.id) == 0
        assert await second.store.ledger_entries() == []
    assert intake_rows(w) == 0
    assert w.sim.requests == []


async def test_every_request_is_in_the_intake_before_its_defer_reaches_discord(w: World) -> None:
    """The intake row is committed before the defer is sent, so no moment exists in which
    Discord shows "thinking…" for a request the database does not hold."""
    at_defer: dict[str, bool] = {}

    def look(record: RequestRecord) -> None:
        if record.key != "POST /interactions/{interaction_id}/{interaction_token}/callback":
            return
        # A second connection sees only committed rows.
        rows = w.rows(
            "SELECT token FROM intake WHERE interaction_id = ?",
            (int(record.params["interaction_id"]),),
        )
        at_defer[record.params["interaction_id"]] = rows == [(record.params["interaction_token"],)]

    w.fake.observe(look)
    async with w.bot():
        burst = await asyncio.gather(
            *(
                w.fake.dispatch_slash(
                    "video", {"prompt": f"intake {n}"}, user=w.users[n % 5], channel=w.channel
                )
                for n in range(30)
            )
        )
        await w.wait_for(lambda: all(i.acknowledged for i in burst), timeout=10)
        await w.wait_for(lambda: all(i.original and i.original.embeds for i in burst), timeout=30)
        await w.wait_for(lambda: intake_rows(w) == 0)
    assert at_defer == {str(i.id): True for i in burst}


@SQLITE_ONLY  # the SQLite file's write lock
async def test_a_database_held_by_another_process_does_not_make_the_defer_late(
    w: World, caplog: pytest.LogCaptureFixture
) -> None:
    """The defer waits at most INTAKE_WAIT (1 s) for the intake row; a database another process
    keeps locked for longer must not cost the member Discord's 3 seconds."""
    db = w.data_dir / "bot.sqlite3"
    async with w.bot():
        other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        try:
            # The write lock, as a backup tool might hold it; taken off the event loop, so a
            # transaction of the bot's under way can finish while this waits for it.
            await asyncio.to_thread(other.execute, "BEGIN IMMEDIATE")
            interaction = await w.fake.dispatch_slash(
                "video", {"prompt": "patience"}, user=w.user, channel=w.channel
            )
            await w.wait_for(lambda: interaction.acknowledged, timeout=3)
            await asyncio.sleep(1.0)  # locked for ~2 s in all; the bot's busy timeout is 5 s
        finally:
            other.execute("COMMIT")
            other.close()
        await w.wait_for(lambda: interaction.original and interaction.original.embeds)
        await w.wait_for(lambda: intake_rows(w) == 0)  # a job now, no longer an intake
    assert interaction.errors == []
    assert any("intake of" in r.getMessage() for r in caplog.records)


async def test_when_the_channel_refuses_the_late_result_goes_by_dm(w: World) -> None:
    view_only = (1 << 10) | (1 << 16)  # VIEW_CHANNEL and READ_MESSAGE_HISTORY, no SEND_MESSAGES
    quiet = w.fake.add_text_channel(w.guild, "read-only", bot_permissions=view_only)
    async with w.bot():
        interaction = await w.fake.dispatch_slash(
            "video", {"prompt": "a lantern at dusk"}, user=w.user, channel=quiet
        )
        await w.wait_for(lambda: interaction.acknowledged and interaction.edits >= 1)
        w.fake.clock.advance(16 * 60)
        dm = w.fake.dm_channel(w.user)
        message: Message = await w.wait_for(
            lambda: next((m for m in w.messages(dm) if video_attachment(m)), None)
        )
    assert "lantern" in str(message.embed)
    assert not any(video_attachment(m) for m in w.messages(quiet))
