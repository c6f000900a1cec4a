""" "Animate image" and the buttons under a finished video, end to end: the real bot on discord.py
against the fake Discord, the simulated Videos API and a real SQLite file."""

from __future__ import annotations

import io
import re
import tempfile
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path

import av
import pytest
from PIL import Image

from bot.store import JobBalance
from bot.submit import Origin, Refused
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Interaction, Upload
from tests.fakediscord.state import JSON, Message

JOB_ID = re.compile(r"^job:(\d+):(remix|extend|delete)$")


@pytest.fixture
async def w(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, database_url=database_url, users=3) as env:
        yield env


# ---------------------------------------------------------------------- helpers


def png(width: int = 800, height: int = 600, colour: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def length_of(data: bytes) -> float:
    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(data)
        handle.flush()
        with av.open(handle.name) as container:
            assert container.duration is not None
            return float(container.duration / av.time_base)


def has_video(interaction: Interaction) -> bool:
    return interaction.original is not None and video_attachment(interaction.original) is not None


def delivered(interaction: Interaction) -> Message | None:
    """The reply once it carries the video and its buttons."""
    original = interaction.original
    if original is not None and video_attachment(original) and buttons(original):
        return original
    return None


def buttons(message: Message) -> dict[str, str]:
    """action -> custom_id of the job buttons on `message`."""
    out: dict[str, str] = {}
    for button in message.buttons:
        match = JOB_ID.match(str(button.get("custom_id")))
        if match:
            out[match[2]] = match[0]
    return out


def job_id_of(message: Message) -> int:
    (custom_id, *_) = buttons(message).values()
    match = JOB_ID.match(custom_id)
    assert match is not None
    return int(match[1])


def modal_inputs(interaction: Interaction) -> dict[str, JSON]:
    """label -> component of the modal the bot showed in answer to `interaction`."""
    modal = interaction.modal
    assert modal is not None
    out: dict[str, JSON] = {}
    for top in modal.get("components") or []:
        if top.get("type") == 18:
            out[top["label"]] = top["component"]
        for item in top.get("components") or []:
            out[item.get("label", "")] = item
    return out


async def submit(
    w: World, interaction: Interaction, values: Mapping[str, str | Sequence[str]]
) -> Interaction:
    """Fill in the modal shown for `interaction` by label, and submit it."""
    await w.wait_for(lambda: interaction.state == "modal", timeout=5)
    inputs = modal_inputs(interaction)
    assert interaction.modal is not None
    return await w.fake.dispatch_modal_submit(
        interaction.modal["custom_id"],
        {inputs[label]["custom_id"]: value for label, value in values.items()},
        source=interaction,
    )


async def make_video(w: World, prompt: str, user_index: int = 0, **options: str) -> Message:
    interaction = await w.fake.dispatch_slash(
        "video", {"prompt": prompt, **options}, user=w.users[user_index], channel=w.channel
    )
    message: Message = await w.wait_for(lambda: delivered(interaction))
    return message


def notice(interaction: Interaction) -> Message | None:
    """The private answer the member got, if any."""
    for message in [interaction.original, *interaction.followups]:
        if message is not None and message.ephemeral and not message.deleted:
            return message
    return None


def api_posts(w: World) -> list[str]:
    return [str(r.route) for r in w.sim.requests if r.method == "POST"]


async def ledger(w: World) -> dict[int, JobBalance]:
    async with await w.open_store() as store:
        return await store.ledger_sum_by_job()


def field(message: Message, name: str) -> str:
    embed = message.embed
    assert embed is not None
    return next((f["value"] for f in embed.get("fields", []) if f["name"] == name), "")


# ---------------------------------------------------------------------- Animate image


async def test_animate_image_makes_a_video_from_the_messages_attachment(w: World) -> None:
    async with w.bot() as bot:
        target = await w.fake.post_message(
            w.channel,
            w.users[1],
            "look at this",
            attachments=[Upload("sunset.png", png(), "image/png")],
        )
        menu = await w.fake.dispatch_message_command("Animate image", target, user=w.user)
        await w.wait_for(lambda: menu.state == "modal", timeout=3)
        assert menu.modal is not None and menu.modal["title"] == "Animate image"
        assert set(modal_inputs(menu)) == {"Prompt", "Model", "Length", "Size", "Fitting the image"}
        sent = await submit(
            w,
            menu,
            {
                "Prompt": "the sun sets slowly",
                "Model": ["sora-2-pro"],
                "Length": ["8"],
                "Size": ["1792x1024"],
            },
        )
        await w.wait_for(lambda: has_video(sent))
        (job,) = await bot.store.recent_jobs(w.user.id, 5)
    assert sent.original is not None and not sent.original.ephemeral
    assert "the sun sets slowly" in str(sent.original.embed)
    assert set(buttons(sent.original)) == {"remix", "extend", "delete"}
    assert (job.kind, job.has_reference, job.model, job.seconds, job.size) == (
        "create",
        True,
        "sora-2-pro",
        "8",
        "1792x1024",
    )
    # The image came from Discord's CDN and reached the API fitted to the size asked for.
    assert any(r.route == "CDN attachments" for r in w.fake.requests)
    (video,) = w.sim.videos.values()
    assert video.reference is not None
    with Image.open(io.BytesIO(video.reference)) as fitted:
        assert fitted.size == (1792, 1024)
    (create,) = [r for r in w.sim.requests if r.method == "POST"]
    assert "input_reference" in create.files


async def test_animate_image_takes_a_discord_hosted_embed_image_with_defaults(w: World) -> None:
    hosted = w.fake.store_attachment(w.channel, "cat.png", png(640, 640), content_type="image/png")
    async with w.bot() as bot:
        target = await w.fake.post_message(
            w.channel, w.users[1], embeds=[{"title": "a cat", "image": {"url": hosted.url}}]
        )
        menu = await w.fake.dispatch_message_command("Animate image", target, user=w.user)
        sent = await submit(w, menu, {"Prompt": "the cat yawns"})
        await w.wait_for(lambda: has_video(sent))
        (job,) = await bot.store.recent_jobs(w.user.id, 5)
    default = bot.catalog.default
    assert (job.model, job.seconds, job.size) == (default.id, default.seconds[0], default.sizes[0])
    (video,) = w.sim.videos.values()
    assert video.reference is not None
    with Image.open(io.BytesIO(video.reference)) as fitted:
        assert f"{fitted.size[0]}x{fitted.size[1]}" == default.sizes[0]


@pytest.mark.parametrize(
    ("content", "embeds", "expected"),
    [
        ("just words, no picture", [], "has no image"),
        ("elsewhere", [{"image": {"url": "https://example.com/cat.png"}}], "not stored on Discord"),
        # Discord-looking paths on other hosts, and other paths on the CDN host, are no better.
        (
            "a local port",
            [{"image": {"url": "http://127.0.0.1:9/attachments/1/2/secret.png"}}],
            "not stored on Discord",
        ),
        (
            "the CDN host",
            [{"thumbnail": {"url": "{cdn}/api/v10/users/@me"}}],
            "not stored on Discord",
        ),
        (
            "a lookalike",
            [{"image": {"url": "https://cdn.discordapp.com.evil.example/attachments/1/2/a.png"}}],
            "not stored on Discord",
        ),
    ],
)
async def test_animate_image_without_a_discord_image_is_refused_privately(
    w: World, content: str, embeds: list[JSON], expected: str
) -> None:
    for embed in embeds:
        for part in embed.values():
            part["url"] = part["url"].replace("{cdn}", w.fake.cdn_base)
    async with w.bot():
        target = await w.fake.post_message(w.channel, w.users[1], content, embeds=embeds)
        menu = await w.fake.dispatch_message_command("Animate image", target, user=w.user)
        await w.wait_for(lambda: notice(menu) is not None, timeout=3)
    answer = notice(menu)
    assert answer is not None
    assert expected in str(answer.embed)
    assert menu.modal is None
    assert w.sim.requests == []
    assert not any(str(r.route).startswith("CDN") for r in w.fake.requests)


async def test_animate_image_refuses_an_impossible_combination_before_any_download(
    w: World,
) -> None:
    async with w.bot():
        target = await w.fake.post_message(
            w.channel, w.user, attachments=[Upload("me.jpg", png(), "image/jpeg")]
        )
        menu = await w.fake.dispatch_message_command("Animate image", target, user=w.user)
        sent = await submit(
            w, menu, {"Prompt": "wave hello", "Model": ["sora-2"], "Size": ["1792x1024"]}
        )
        await w.wait_for(lambda: notice(sent) is not None, timeout=3)
    answer = notice(sent)
    assert answer is not None and "does not make 1792x1024" in str(answer.embed)
    assert w.sim.requests == []
    assert not any(str(r.route).startswith("CDN") for r in w.fake.requests)


# ---------------------------------------------------------------------- the buttons


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ("openai", {"remix", "extend", "delete"}),
        ("litellm", {"remix"}),
        ("sglang", {"delete"}),
    ],
)
async def test_only_the_buttons_the_backend_supports_are_shown(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    database_url: str | None,
    profile: str,
    expected: set[str],
) -> None:
    async with (
        world(fake_discord, tmp_path, database_url=database_url, profile=profile) as env,
        env.bot(video_api_profile=profile),
    ):
        message = await make_video(env, "a kite over a beach")
    assert set(buttons(message)) == expected


