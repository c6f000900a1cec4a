"""Server admins within the owner's ceilings, end to end: the real bot against the fake
Discord, the simulator over loopback and a real SQLite file. Refusals are private and name the
ceiling's setting; every change and every refused attempt is in the audit, which
`/video-admin audit` shows to the server's admins and `/video-owner audit` to the owners."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.store import QuotaOverride
from tests.e2e import World, world
from tests.fakediscord import FakeDiscord, FakeDiscordError
from tests.test_e2e_quota import accepted, command, creates, owner_of, refusal, settled, text, video


@pytest.fixture
async def w(
    fake_discord: FakeDiscord, tmp_path: Path, database_url: str | None
) -> AsyncIterator[World]:
    async with world(fake_discord, tmp_path, database_url=database_url, users=3) as env:
        yield env


async def test_an_admin_works_within_the_owners_ceilings_and_everything_is_audited(
    w: World,
) -> None:
    admin, member = owner_of(w), w.users[1]
    set_daily = {"target": member, "limit": "daily"}
    # The bot's own values are the ceilings: $1.00 a day, 10 videos at once.
    async with w.bot(quota_user_daily_dollars="1.00") as bot:
        raised = await command(w, "video-admin quota set", {**set_daily, "dollars": "50"}, admin)
        stored_after_refusal = await bot.store.list_quota_overrides(w.guild.id)
        lowered = await command(w, "video-admin quota set", {**set_daily, "dollars": "0.40"}, admin)
        exempted = await command(
            w, "video-admin quota set", {"target": member, "limit": "all", "exempt": True}, admin
        )
        too_many = await command(
            w, "video-admin settings limits", {"daily": "0.50", "active": 11}, admin
        )
        settings_after = await bot.store.all_guild_settings(w.guild.id)
        dear = await video(w, "over the lowered budget", member, seconds="8")
        shown = text(await command(w, "video-admin settings show", {}, admin))
        audit = text(await command(w, "video-admin audit", {}, admin))
        entries = await bot.store.audit_entries(w.guild.id, 10)
        # A plain member is not shown the command (and the run-time check covers the rest:
        # test_e2e_quota's Manage Server test).
        with pytest.raises(FakeDiscordError, match="lacks the permissions"):
            await w.fake.dispatch_slash("video-admin audit", {}, user=member, channel=w.channel)
    assert "at most $1.00 (`ADMIN_MAX_USER_DAILY_DOLLARS`)" in text(raised)
    assert stored_after_refusal == []
    assert "Saved." in text(lowered) and "24-hour budget: $0.40" in text(lowered)
    assert "`ADMIN_MAY_EXEMPT`" in text(exempted)
    assert "at most 10 (`ADMIN_MAX_ACTIVE_PER_USER`)" in text(too_many)
    assert settings_after == {}  # the allowed half of a refused change is not written either
    assert "more than your whole 24-hour budget of $0.40" in text(refusal(dear))
    assert creates(w) == 0
    assert "Most admins may give" in shown and "Exemptions: not allowed" in shown
    # Newest first: three refused attempts around the one change, with before and after.
    assert [(e.action, e.refused, e.actor_id) for e in entries] == [
        ("settings.limits", True, admin.id),
        ("quota.exempt", True, admin.id),
        ("quota.set", False, admin.id),
        ("quota.set", True, admin.id),
    ]
    assert entries[2].before == {f"override:user:{member.id}:daily": None}
    assert "24-hour budget: default → $0.40" in audit
    assert "24-hour budget: default → $50.00" in audit
    assert audit.count("**Refused:**") == 3
    assert f"<@{admin.id}> set a budget for <@{member.id}>" in audit
    assert "server's videos in progress at once: default → 11" in audit
    assert "Page 1 of 1 · 4 entries" in audit


async def test_a_stored_limit_above_the_ceiling_is_capped_when_a_request_is_checked(
    w: World,
) -> None:
    member = w.users[1]
    # From before there were ceilings: a $100 budget for the member.
    async with await w.open_store() as store:
        await store.set_quota_override(
            QuotaOverride(
                guild_id=w.guild.id,
                target_kind="user",
                target_id=member.id,
                limit_name="daily",
                max_micros=100_000_000,
            )
        )
    async with w.bot(quota_user_daily_dollars="0.40", admin_max_user_daily_dollars="0.80") as bot:
        dear = await video(w, "over the ceiling", member, seconds="12")  # $1.20
        fits = await video(w, "at the ceiling", member, seconds="8")  # $0.80
        shown = text(await command(w, "video-admin quota show", {"target": member}, owner_of(w)))
        await settled(bot)
    assert "more than your whole 24-hour budget of $0.80" in text(refusal(dear))
    assert accepted(fits)
    assert creates(w) == 1
    assert "$100.00 — counts as $0.80, the bot owner's ceiling" in shown


async def test_the_owners_changes_are_audited_and_shown_to_owners(w: World) -> None:
    owner, admin = w.users[0], owner_of(w)
    async with w.bot(owner_ids=[owner.id]) as bot:
        await command(w, "video-owner cap", {"dollars": "12.50"}, owner)
        await command(w, "video-owner cap", {"reset": True}, owner)
        shown = text(await command(w, "video-owner audit", {}, owner))
        denied = text(await command(w, "video-owner audit", {}, admin))
        guild_view = text(await command(w, "video-admin audit", {}, admin))
        (newest, first) = await bot.store.audit_entries(None, 10)
    assert (first.actor_id, first.actor_kind, first.guild_id) == (owner.id, "owner", None)
    assert "bot-wide daily cap: default → $12.50" in shown
    assert "bot-wide daily cap: $12.50 → default" in shown
    assert f"<@{owner.id}> (owner) changed the bot-wide daily cap" in shown
    assert "Only the bot's owners" in denied
    assert "No changes recorded." in guild_view
    assert newest.id > first.id
