"""Abuse and secrets, end to end: cheap refusals before any download, owner-only files, a
cooldown on showing videos again."""

from __future__ import annotations

import io
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from discordbot.render import public_text
from tests.e2e import World, video_attachment, world
from tests.fakediscord import FakeDiscord, Upload
from tests.fakediscord.state import Interaction, Message
from tests.pgserver import SQLITE_ONLY


@pytest.fixture
async def w(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, database_url=database_url, users=2) as env:
        yield env


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


def cdn_reads(w: World) -> int:
    return sum(1 for r in w.fake.rest.log if r.route.startswith("CDN"))


def finished(interaction: Interaction) -> Message | None:
    original = interaction.original
    return original if original is not None and video_attachment(original) else None


async def refusal(w: World, interaction: Interaction) -> str:
    def private() -> Message | None:
        found = [m for m in (interaction.original, *interaction.followups) if m is not None]
        return next((m for m in found if m.ephemeral and m.embed), None)

    message: Message = await w.wait_for(private)
    return str(message.embed)


def modes(root: Path) -> dict[Path, int]:
    return {
        p: stat.S_IMODE(p.stat().st_mode)
        for p in [root, *root.rglob("*")]
        if p.exists() and not p.is_symlink()
    }


@SQLITE_ONLY  # the database file among them
@pytest.mark.usefixtures("open_umask")
async def test_every_file_the_bot_writes_is_owner_only(w: World) -> None:
    # A reference to fit, a video, a thumbnail and a re-encode for a tight upload limit: the
    # files are looked at when the result reaches Discord, while they all still exist.
    seen: dict[Path, int] = {}

    def look(record: object) -> None:
        if getattr(record, "files", None):
            seen.update(modes(w.data_dir))

    w.fake.observe(look)
    async with w.bot():
        interaction = await w.fake.dispatch_slash(
            "video",
            {
                "prompt": "a harbour at dawn",
                "seconds": "4",
                "size": "1280x720",
                "reference": Upload("p.png", png(300, 200), "image/png"),
            },
            user=w.user,
            channel=w.channel,
            attachment_size_limit=60_000,
        )
        await w.wait_for(lambda: finished(interaction), timeout=60)
    seen.update(modes(w.data_dir))
    names = {p.name for p in seen}
    assert "bot.sqlite3" in names
    assert any(n.endswith("-fit.mp4") for n in names)  # the re-encoded video was there
    assert any(n.endswith(".mp4") and not n.endswith("-fit.mp4") for n in names)
    for path, mode in seen.items():
        expected = 0o700 if path.is_dir() or mode & 0o100 else 0o600
        assert mode == expected, (path, oct(mode))


async def test_showing_a_video_again_has_a_per_member_cooldown(w: World) -> None:
    async with w.bot(show_again_cooldown_seconds=3600):
        first = await w.fake.dispatch_slash(
            "video", {"prompt": "a paper boat"}, user=w.user, channel=w.channel
        )
        await w.wait_for(lambda: finished(first))
        listing = await w.fake.dispatch_slash("videos", {}, user=w.user, channel=w.channel)
        await w.wait_for(lambda: listing.followups or (listing.original and listing.original.embed))
        message = listing.followups[0] if listing.followups else listing.original
        assert message is not None
        select = next(c for c in message.walk_components() if c.get("type") == 3)
        (choice,) = [o["value"] for o in select["options"]]
        downloads = len([r for r in w.sim.requests if (r.route or "").endswith("/content")])
        again = await w.fake.dispatch_select(message, select["custom_id"], [choice], user=w.user)
        await w.wait_for(
            lambda: any(video_attachment(m) for m in [again.original, *again.followups] if m)
        )
        soon = await w.fake.dispatch_select(message, select["custom_id"], [choice], user=w.user)
        text = await refusal(w, soon)
    assert "You can show a video again in" in text
    # One download for the first pick, none for the refused one.
    assert len([r for r in w.sim.requests if (r.route or "").endswith("/content")]) == downloads + 1


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("[free nitro](https://evil.example/x)", "\\[free nitro](https://evil.example/x)"),
        ("read\u202eme.exe", "readme.exe"),
        ("zero\u200bwidth", "zerowidth"),
        ("**loud** and __underlined__", "\\*\\*loud\\*\\* and \\_\\_underlined\\_\\_"),
        ("# not a heading", "\\# not a heading"),
    ],
)
def test_public_text_is_neutral(raw: str, shown: str) -> None:
    assert public_text(raw, 4096) == shown


def test_public_text_keeps_its_limit_without_a_dangling_escape() -> None:
    text = public_text("*" * 5000, 1024)
    assert len(text) <= 1024
    assert text.endswith("…") and not text.endswith("\\…")


async def test_a_prompt_with_a_masked_link_is_shown_neutral_in_public(w: World) -> None:
    async with w.bot():
        interaction = await w.fake.dispatch_slash(
            "video",
            {"prompt": "a cat [click me](https://evil.example/steal) \u202eevil"},
            user=w.user,
            channel=w.channel,
        )
        message = await w.wait_for(lambda: finished(interaction))
    description = message.embed["description"]
    assert "\\[click me](https://evil.example/steal)" in description
    assert "\u202e" not in description


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"quota_user_daily_dollars": "0.10"}, "budget"),  # the cheapest video costs more
        ({"quota_cooldown_seconds": 3600}, "wait"),  # the first request starts the cooldown
    ],
    ids=["out-of-budget", "cooling-down"],
)
async def test_a_request_that_would_be_refused_never_downloads_its_reference(
    w: World, overrides: dict[str, object], expected: str
) -> None:
    async with w.bot(**overrides):
        if "quota_cooldown_seconds" in overrides:
            first = await w.fake.dispatch_slash(
                "video", {"prompt": "the first one"}, user=w.user, channel=w.channel
            )
            await w.wait_for(lambda: finished(first))
        creates_before = len([r for r in w.sim.requests if r.method == "POST"])
        interaction = await w.fake.dispatch_slash(
            "video",
            {"prompt": "a fox", "reference": Upload("p.png", png(4000, 3000), "image/png")},
            user=w.user,
            channel=w.channel,
        )
        text = await refusal(w, interaction)
    assert expected in text.lower()
    assert cdn_reads(w) == 0  # the image was never fetched, let alone decoded
    assert len([r for r in w.sim.requests if r.method == "POST"]) == creates_before


async def test_an_oversized_reference_is_refused_from_its_declared_size(w: World) -> None:
    huge = Upload("huge.png", b"\x89PNG\r\n\x1a\n" + bytes(21 * 1024 * 1024), "image/png")
    async with w.bot():
        interaction = await w.fake.dispatch_slash(
            "video", {"prompt": "a fox", "reference": huge}, user=w.user, channel=w.channel
        )
        text = await refusal(w, interaction)
    assert "the limit is 20 MB" in text
    assert cdn_reads(w) == 0
    assert w.sim.requests == []