@pytest.mark.parametrize(
    ("profile", "kind", "route"),
    [
        ("openai", "edit", "POST /videos/edits"),
        ("litellm", "remix", "POST /videos/{id}/remix"),
    ],
)
async def test_remix_by_the_owner_makes_a_new_linked_video(
    fake_discord: FakeDiscord,
    tmp_path: Path,
    database_url: str | None,
    profile: str,
    kind: str,
    route: str,
) -> None:
    async with (
        world(fake_discord, tmp_path, database_url=database_url, profile=profile) as w,
        w.bot(video_api_profile=profile) as bot,
    ):
        source = await make_video(w, "a red balloon drifts")
        source_id = job_id_of(source)
        click = await w.fake.dispatch_button(source, f"job:{source_id}:remix", user=w.user)
        await w.wait_for(lambda: click.state == "modal", timeout=3)
        assert modal_inputs(click)["New prompt"].get("value") == "a red balloon drifts"
        sent = await submit(w, click, {"New prompt": "a blue balloon drifts"})
        result: Message = await w.wait_for(lambda: delivered(sent))
        await w.wait_for(lambda: w.delivery_recorded(job_id_of(result)))
        remix = await bot.store.get_job(job_id_of(result))
        first = await bot.store.get_job(source_id)
    assert remix is not None and first is not None
    assert (remix.kind, remix.source_job_id, remix.prompt) == (
        kind,
        source_id,
        "a blue balloon drifts",
    )
    assert (remix.model, remix.seconds, remix.size) == (first.model, first.seconds, first.size)
    assert api_posts(w) == ["POST /videos", route]
    video = w.sim.videos[str(remix.api_video_id)]
    assert video.source_video_id == first.api_video_id
    # Its own reply, linking back to the video it was made from.
    assert sent.original is not None and sent.original is not source
    link = field(sent.original, "Made from")
    assert f"job {source_id}" in link
    assert f"/{w.guild.id}/{w.channel.id}/{source.id})" in link
    # Charged like any video: held, then spent on delivery.
    balances = await ledger(w)
    assert balances[remix.id] == JobBalance(held=0, spent=remix.cost_micros)
    assert remix.cost_micros == first.cost_micros > 0


