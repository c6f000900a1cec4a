"""The fake Discord, exercised by a small real discord.py bot: everything here goes over the
websocket and HTTP exactly as it would against Discord."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import aiohttp
import discord
import pytest
import pytest_asyncio
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route
from discord.webhook.async_ import async_context, interaction_response_params

from tests.fakediscord import (
    FakeClock,
    FakeDiscord,
    FakeDiscordError,
    Interaction,
    Upload,
    snowflake_time,
)
from tests.fakediscord import fixture as fake_fixture
from tests.fakediscord.fixture import running
from tests.fakediscord.state import Channel, Guild, Role, User

fake_discord = fake_fixture.fake_discord

MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + os.urandom(4096)
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(512)
MANAGE_GUILD = 1 << 5
WEBHOOK_MESSAGE = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
CHANNEL_MESSAGES = "POST /channels/{channel_id}/messages"
ORIGINAL = cast(int, "@original")  # discord.py formats message ids into URLs as they are


# ---------------------------------------------------------------------- a minimal bot


class RenameModal(discord.ui.Modal, title="Rename the clip"):
    name: discord.ui.TextInput[RenameModal] = discord.ui.TextInput(
        label="New name", custom_id="rename:name", max_length=40
    )

    def __init__(self) -> None:
        super().__init__(custom_id="rename-modal")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(content=f"renamed to {self.name.value}")


class ClipView(discord.ui.View):
    def __init__(self) -> None:
        super().__init__(timeout=None)

    @discord.ui.button(label="Again", custom_id="clip:again")
    async def again(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        await interaction.response.send_message("rendering again", ephemeral=True)

    @discord.ui.button(label="Rename", custom_id="clip:rename")
    async def rename(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        await interaction.response.send_modal(RenameModal())

    @discord.ui.select(
        custom_id="clip:speed",
        options=[
            discord.SelectOption(label="1x", value="1"),
            discord.SelectOption(label="2x", value="2"),
        ],
    )
    async def speed(self, interaction: discord.Interaction, select: discord.ui.Select[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await interaction.followup.send(
            f"speed {select.values[0]}x",
            file=discord.File(io.BytesIO(MP4), filename="fast.mp4"),
            ephemeral=True,
        )


class MiniBot(discord.Client):
    """Just enough of a video bot: a deferred /render with progress edits and an mp4, buttons, a
    modal, a message command, and the late-delivery fallback to a channel message."""

    def __init__(self) -> None:
        super().__init__(intents=discord.Intents.default())
        self.tree = app_commands.CommandTree(self)
        self.errors: list[BaseException] = []
        self.seen: list[discord.Interaction] = []
        self.video = MP4
        self.gate = asyncio.Event()
        self.gate_result: list[BaseException | None] = []
        self.fallbacks: list[discord.HTTPException] = []
        self.tree.error(self._on_tree_error)
        tree = self.tree

        @tree.command(name="render", description="Render a clip")
        @app_commands.describe(prompt="What to show", seconds="How long")
        async def render(
            interaction: discord.Interaction,
            prompt: app_commands.Range[str, 1, 200],
            seconds: app_commands.Range[int, 1, 20] = 4,
            reference: discord.Attachment | None = None,
        ) -> None:
            self.seen.append(interaction)
            await interaction.response.defer(thinking=True)
            note = ""
            if reference is not None:
                data = await reference.read()
                note = f" (reference {reference.filename}: {len(data)} bytes)"
            for step in ("queued", "rendering 50%", "rendering 90%"):
                await interaction.edit_original_response(content=f"{prompt}: {step}{note}")
            try:
                embed = discord.Embed(title=prompt, colour=discord.Colour.green())
                embed.add_field(name="Length", value=f"{seconds}s")
                await interaction.edit_original_response(
                    content=f"{prompt}: done in {seconds}s{note}",
                    embed=embed,
                    attachments=[discord.File(io.BytesIO(self.video), filename="clip.mp4")],
                    view=ClipView(),
                )
            except discord.HTTPException as exc:
                limit = interaction.filesize_limit
                await interaction.edit_original_response(
                    content=f"too large ({exc.status}, {exc.code}, limit {limit})"
                )

        @tree.command(name="info", description="Who am I")
        async def info(interaction: discord.Interaction) -> None:
            self.seen.append(interaction)
            where = interaction.guild.name if interaction.guild else "DM"
            roles = (
                sorted(r.name for r in interaction.user.roles if not r.is_default())
                if isinstance(interaction.user, discord.Member)
                else []
            )
            perms = interaction.permissions
            await interaction.response.send_message(
                f"{where} roles={roles} manage_guild={perms.manage_guild}", ephemeral=True
            )

        @tree.command(name="admin", description="Admins only")
        @app_commands.default_permissions(manage_guild=True)
        @app_commands.guild_only()
        async def admin(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("hello admin")

        @tree.command(name="gate", description="Answers when the test lets it")
        async def gate(interaction: discord.Interaction) -> None:
            self.seen.append(interaction)
            await self.gate.wait()
            try:
                await interaction.response.defer()
            except discord.HTTPException as exc:
                self.gate_result.append(exc)
            else:
                self.gate_result.append(None)

        @tree.command(name="refuse", description="Defers, then refuses ephemerally")
        async def refuse(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.followup.send("that prompt is empty", ephemeral=True)
            await interaction.delete_original_response()

        @tree.context_menu(name="Count words")
        async def count_words(interaction: discord.Interaction, message: discord.Message) -> None:
            await interaction.response.send_message(
                f"{len(message.content.split())} words", ephemeral=True
            )

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py waits 5 real seconds before every IDENTIFY after the first one.
        return None

    async def setup_hook(self) -> None:
        self.add_view(ClipView())
        await self.tree.sync()

    async def _on_tree_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        self.errors.append(error)

    async def deliver(self, interaction: discord.Interaction, content: str) -> discord.Message:
        """Edit the original reply; once the token is dead, post to the channel exactly once."""
        try:
            return await interaction.edit_original_response(
                content=content,
                attachments=[discord.File(io.BytesIO(self.video), filename="clip.mp4")],
            )
        except discord.HTTPException as exc:
            if exc.status != 401 or exc.code != 50027:
                raise
            self.fallbacks.append(exc)
        channel = interaction.channel
        assert isinstance(channel, discord.abc.Messageable)
        return await channel.send(
            content=f"{interaction.user.mention} {content}",
            file=discord.File(io.BytesIO(self.video), filename="clip.mp4"),
            nonce=f"job{interaction.id % 10**9}",
            allowed_mentions=discord.AllowedMentions(users=[interaction.user]),
        )


@dataclass
class World:
    guild: Guild
    channel: Channel
    alice: User
    admin: User
    outsider: User
    editors: Role


@pytest.fixture
def world(fake_discord: FakeDiscord) -> World:
    guild = fake_discord.add_guild("Test Guild")
    channel = fake_discord.add_text_channel(guild, "general")
    editors = fake_discord.add_role(guild, "editors", 0)
    alice = fake_discord.add_user("alice")
    fake_discord.add_member(guild, alice, roles=[editors])
    admin = fake_discord.add_user("root")
    fake_discord.add_member(guild, admin, permissions=MANAGE_GUILD)
    outsider = fake_discord.add_user("outsider")
    return World(guild, channel, alice, admin, outsider, editors)


@pytest_asyncio.fixture
async def bot(fake_discord: FakeDiscord, world: World) -> AsyncIterator[MiniBot]:
    client = MiniBot()
    async with running(client, fake_discord):
        yield client
    assert not client.errors, client.errors


async def render(
    fake: FakeDiscord, bot: MiniBot, world: World, **options: Any
) -> tuple[discord.Interaction, Interaction]:
    """Run /render as alice and wait for the finished reply: (what the bot saw, the handle)."""
    handle = await fake.dispatch_slash(
        "render", {"prompt": "a cat", **options}, user=world.alice, channel=world.channel
    )
    await fake.wait_for(lambda: handle.original is not None and "done" in handle.original.content)
    return next(i for i in bot.seen if i.id == handle.id), handle


# ---------------------------------------------------------------------- login and gateway


async def test_login_sync_and_guilds(fake_discord: FakeDiscord, world: World, bot: MiniBot) -> None:
    fake = fake_discord
    keys = [r.key for r in fake.requests]
    assert keys[:3] == [
        "GET /users/@me",
        "GET /oauth2/applications/@me",
        "PUT /applications/{application_id}/commands",
    ]
    assert bot.user is not None and bot.user.id == fake.bot_user.id
    assert bot.application_id == fake.application_id

    # The fake kept the schema the bot declared.
    cmd = fake.command("render")
    assert cmd is not None
    options = {o["name"]: o for o in cmd.options}
    assert options["prompt"]["type"] == 3 and options["prompt"]["required"]
    assert options["prompt"]["max_length"] == 200
    assert options["seconds"]["type"] == 4 and options["seconds"]["max_value"] == 20
    assert options["reference"]["type"] == 11
    menu = fake.command("Count words", type=3)
    assert menu is not None

    # GUILD_CREATE gave discord.py the channel, the roles and the members.
    guild = bot.get_guild(world.guild.id)
    assert guild is not None
    assert guild.get_channel(world.channel.id) is not None
    assert {r.name for r in guild.roles} >= {"@everyone", "editors", fake.bot_user.username}
    assert guild.me is not None and guild.me.guild_permissions.attach_files

    # The gateway: zlib-stream as discord.py asks, HELLO, IDENTIFY with intents, heartbeats ACKed.
    conn = fake.gateway.connections[0]
    assert conn.query == {"v": "10", "encoding": "json", "compress": "zlib-stream"}
    assert conn.identified
    ops = [m["op"] for m in conn.received]
    assert ops[:2] == [1, 2]  # discord.py heartbeats on HELLO, then identifies
    assert conn.received[1]["d"]["intents"] == discord.Intents.default().value
    assert any(m["op"] == 11 for m in conn.sent)
    ready = next(m for m in conn.sent if m.get("t") == "READY")
    assert ready["d"]["resume_gateway_url"] == fake.resume_gateway_url

    # Syncing again keeps the command ids, as Discord does for unchanged commands.
    first = {c.name: c.id for c in fake.commands()}
    synced = await bot.tree.sync()
    assert {c.name: c.id for c in synced} == first


async def test_json_responses_have_the_exact_content_type(fake_discord: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{fake_discord.api_base}/users/@me"
        headers = {"Authorization": f"Bot {fake_discord.token}"}
        async with session.get(url, headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/json"
            assert "X-RateLimit-Bucket" in resp.headers
            body = await resp.json()
            assert body["id"] == str(fake_discord.bot_user.id) and body["bot"] is True
        async with session.get(url) as resp:
            assert resp.status == 401
            assert resp.headers["Content-Type"] == "application/json"
            assert await resp.json() == {"message": "401: Unauthorized", "code": 0}


async def test_bad_token_is_a_login_failure(fake_discord: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.default())
    try:
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")
    finally:
        await client.close()


# ---------------------------------------------------------------------- slash commands


async def test_deferred_slash_command_with_edits_and_an_mp4(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    seen, handle = await render(fake, bot, world, seconds=6)

    assert handle.response_type == 5 and handle.state == "responded"
    msg = handle.original
    assert msg is not None and msg in fake.channel_messages(world.channel)
    assert msg.content == "a cat: done in 6s" and msg.edited and not msg.loading
    assert msg.author is fake.bot_user and msg.webhook_id == fake.application_id
    # The user saw "thinking...", then each edit in turn.
    assert [h["content"] for h in msg.history] == [
        "",
        "a cat: queued",
        "a cat: rendering 50%",
        "a cat: rendering 90%",
    ]
    assert msg.history[0]["flags"] & 128  # LOADING

    # The mp4 went up as multipart (payload_json + files[0]) and is stored byte for byte.
    upload = fake.requests_to(WEBHOOK_MESSAGE)[-1]
    assert [f.field for f in upload.files] == ["files[0]"]
    assert upload.json["attachments"] == [{"id": 0, "filename": "clip.mp4"}]
    (clip,) = msg.attachments
    assert clip.filename == "clip.mp4" and clip.content_type == "video/mp4"
    assert clip.data == MP4 and clip.size == len(MP4)
    # ...and downloadable from the fake CDN like a real attachment URL.
    async with aiohttp.ClientSession() as session, session.get(clip.url) as resp:
        assert resp.status == 200 and await resp.read() == MP4
    assert {b["custom_id"] for b in msg.buttons} == {"clip:again", "clip:rename"}
    assert msg.embed is not None and msg.embed["title"] == "a cat"
    assert msg.embed["type"] == "rich" and msg.embed["fields"][0]["value"] == "6s"

    # discord.py parsed every payload: the InteractionCallbackResponse and the message.
    assert seen.filesize_limit == 10_485_760
    original = await seen.original_response()
    assert original.id == msg.id and original.attachments[0].size == len(MP4)


async def test_options_are_checked_against_the_registered_schema(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake, user, channel = fake_discord, world.alice, world.channel
    with pytest.raises(FakeDiscordError, match="no command /video"):
        await fake.dispatch_slash("video", {"prompt": "x"}, user=user, channel=channel)
    with pytest.raises(FakeDiscordError, match="no option 'model'"):
        await fake.dispatch_slash(
            "render", {"prompt": "x", "model": "y"}, user=user, channel=channel
        )
    with pytest.raises(FakeDiscordError, match="takes an integer"):
        await fake.dispatch_slash(
            "render", {"prompt": "x", "seconds": "4"}, user=user, channel=channel
        )
    with pytest.raises(FakeDiscordError, match=r"within 1\.\.20"):
        await fake.dispatch_slash(
            "render", {"prompt": "x", "seconds": 99}, user=user, channel=channel
        )
    with pytest.raises(FakeDiscordError, match="requires option 'prompt'"):
        await fake.dispatch_slash("render", {}, user=user, channel=channel)
    with pytest.raises(FakeDiscordError, match="takes an Upload"):
        await fake.dispatch_slash(
            "render", {"prompt": "x", "reference": b"raw"}, user=user, channel=channel
        )
    with pytest.raises(FakeDiscordError, match="not a member"):
        await fake.dispatch_slash("render", {"prompt": "x"}, user=world.outsider, channel=channel)
    # default_member_permissions hides /admin from members without Manage Server.
    with pytest.raises(FakeDiscordError, match="lacks the permissions"):
        await fake.dispatch_slash("admin", user=user, channel=channel)
    handle = await fake.dispatch_slash("admin", user=world.admin, channel=channel)
    await fake.wait_for(lambda: handle.state == "responded")
    # guild_only commands are not offered in DMs.
    with pytest.raises(FakeDiscordError, match="not available in DMs"):
        await fake.dispatch_slash("admin", user=world.admin, channel=fake.dm_channel(world.admin))
    assert not [i for i in fake.interactions.values() if i.command_name == "video"]


async def test_attachment_option_is_served_from_the_fake_cdn(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    _, handle = await render(fake, bot, world, reference=Upload("ref.png", PNG))
    assert handle.original is not None
    assert handle.original.content.endswith(f"(reference ref.png: {len(PNG)} bytes)")
    resolved = handle.data["resolved"]["attachments"]
    (att,) = resolved.values()
    assert att["content_type"] == "image/png" and att["size"] == len(PNG) and att["ephemeral"]
    assert handle.data["options"][-1] == {"name": "reference", "type": 11, "value": att["id"]}
    cdn = [r for r in fake.requests if r.route.startswith("CDN")]
    assert len(cdn) == 1 and cdn[0].status == 200 and cdn[0].path.endswith("/ref.png")


async def test_guild_member_roles_and_permissions_and_a_dm(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    handle = await fake.dispatch_slash("info", user=world.alice, channel=world.channel)
    await fake.wait_for(lambda: handle.original)
    assert handle.original is not None
    assert handle.original.content == "Test Guild roles=['editors'] manage_guild=False"
    assert handle.original.ephemeral
    member = handle.payload["member"]
    assert member["roles"] == [str(world.editors.id)] and "user" not in handle.payload

    handle = await fake.dispatch_slash("info", user=world.admin, channel=world.channel)
    await fake.wait_for(lambda: handle.original)
    assert handle.original is not None and handle.original.content.endswith("manage_guild=True")

    dm = fake.dm_channel(world.alice)
    handle = await fake.dispatch_slash("info", user=world.alice, channel=dm)
    await fake.wait_for(lambda: handle.original)
    assert handle.original is not None and handle.original.content.startswith("DM roles=[]")
    assert "member" not in handle.payload and handle.payload["context"] == 1
    assert fake.channel_messages(dm) == [handle.original]


# ---------------------------------------------------------------------- components and modals


async def test_button_click_and_modal_submit(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    _, handle = await render(fake, bot, world)
    clip = handle.original
    assert clip is not None

    with pytest.raises(FakeDiscordError, match="no button 'clip:nope'"):
        await fake.dispatch_button(clip, "clip:nope", user=world.alice)

    click = await fake.dispatch_button(clip, "clip:again", user=world.alice)
    await fake.wait_for(lambda: click.state == "responded")
    assert click.response_type == 4 and click.original is not None
    assert click.original.content == "rendering again" and click.original.ephemeral
    assert click.payload["message"]["id"] == str(clip.id)

    rename = await fake.dispatch_button(clip, "clip:rename", user=world.alice)
    await fake.wait_for(lambda: rename.state == "modal")
    assert rename.modal is not None and rename.modal["title"] == "Rename the clip"

    with pytest.raises(FakeDiscordError, match="no inputs"):
        await fake.dispatch_modal_submit("rename-modal", {"title": "x"}, user=world.alice)
    with pytest.raises(FakeDiscordError, match=r"takes None\.\.40"):
        await fake.dispatch_modal_submit("rename-modal", {"rename:name": "x" * 41})
    submit = await fake.dispatch_modal_submit(
        "rename-modal", {"rename:name": "Sunset"}, user=world.alice
    )
    await fake.wait_for(lambda: submit.state == "responded")
    assert submit.response_type == 7 and submit.original is clip
    assert clip.content == "renamed to Sunset"
    assert fake.channel_messages(world.channel, include_ephemeral=False) == [clip]


async def test_select_with_an_ephemeral_deferral(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    _, handle = await render(fake, bot, world)
    clip = handle.original
    assert clip is not None
    with pytest.raises(FakeDiscordError, match="offers"):
        await fake.dispatch_select(clip, "clip:speed", ["3"], user=world.alice)
    pick = await fake.dispatch_select(clip, "clip:speed", ["2"], user=world.alice)
    await fake.wait_for(lambda: pick.state == "responded")
    reply = pick.original
    assert reply is not None and reply.ephemeral and reply.content == "speed 2x"
    assert reply.attachments[0].filename == "fast.mp4" and reply.attachments[0].data == MP4
    assert pick.followups == []  # the followup resolved the "thinking..." reply
    assert clip.content == "a cat: done in 4s"  # the clip itself is untouched


async def test_message_context_menu(fake_discord: FakeDiscord, world: World, bot: MiniBot) -> None:
    fake = fake_discord
    target = await fake.post_message(world.channel, world.admin, "three little words")
    handle = await fake.dispatch_message_command("Count words", target, user=world.alice)
    await fake.wait_for(lambda: handle.original)
    assert handle.original is not None and handle.original.content == "3 words"
    assert handle.original.ephemeral and handle.original.type == 23
    # Ephemeral replies are not in the channel's history for anyone else (nor for the bot).
    channel = bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    history = [m.id async for m in channel.history(limit=10)]
    assert history == [target.id]


async def test_followup_after_defer_resolves_the_thinking_message(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    """Discord's rule: the first followup while "thinking..." replaces that message and keeps the
    defer's visibility, so `ephemeral=True` is ignored and deleting the original deletes it."""
    fake = fake_discord
    handle = await fake.dispatch_slash("refuse", user=world.alice, channel=world.channel)
    await fake.wait_for(lambda: handle.original is not None and handle.original.deleted)
    assert handle.followups == []
    assert handle.original is not None and not handle.original.ephemeral
    assert handle.original.history[-1]["content"] == "" and handle.original.content
    assert fake.channel_messages(world.channel) == []