async def test_extend_adds_the_chosen_seconds_and_charges_for_them(w: World) -> None:
    async with w.bot() as bot:
        source = await make_video(w, "a train leaves the station", model="sora-2", seconds="4")
        source_id = job_id_of(source)
        click = await w.fake.dispatch_button(source, f"job:{source_id}:extend", user=w.user)
        await w.wait_for(lambda: click.state == "modal", timeout=3)
        offered = [o["value"] for o in modal_inputs(click)["Seconds to add"]["options"]]
        assert offered == ["4", "8", "12", "16", "20"]
        sent = await submit(
            w, click, {"What happens next": "it crosses a bridge", "Seconds to add": ["8"]}
        )
        await w.wait_for(lambda: has_video(sent), timeout=60)
        (extension, _) = await bot.store.recent_jobs(w.user.id, 2)
        await w.wait_for(lambda: w.delivery_recorded(extension.id))
        first = await bot.store.get_job(source_id)
    assert first is not None
    assert (extension.kind, extension.source_job_id, extension.seconds) == (
        "extend",
        source_id,
        "12",
    )
    # Priced as the seconds it adds: sora-2 at 720x1280 is $0.10 a second.
    assert extension.cost_micros == 800_000
    (request,) = [r for r in w.sim.requests if r.route == "POST /videos/extensions"]
    assert request.json == {
        "video": {"id": first.api_video_id},
        "prompt": "it crosses a bridge",
        "seconds": "8",
    }
    assert sent.original is not None
    data = video_attachment(sent.original)
    assert data is not None
    assert abs(length_of(data) - 12) < 0.3
    assert "Extension (+8 s)" in field(sent.original, "Made from")
    assert (await ledger(w))[extension.id].spent == 800_000


async def test_delete_removes_the_video_at_the_api_and_from_the_message(w: World) -> None:
    async with w.bot() as bot:
        message = await make_video(w, "a candle flickers")
        job_id = job_id_of(message)
        job = await bot.store.get_job(job_id)
        assert job is not None and job.api_video_id in w.sim.videos
        click = await w.fake.dispatch_button(message, f"job:{job_id}:delete", user=w.user)
        await w.wait_for(lambda: not message.attachments)
    assert job.api_video_id not in w.sim.videos
    assert [r.route for r in w.sim.requests if r.method == "DELETE"] == ["DELETE /videos/{id}"]
    assert not message.deleted
    assert "a candle flickers" in str(message.embed)
    assert "Deleted" in field(message, "Status")
    assert buttons(message) == {}
    assert notice(click) is None


async def test_another_member_is_refused_every_button_privately(w: World) -> None:
    async with w.bot():
        message = await make_video(w, "a snail races a leaf")
        job_id = job_id_of(message)
        before = [a.filename for a in message.attachments]
        clicks = [
            await w.fake.dispatch_button(message, f"job:{job_id}:{action}", user=w.users[1])
            for action in ("remix", "extend", "delete")
        ]
        await w.wait_for(lambda: all(notice(c) is not None for c in clicks), timeout=5)
    for click in clicks:
        answer = notice(click)
        assert answer is not None
        assert f"Only <@{w.user.id}>" in str(answer.embed)
        assert click.modal is None
    assert api_posts(w) == ["POST /videos"]
    assert not [r for r in w.sim.requests if r.method == "DELETE"]
    assert [a.filename for a in message.attachments] == before
    assert set(buttons(message)) == {"remix", "extend", "delete"}


async def test_a_followup_whose_source_is_gone_at_the_api_fails_and_is_refunded(
    w: World,
) -> None:
    async with w.bot() as bot:
        source = await make_video(w, "a paper plane")
        source_id = job_id_of(source)
        first = await bot.store.get_job(source_id)
        assert first is not None
        del w.sim.videos[str(first.api_video_id)]  # deleted behind the bot's back
        click = await w.fake.dispatch_button(source, f"job:{source_id}:remix", user=w.user)
        sent = await submit(w, click, {"New prompt": "a paper boat"})
        await w.wait_for(
            lambda: sent.original is not None and "Video failed" in str(sent.original.embed)
        )
        (remix, _) = await bot.store.recent_jobs(w.user.id, 2)
    assert (remix.kind, remix.state) == ("edit", "failed")
    assert (await ledger(w))[remix.id] == JobBalance(held=0, spent=0)
    assert sent.original is not None and buttons(sent.original) == {}
    assert f"job {source_id}" in field(sent.original, "Made from")