# ---------------------------------------------------------------------- interaction deadlines


async def test_token_expires_after_15_minutes_and_the_bot_falls_back(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    seen, handle = await render(fake, bot, world)
    assert snowflake_time(handle.id) == pytest.approx(handle.created_at, abs=0.002)

    fake.clock.advance(15 * 60 + 1)
    message = await bot.deliver(seen, "your video is ready")
    (refused,) = bot.fallbacks
    assert refused.status == 401 and refused.code == 50027
    assert (401, 50027) in handle.errors

    posted = fake.message(message.id)
    assert posted.channel is world.channel and posted.webhook_id is None
    assert posted.content == f"{world.alice.mention} your video is ready"
    assert posted.mentions == [world.alice]
    assert posted.attachments[0].data == MP4
    assert posted.nonce == f"job{seen.id % 10**9}"

    # A retry with the same nonce (say, after a crash) returns the same message: no duplicate.
    again = await bot.deliver(seen, "your video is ready")
    assert again.id == message.id
    assert handle.original is not None
    visible = fake.channel_messages(world.channel, include_ephemeral=False)
    assert [m.id for m in visible] == [handle.original.id, message.id]
    # Every webhook route for the interaction is dead now, not just PATCH.
    with pytest.raises(discord.HTTPException) as info:
        await seen.followup.send("late")
    assert info.value.status == 401 and info.value.code == 50027


async def test_callback_after_3_seconds_is_an_unknown_interaction(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    handle = await fake.dispatch_slash("gate", user=world.alice, channel=world.channel)
    await fake.wait_for(lambda: bot.seen and bot.seen[-1].id == handle.id)
    fake.clock.advance(3.5)
    bot.gate.set()
    await fake.wait_for(lambda: bot.gate_result)
    (error,) = bot.gate_result
    assert isinstance(error, discord.NotFound) and error.code == 10062
    assert handle.state == "failed" and not handle.acknowledged


async def test_a_second_callback_is_already_acknowledged(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    handle = await fake.dispatch_slash("info", user=world.alice, channel=world.channel)
    await fake.wait_for(lambda: handle.state == "responded")
    adapter = async_context.get()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(discord.HTTPException) as info:
            await adapter.create_interaction_response(
                handle.id,
                handle.token,
                session=session,
                params=interaction_response_params(4, {"content": "twice"}),
            )
    assert info.value.status == 400 and info.value.code == 40060
    assert handle.original is not None and handle.original.content.startswith("Test Guild")


async def test_webhook_partial_reads_and_edits_the_original(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    """How a bot reaches the reply later from the stored token (`Webhook.partial`)."""
    fake = fake_discord
    seen, handle = await render(fake, bot, world)
    hook = discord.Webhook.partial(fake.application_id, handle.token, client=bot)
    original = await hook.fetch_message(ORIGINAL)
    assert original.attachments[0].filename == "clip.mp4"
    edited = await hook.edit_message(ORIGINAL, content="final")
    assert edited.id == original.id
    assert handle.original is not None and handle.original.content == "final"
    assert handle.original.attachments[0].data == MP4  # absent `attachments` keeps them

    # Once the reply is resolved, a followup is a new message.
    extra = await seen.followup.send("one more thing", ephemeral=True, wait=True)
    (followup,) = handle.followups
    assert followup.id == extra.id and followup.ephemeral and followup.content == "one more thing"
    fetched = await hook.fetch_message(extra.id)
    assert fetched.content == "one more thing"


# ---------------------------------------------------------------------- rate limits, limits, 5xx


async def test_429_is_retried_by_discord_py(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    rule = fake.rate_limit(WEBHOOK_MESSAGE, remaining=0, reset_after=0.15)
    _, handle = await render(fake, bot, world)
    assert rule.hits >= 1
    limited = next(r for r in fake.requests_to(WEBHOOK_MESSAGE) if r.status == 429)
    assert limited.response["retry_after"] == pytest.approx(0.15, abs=0.05)
    assert limited.response["global"] is False
    assert handle.original is not None and handle.original.attachments[0].data == MP4

    # A global limit on channel messages is waited out too.
    channel = bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    glob = fake.rate_limit(CHANNEL_MESSAGES, remaining=0, reset_after=0.1, global_=True)
    sent = await channel.send("after the global limit")
    assert glob.hits == 1 and fake.message(sent.id).content == "after the global limit"


async def test_429_headers_are_discords(fake_discord: FakeDiscord, world: World) -> None:
    fake_discord.rate_limit(CHANNEL_MESSAGES, remaining=1, reset_after=5.0, bucket="abc123")
    url = f"{fake_discord.api_base}/channels/{world.channel.id}/messages"
    headers = {"Authorization": f"Bot {fake_discord.token}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, json={"content": "one"}, headers=headers) as resp:
            assert resp.status == 200
            assert resp.headers["X-RateLimit-Limit"] == "1"
            assert resp.headers["X-RateLimit-Remaining"] == "0"
            assert resp.headers["X-RateLimit-Bucket"] == "abc123"
            assert 4.0 < float(resp.headers["X-RateLimit-Reset-After"]) <= 5.0
        async with session.post(url, json={"content": "two"}, headers=headers) as resp:
            assert resp.status == 429
            assert resp.headers["Via"] and resp.headers["X-RateLimit-Scope"] == "user"
            assert int(resp.headers["Retry-After"]) == 5
            body = await resp.json()
            assert set(body) == {"message", "retry_after", "global"}
    assert [m.content for m in fake_discord.channel_messages(world.channel)] == ["one"]


async def test_upload_limits_are_enforced(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    bot.video = MP4 * 2
    handle = await fake.dispatch_slash(
        "render",
        {"prompt": "big"},
        user=world.alice,
        channel=world.channel,
        attachment_size_limit=len(MP4),
    )
    await fake.wait_for(
        lambda: handle.original is not None and "too large" in handle.original.content
    )
    assert handle.original is not None
    assert handle.original.content == f"too large (413, 40005, limit {len(MP4)})"
    assert handle.original.attachments == []
    assert (413, 40005) in handle.errors

    small = fake.add_text_channel(world.guild, "small", upload_limit=1024)
    await fake.wait_for(lambda: bot.get_channel(small.id))
    channel = bot.get_channel(small.id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.HTTPException) as info:
        await channel.send(file=discord.File(io.BytesIO(b"x" * 1025), filename="a.bin"))
    assert info.value.status == 413 and info.value.code == 40005
    assert fake.channel_messages(small) == []


async def test_injected_server_errors(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    channel = bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    fake.fail_next(CHANNEL_MESSAGES, 502)
    sent = await channel.send("survives a 502")  # discord.py retries 502 after a second
    assert [r.status for r in fake.requests_to(CHANNEL_MESSAGES)] == [502, 200]
    assert fake.message(sent.id).content == "survives a 502"

    fake.fail_next(CHANNEL_MESSAGES, 503)
    with pytest.raises(discord.DiscordServerError):
        await channel.send("not retried")
    assert len(fake.channel_messages(world.channel)) == 1


# ---------------------------------------------------------------------- gateway faults


async def test_dropped_gateway_is_resumed_and_missed_events_replayed(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    session_id = fake.gateway.session.id if fake.gateway.session else None
    await fake.drop_gateway()
    # Dispatched while the bot is away: Discord replays it on RESUME.
    handle = await fake.dispatch_slash("info", user=world.alice, channel=world.channel)
    await fake.wait_for(lambda: handle.state == "responded")
    resumed = fake.gateway.connections[-1]
    assert resumed.resumed and not resumed.identified
    assert resumed.path == "/resume/"  # READY's resume_gateway_url
    resume = next(m for m in resumed.received if m["op"] == 6)
    assert resume["d"]["session_id"] == session_id
    assert any(m.get("t") == "RESUMED" for m in resumed.sent)

    # A session that cannot be resumed: INVALID_SESSION, then a fresh IDENTIFY.
    await fake.drop_gateway(code=4000, resumable=False)
    await fake.wait_for(lambda: fake.gateway.connections[-1].identified and fake.gateway.live)
    assert fake.gateway.session is not None and fake.gateway.session.id != session_id
    invalid = fake.gateway.connections[-2]
    assert any(m["op"] == 9 for m in invalid.sent)
    handle = await fake.dispatch_slash("info", user=world.alice, channel=world.channel)
    await fake.wait_for(lambda: handle.state == "responded")

    # Op 7 RECONNECT: discord.py closes and resumes.
    count = len(fake.gateway.connections)
    await fake.request_reconnect()
    await fake.wait_for(lambda: len(fake.gateway.connections) > count and fake.gateway.live)
    assert fake.gateway.connections[-1].resumed


async def test_gateway_speaks_plain_json_without_compress_and_checks_the_token(
    fake_discord: FakeDiscord,
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{fake_discord.gateway_url}?v=10&encoding=json") as ws,
    ):
        hello = await ws.receive()
        assert hello.type is aiohttp.WSMsgType.TEXT
        assert hello.json()["op"] == 10 and hello.json()["d"]["heartbeat_interval"] > 0
        await ws.send_json({"op": 1, "d": None})
        assert (await ws.receive()).json() == {"op": 11, "d": None, "s": None, "t": None}
        await ws.send_json({"op": 2, "d": {"token": "wrong", "intents": 0, "properties": {}}})
        closing = await ws.receive()
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 4004


# ---------------------------------------------------------------------- channels and DMs


async def test_channel_messages_nonce_history_edit_delete(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    fake = fake_discord
    channel = bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("result", nonce="job42")
    second = await channel.send("result", nonce="job42")
    assert first.id == second.id
    other = await channel.send("other", reference=first)
    assert fake.message(other.id).type == 19 and fake.message(other.id).referenced is not None

    fetched = await channel.fetch_message(first.id)
    assert fetched.content == "result"
    history = [m.id async for m in channel.history(limit=1)]
    assert history == [other.id]
    await fetched.edit(content="edited result")
    await other.delete()
    stored = fake.message(first.id)
    assert stored.edited and stored.content == "edited result"
    assert fake.channel_messages(world.channel) == [stored]
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(other.id)

    with pytest.raises(discord.HTTPException) as info:
        await channel.send("x" * 2001)
    assert info.value.code == 50035 and "2000 or fewer" in str(info.value)

    # DMs: create the DM channel, send; a user who closed DMs refuses.
    alice = await bot.fetch_user(world.alice.id)
    dm = await alice.send("hello by DM")
    assert fake.channel_messages(fake.dm_channel(world.alice))[0].id == dm.id
    shy = fake.add_user("shy", accepts_dms=False)
    shy_user = await bot.fetch_user(shy.id)
    with pytest.raises(discord.Forbidden) as refused:
        await shy_user.send("hello?")
    assert refused.value.code == 50007


async def test_guild_command_sync_and_dispatch(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    """The way the video bot syncs when guild ids are configured: copy global, sync the guild."""
    target = discord.Object(id=world.guild.id)
    bot.tree.copy_global_to(guild=target)
    synced = await bot.tree.sync(guild=target)
    guild_cmd = fake_discord.command("info", guild=world.guild)
    assert guild_cmd is not None and guild_cmd.guild_id == world.guild.id
    assert {c.id for c in synced} == {c.id for c in fake_discord.commands(world.guild)}
    handle = await fake_discord.dispatch_slash("info", user=world.alice, channel=world.channel)
    assert handle.data["guild_id"] == str(world.guild.id)
    assert handle.data["id"] == str(guild_cmd.id)
    await fake_discord.wait_for(lambda: handle.state == "responded")


async def test_command_sync_refuses_what_discord_refuses(
    fake_discord: FakeDiscord, world: World, bot: MiniBot
) -> None:
    bad = [{"name": "Render", "description": "x", "type": 1}]
    with pytest.raises(discord.HTTPException) as info:
        await bot.http.bulk_upsert_global_commands(fake_discord.application_id, bad)
    assert info.value.code == 50035
    assert fake_discord.command("render") is not None  # the old commands stay


# ---------------------------------------------------------------------- the fake's own parts


async def test_pointed_at_restores_discord_py() -> None:
    before = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, discord.Asset.BASE)
    async with FakeDiscord() as fake:
        with fake_fixture.pointed_at(fake):
            assert fake.api_base == Route.BASE
            assert str(DiscordWebSocket.DEFAULT_GATEWAY) == fake.gateway_url
            assert fake.cdn_base == discord.Asset.BASE
    assert before == (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY, discord.Asset.BASE)


async def test_clock_snowflakes_and_wait_for() -> None:
    clock = FakeClock(start=1_700_000_000.0, frozen=True)
    async with FakeDiscord(clock=clock) as fake:
        guild = fake.add_guild()
        assert snowflake_time(guild.id) == pytest.approx(1_700_000_000.0, abs=0.001)
        clock.advance(60)
        later = fake.add_guild()
        assert snowflake_time(later.id) == pytest.approx(1_700_000_060.0, abs=0.001)
        assert later.id > guild.id
        with pytest.raises(AssertionError, match=r"not reached within 0\.05s"):
            await fake.wait_for(lambda: False, timeout=0.05)
        fake.register_commands([{"name": "x", "description": "x", "type": 1}])
        with pytest.raises(FakeDiscordError, match="not connected"):
            await fake.dispatch_slash("x", user=fake.owner, channel=fake.dm_channel(fake.owner))