async def test_a_followup_is_held_to_the_same_quota_as_video(w: World) -> None:
    # One 4-second Sora 2 video costs $0.40; a remix would cost as much again.
    async with w.bot(quota_user_daily_dollars="0.50") as bot:
        source = await make_video(w, "a quiet pond", model="sora-2", seconds="4")
        click = await w.fake.dispatch_button(source, f"job:{job_id_of(source)}:remix", user=w.user)
        sent = await submit(w, click, {"New prompt": "a quiet pond at night"})
        await w.wait_for(lambda: notice(sent) is not None, timeout=5)
        jobs = await bot.store.recent_jobs(w.user.id, 5)
    answer = notice(sent)
    assert answer is not None
    assert "$0.40" in str(answer.embed)
    assert len(jobs) == 1
    assert api_posts(w) == ["POST /videos"]


async def test_buttons_keep_working_after_a_restart(w: World) -> None:
    async with w.bot():
        message = await make_video(w, "an old clock ticks")
    job_id = job_id_of(message)
    # A new process on the same data directory: nothing about the buttons is in its memory.
    async with w.bot() as second:
        intruder = await w.fake.dispatch_button(message, f"job:{job_id}:remix", user=w.users[2])
        await w.wait_for(lambda: notice(intruder) is not None, timeout=5)
        click = await w.fake.dispatch_button(message, f"job:{job_id}:remix", user=w.user)
        sent = await submit(w, click, {"New prompt": "an old clock ticks backwards"})
        await w.wait_for(lambda: has_video(sent), timeout=60)
        remix = await second.store.get_job(job_id + 1)
        delete = await w.fake.dispatch_button(message, f"job:{job_id}:delete", user=w.user)
        await w.wait_for(lambda: not message.attachments)
    assert delete.acknowledged
    assert intruder.modal is None
    assert remix is not None and remix.source_job_id == job_id and remix.state == "succeeded"
    assert "Deleted" in field(message, "Status")
    assert sent.original is not None and video_attachment(sent.original)


async def test_the_job_service_refuses_followups_it_cannot_make(w: World) -> None:
    async with w.bot() as bot:
        message = await make_video(w, "a lamp turns on", model="sora-2", seconds="4")
        source = await bot.store.get_job(job_id_of(message))
        assert source is not None
        owner = Origin(user_id=w.user.id, channel_id=w.channel.id, guild_id=w.guild.id)
        other = Origin(user_id=w.users[1].id, channel_id=w.channel.id, guild_id=w.guild.id)
        expired = source.model_copy(update={"expires_at": time.time() - 1})
        running = source.model_copy(update={"state": "running"})
        refusals = [
            await bot.jobs.submit_followup(other, source, "remix", "mine now"),
            await bot.jobs.submit_followup(owner, source, "extend", "longer", seconds="5"),
            await bot.jobs.submit_followup(owner, expired, "edit", "again"),
            await bot.jobs.submit_followup(owner, running, "edit", "again"),
            await bot.jobs.submit_followup(owner, source, "remix", "   "),
        ]
        bot.backend.client.caps = bot.backend.client.caps.model_copy(update={"remix": False})
        refusals.append(await bot.jobs.submit_followup(owner, source, "remix", "again"))
        jobs = await bot.store.recent_jobs(w.user.id, 5)
    texts = [r.message.plain() for r in refusals if isinstance(r, Refused)]
    assert len(texts) == len(refusals)
    assert "Only the member who made this video" in texts[0]
    assert "4, 8, 12, 16, 20" in texts[1]
    assert "expired" in texts[2]
    assert "Only a finished video" in texts[3]
    assert "empty" in texts[4]
    assert "can't make remixed videos" in texts[5]
    assert len(jobs) == 1
    assert api_posts(w) == ["POST /videos"]
