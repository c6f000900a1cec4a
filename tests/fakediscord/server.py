"""`FakeDiscord`: an aiohttp server on 127.0.0.1 speaking enough of Discord (gateway, REST under
/api/v10, the attachment CDN) for the real discord.py client, plus the test-facing API to build a
world, dispatch interactions as a user would, read back what the user would see, and inject
faults."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import re
import secrets
import urllib.parse
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from aiohttp import web

from tests.fakediscord.gateway import (
    DIRECT_MESSAGES,
    GUILD_MEMBERS,
    GUILD_MESSAGES,
    GUILDS,
    MESSAGE_CONTENT,
    Gateway,
)
from tests.fakediscord.rest import FailureRule, RateLimitRule, RequestRecord, Rest
from tests.fakediscord.snowflake import FakeClock, Snowflakes
from tests.fakediscord.state import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    APPLICATION_COMMAND,
    CALLBACK_MODAL,
    CHAT_INPUT,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    DEFAULT_UPLOAD_LIMIT,
    DM_APP_PERMISSIONS,
    JSON,
    MESSAGE_COMMAND,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    OPT_ATTACHMENT,
    OPT_BOOLEAN,
    OPT_CHANNEL,
    OPT_INTEGER,
    OPT_MENTIONABLE,
    OPT_NUMBER,
    OPT_ROLE,
    OPT_STRING,
    OPT_SUB_COMMAND,
    OPT_SUB_COMMAND_GROUP,
    OPT_USER,
    USER_COMMAND,
    Attachment,
    Channel,
    Command,
    FakeDiscordError,
    Guild,
    Interaction,
    Member,
    Message,
    Role,
    Upload,
    User,
    normalize_embeds,
)

T = TypeVar("T")

_MENTION = re.compile(r"<@!?(\d+)>")


class FakeDiscord:
    """One fake Discord with one bot application. Use `start()`/`stop()` (or `async with`)."""

    def __init__(
        self,
        *,
        clock: FakeClock | None = None,
        bot_name: str = "Fake Video Bot",
        token: str | None = None,
        privileged_intents: int = 0,
        default_rate_limit: tuple[int, float] = (50, 1.0),
    ) -> None:
        self.clock = clock or FakeClock()
        self.snowflakes = Snowflakes(self.clock)
        self.privileged_intents = privileged_intents
        self.application_id = self.snowflakes.next()
        self.application_flags = (
            1 << 19 | 1 << 23
        )  # GATEWAY_MESSAGE_CONTENT_LIMITED | ..._COMMAND_BADGE
        self.bot_user = User(id=self.application_id, username=bot_name, bot=True)
        self.owner = User(id=self.snowflakes.next(), username="app-owner")
        b64 = base64.b64encode(str(self.application_id).encode()).decode().rstrip("=")
        self.token = token or f"{b64}.{secrets.token_urlsafe(4)}.{secrets.token_urlsafe(27)}"
        self.verify_key = secrets.token_hex(32)

        self.users: dict[int, User] = {self.bot_user.id: self.bot_user, self.owner.id: self.owner}
        self.guilds: list[Guild] = []
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, Attachment] = {}
        self.global_commands: list[Command] = []
        self.guild_commands: dict[int, list[Command]] = {}
        self.interactions: dict[int, Interaction] = {}
        self.interactions_by_token: dict[str, Interaction] = {}
        self._dm_channels: dict[int, Channel] = {}

        self.gateway = Gateway(self)
        self.rest = Rest(self, default_rate_limit=default_rate_limit)
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=1024 * 1024 * 1024)
        app.router.add_get("/", self.gateway.handle)
        app.router.add_get("/resume/", self.gateway.handle)
        app.router.add_route("*", "/api/{tail:.*}", self.rest.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn)
        app.router.add_get(
            "/ephemeral-attachments/{channel_id}/{attachment_id}/{filename}", self._cdn
        )
        self._runner = web.AppRunner(
            app, handle_signals=False, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """What `discord.http.Route.BASE` must be."""
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """What `DiscordWebSocket.DEFAULT_GATEWAY` must be."""
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def resume_gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/resume/"

    @property
    def cdn_base(self) -> str:
        return self.base_url

    # ------------------------------------------------------------------ change notification

    def notify(self) -> None:
        """Wake every `wait_for`: something the state depends on changed."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float = 5.0,  # noqa: ASYNC109 - the deadline is part of the condition
        *,
        poll: float | None = 0.05,
    ) -> T:
        """Wait until `predicate()` is truthy and return its value. It is re-evaluated as soon as
        the fake sees a request, a gateway message or a state change, and also every `poll`
        seconds for predicates on state the fake cannot see (the bot's cache, its database);
        `poll=None` waits for the fake's events only."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = "\n  ".join(str(r) for r in self.rest.log[-15:])
                raise AssertionError(
                    f"fake Discord: condition not reached within {timeout}s; last requests:\n"
                    f"  {recent}"
                )
            event = self._changed
            wait = remaining if poll is None else min(remaining, poll)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), wait)

    async def wait_until_connected(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Until the bot has identified (or resumed) and received its guilds."""
        await self.wait_for(lambda: self.gateway.live, timeout)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _live_dispatch(self, event: str, data: JSON, *, intent: int = 0) -> None:
        """Dispatch from synchronous world-building calls, if a bot is connected."""
        if self.gateway.session is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._spawn(self.gateway.dispatch(event, data, intent=intent))

    # ------------------------------------------------------------------ the world

    def bot_user_payload(self) -> JSON:
        data = self.bot_user.payload()
        data.update(
            {
                "bot": True,
                "verified": True,
                "mfa_enabled": False,
                "email": None,
                "locale": "en-US",
                "premium_type": 0,
            }
        )
        return data

    def application_payload(self) -> JSON:
        return {
            "id": str(self.application_id),
            "name": self.bot_user.username,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "hook": True,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": self.verify_key,
            "owner": self.owner.payload(),
            "team": None,
            "flags": self.application_flags,
            "bot": self.bot_user.payload(),
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "role_connections_verification_url": None,
            "tags": [],
            "approximate_guild_count": len(self.guilds),
            "approximate_user_install_count": 0,
            "integration_types_config": {"0": {}},
            "is_monetized": False,
            "is_verified": False,
            "is_discoverable": False,
        }

    def add_user(
        self,
        username: str,
        *,
        global_name: str | None = None,
        bot: bool = False,
        accepts_dms: bool = True,
        locale: str = "en-US",
    ) -> User:
        user = User(
            id=self.snowflakes.next(),
            username=username,
            global_name=global_name,
            bot=bot,
            accepts_dms=accepts_dms,
            locale=locale,
        )
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str = "Fake Guild",
        *,
        owner: User | None = None,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
        locale: str = "en-US",
    ) -> Guild:
        owner = owner or self.add_user(f"{name.lower().replace(' ', '-')}-owner")
        gid = self.snowflakes.next()
        now = self.clock.now()
        guild = Guild(id=gid, name=name, owner_id=owner.id, preferred_locale=locale, joined_at=now)
        guild.roles.append(
            Role(id=gid, guild_id=gid, name="@everyone", permissions=everyone_permissions)
        )
        bot_role = Role(
            id=self.snowflakes.next(),
            guild_id=gid,
            name=self.bot_user.username,
            permissions=bot_permissions,
            position=1,
            managed=True,
            bot_id=self.bot_user.id,
        )
        guild.roles.append(bot_role)
        guild.members[owner.id] = Member(user=owner, guild=guild, joined_at=now)
        guild.members[self.bot_user.id] = Member(
            user=self.bot_user, guild=guild, roles=[bot_role], joined_at=now
        )
        self.guilds.append(guild)
        self._live_dispatch("GUILD_CREATE", guild.payload(), intent=GUILDS)
        return guild

    def guild(self, guild_id: int) -> Guild | None:
        return next((g for g in self.guilds if g.id == guild_id), None)

    def add_role(self, guild: Guild, name: str, permissions: int) -> Role:
        role = Role(
            id=self.snowflakes.next(),
            guild_id=guild.id,
            name=name,
            permissions=permissions,
            position=len(guild.roles),
        )
        guild.roles.append(role)
        self._live_dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()}, intent=GUILDS
        )
        return role

    def add_member(
        self,
        guild: Guild,
        user: User,
        *,
        roles: Sequence[Role] = (),
        permissions: int | None = None,
        nick: str | None = None,
    ) -> Member:
        """Make `user` a member; `permissions` gives them a role of their own with those bits."""
        member_roles = list(roles)
        if permissions is not None:
            member_roles.append(self.add_role(guild, f"{user.username} permissions", permissions))
        member = Member(
            user=user, guild=guild, roles=member_roles, nick=nick, joined_at=self.clock.now()
        )
        guild.members[user.id] = member
        data = member.payload()
        data["guild_id"] = str(guild.id)
        self._live_dispatch("GUILD_MEMBER_ADD", data, intent=GUILD_MEMBERS)
        return member

    def add_text_channel(
        self,
        guild: Guild,
        name: str = "general",
        *,
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        bot_permissions: int | None = None,
    ) -> Channel:
        """A guild text channel. `upload_limit` is the per-file limit of the guild's boost tier;
        `bot_permissions` overrides what the bot may do here (a member permission overwrite)."""
        channel = Channel(
            id=self.snowflakes.next(),
            type=0,
            name=name,
            guild=guild,
            upload_limit=upload_limit,
            position=len(guild.channels),
        )
        if bot_permissions is not None:
            channel.member_overwrites[self.bot_user.id] = (
                bot_permissions,
                ALL_PERMISSIONS & ~bot_permissions,
            )
        guild.channels.append(channel)
        self.channels[channel.id] = channel
        self._live_dispatch("CHANNEL_CREATE", channel.payload(), intent=GUILDS)
        return channel

    def dm_channel(self, user: User) -> Channel:
        """The DM channel between the bot and `user` (the same one Discord would give the bot)."""
        channel = self._dm_channels.get(user.id)
        if channel is None:
            channel = Channel(id=self.snowflakes.next(), type=1, name=None, recipient=user)
            self._dm_channels[user.id] = channel
            self.channels[channel.id] = channel
        return channel

    def bot_permissions_in(self, channel: Channel) -> int:
        if channel.guild is None:
            return DM_APP_PERMISSIONS
        member = channel.guild.member(self.bot_user)
        return 0 if member is None else member.permissions_in(channel)

    # ------------------------------------------------------------------ messages

    def channel_messages(
        self,
        channel: Channel | int,
        *,
        include_ephemeral: bool = True,
        include_deleted: bool = False,
    ) -> list[Message]:
        """The channel as its users see it, oldest first, edits applied."""
        cid = channel if isinstance(channel, int) else channel.id
        found = self.channels.get(cid)
        if found is None:
            raise FakeDiscordError(f"no channel {cid}")
        return [
            m
            for m in found.messages
            if (include_deleted or not m.deleted) and (include_ephemeral or not m.ephemeral)
        ]

    def message(self, message_id: int) -> Message:
        try:
            return self.messages[message_id]
        except KeyError:
            raise FakeDiscordError(f"no message {message_id}") from None

    def store_attachment(
        self,
        channel: Channel,
        filename: str,
        data: bytes,
        *,
        content_type: str | None = None,
        description: str | None = None,
        ephemeral: bool = False,
    ) -> Attachment:
        aid = self.snowflakes.next()
        kind = "ephemeral-attachments" if ephemeral else "attachments"
        path = f"/{kind}/{channel.id}/{aid}/{urllib.parse.quote(filename)}"
        now = int(self.clock.now())
        signature = f"?ex={now + 86400:08x}&is={now:08x}&hm={secrets.token_hex(32)}&"
        attachment = Attachment(
            id=aid,
            channel_id=str(channel.id),
            filename=filename,
            data=data,
            url=f"{self.cdn_base}{path}{signature}",
            proxy_url=f"{self.cdn_base}{path}{signature}",
            content_type=content_type or Attachment.guess_type(filename),
            description=description,
            ephemeral=ephemeral,
        )
        self.attachments[aid] = attachment
        return attachment

    def resolve_mentions(
        self, content: str, allowed: JSON | None, default: JSON | None
    ) -> list[User]:
        rules = allowed if allowed is not None else default
        ids = [int(m) for m in _MENTION.findall(content)]
        if rules is not None:
            parse = rules.get("parse") or []
            explicit = {int(u) for u in rules.get("users") or []}
            ids = [i for i in ids if "users" in parse or i in explicit]
        out: list[User] = []
        for i in dict.fromkeys(ids):
            user = self.users.get(i)
            if user is not None:
                out.append(user)
        return out

    def new_message(
        self,
        channel: Channel,
        author: User,
        *,
        content: str = "",
        embeds: list[JSON] | None = None,
        components: list[JSON] | None = None,
        attachments: list[Attachment] | None = None,
        flags: int = 0,
        type: int = 0,
        nonce: str | None = None,
        webhook_id: int | None = None,
        interaction: Interaction | None = None,
        mentions: list[User] | None = None,
        reference: JSON | None = None,
        referenced: Message | None = None,
        tts: bool = False,
    ) -> Message:
        message = Message(
            id=self.snowflakes.next(),
            channel=channel,
            author=author,
            created_at=self.clock.now(),
            content=content,
            embeds=normalize_embeds(embeds or []),
            components=components or [],
            attachments=attachments or [],
            flags=flags,
            type=type,
            nonce=nonce,
            webhook_id=webhook_id,
            application_id=self.application_id if webhook_id is not None else None,
            interaction=interaction,
            mentions=mentions or [],
            reference=reference,
            referenced=referenced,
            tts=tts,
        )
        channel.messages.append(message)
        self.messages[message.id] = message
        self.notify()
        return message

    def message_event_payload(self, message: Message) -> JSON | None:
        """MESSAGE_CREATE/UPDATE data as this bot's intents let it see it, or None."""
        session = self.gateway.session
        if session is None or message.ephemeral:
            return None
        channel = message.channel
        needed = DIRECT_MESSAGES if channel.is_dm else GUILD_MESSAGES
        if not session.intents & needed:
            return None
        data = message.payload()
        if channel.guild is not None:
            data["guild_id"] = str(channel.guild.id)
            member = channel.guild.member(message.author)
            if member is not None and message.webhook_id is None:
                partial = member.payload()
                del partial["user"]
                data["member"] = partial
        sees_content = (
            session.intents & MESSAGE_CONTENT
            or channel.is_dm
            or message.author.id == self.bot_user.id
            or any(u.id == self.bot_user.id for u in message.mentions)
        )
        if not sees_content:
            data.update(content="", embeds=[], attachments=[], components=[])
        return data

    async def emit_message(self, event: str, message: Message) -> None:
        data = self.message_event_payload(message)
        if data is not None:
            await self.gateway.dispatch(event, data)

    async def emit_delete(self, message: Message) -> None:
        session = self.gateway.session
        if session is None or message.ephemeral:
            return
        needed = DIRECT_MESSAGES if message.channel.is_dm else GUILD_MESSAGES
        data: JSON = {"id": str(message.id), "channel_id": str(message.channel.id)}
        if message.channel.guild is not None:
            data["guild_id"] = str(message.channel.guild.id)
        await self.gateway.dispatch("MESSAGE_DELETE", data, intent=needed)

    async def post_message(
        self,
        channel: Channel,
        author: User,
        content: str = "",
        *,
        attachments: Sequence[Upload] = (),
        embeds: Sequence[JSON] = (),
    ) -> Message:
        """A message a (test) user writes in a channel, e.g. the target of a context menu."""
        await self._drain()
        stored = [
            self.store_attachment(
                channel, u.filename, u.data, content_type=u.content_type, description=u.description
            )
            for u in attachments
        ]
        message = self.new_message(
            channel,
            author,
            content=content,
            embeds=list(embeds),
            attachments=stored,
            mentions=self.resolve_mentions(content, None, None),
        )
        await self.emit_message("MESSAGE_CREATE", message)
        return message

    # ------------------------------------------------------------------ commands

    def commands(self, guild: Guild | None = None) -> list[Command]:
        if guild is None:
            return list(self.global_commands)
        return list(self.guild_commands.get(guild.id, []))

    def command(
        self, name: str, *, guild: Guild | None = None, type: int = CHAT_INPUT
    ) -> Command | None:
        """The command a user in `guild` (or a DM) would see under that name."""
        pools = ([self.guild_commands.get(guild.id, [])] if guild is not None else []) + [
            self.global_commands
        ]
        for pool in pools:
            for cmd in pool:
                if cmd.name == name and cmd.type == type:
                    return cmd
        return None

    def register_commands(
        self, payload: list[JSON], *, guild: Guild | None = None
    ) -> list[Command]:
        """What a bulk overwrite (PUT) does: keeps ids of commands that stay, drops the rest."""
        pool = (
            self.global_commands if guild is None else self.guild_commands.setdefault(guild.id, [])
        )
        old = {(c.type, c.name): c for c in pool}
        new: list[Command] = []
        for declared in payload:
            raw = dict(declared)
            if raw.get("default_member_permissions") is not None:
                raw["default_member_permissions"] = str(raw["default_member_permissions"])
            key = (int(raw.get("type", CHAT_INPUT)), str(raw["name"]))
            prev = old.get(key)
            if prev is not None and prev.raw == raw:
                new.append(prev)
                continue
            new.append(
                Command(
                    id=prev.id if prev is not None else self.snowflakes.next(),
                    application_id=self.application_id,
                    version=self.snowflakes.next(),
                    guild_id=guild.id if guild is not None else None,
                    raw=raw,
                )
            )
        pool[:] = new
        self.notify()
        return new

    # ------------------------------------------------------------------ interactions

    def interaction(self, which: Interaction | int) -> Interaction:
        iid = which if isinstance(which, int) else which.id
        try:
            return self.interactions[iid]
        except KeyError:
            raise FakeDiscordError(f"no interaction {iid}") from None

    def _context_check(self, cmd: Command, user: User, channel: Channel) -> Member | None:
        raw = cmd.raw
        contexts = raw.get("contexts")
        if channel.guild is None:
            if cmd.guild_id is not None:
                raise FakeDiscordError(f"/{cmd.name} is a guild command; users can't use it in DMs")
            if (contexts is not None and 1 not in contexts) or (
                contexts is None and raw.get("dm_permission") is False
            ):
                raise FakeDiscordError(f"/{cmd.name} is not available in DMs")
            return None
        if contexts is not None and 0 not in contexts:
            raise FakeDiscordError(f"/{cmd.name} is not available in guilds")
        member = channel.guild.member(user)
        if member is None:
            raise FakeDiscordError(f"{user.username} is not a member of {channel.guild.name}")
        required = raw.get("default_member_permissions")
        if required is not None:
            bits = int(required)
            perms = member.permissions
            if perms & bits != bits and not perms & ADMINISTRATOR:
                raise FakeDiscordError(
                    f"{user.username} lacks the permissions /{cmd.name} requires, "
                    "so Discord does not show it to them"
                )
        return member

    def _member_check(self, user: User, channel: Channel) -> Member | None:
        if channel.guild is None:
            if channel.recipient is not None and channel.recipient.id != user.id:
                raise FakeDiscordError(f"{user.username} is not in that DM")
            return None
        member = channel.guild.member(user)
        if member is None:
            raise FakeDiscordError(f"{user.username} is not a member of {channel.guild.name}")
        return member

    async def _dispatch_interaction(
        self,
        *,
        type: int,
        data: JSON,
        user: User,
        channel: Channel,
        member: Member | None,
        command_name: str | None = None,
        source_message: Message | None = None,
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
        locale: str | None = None,
    ) -> Interaction:
        if self.gateway.session is None:
            raise FakeDiscordError("the bot has not connected to the gateway")
        await self._drain()
        iid = self.snowflakes.next()
        raw_token = f"interaction:{iid}:{secrets.token_urlsafe(96)}"
        token = base64.urlsafe_b64encode(raw_token.encode()).decode().rstrip("=")
        guild = channel.guild
        payload: JSON = {
            "id": str(iid),
            "application_id": str(self.application_id),
            "type": type,
            "data": data,
            "channel_id": str(channel.id),
            "channel": channel.payload(),
            "token": token,
            "version": 1,
            "app_permissions": str(self.bot_permissions_in(channel)),
            "locale": locale or user.locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "authorizing_integration_owners": (
                {"0": str(guild.id)} if guild is not None else {"1": str(user.id)}
            ),
            "context": 0 if guild is not None else 1,
            "attachment_size_limit": attachment_size_limit,
        }
        if guild is not None:
            assert member is not None
            payload["guild_id"] = str(guild.id)
            payload["guild"] = guild.partial_payload()
            payload["guild_locale"] = guild.preferred_locale
            payload["member"] = member.payload(with_permissions=member.permissions_in(channel))
        else:
            payload["user"] = user.payload()
        if source_message is not None:
            payload["message"] = source_message.payload()
        interaction = Interaction(
            id=iid,
            token=token,
            type=type,
            application_id=self.application_id,
            user=user,
            channel=channel,
            guild=guild,
            created_at=self.clock.now(),
            attachment_size_limit=attachment_size_limit,
            data=data,
            payload=payload,
            command_name=command_name,
            source_message=source_message,
        )
        self.interactions[iid] = interaction
        self.interactions_by_token[token] = interaction
        await self.gateway.dispatch("INTERACTION_CREATE", payload)
        self.notify()
        return interaction

    async def dispatch_slash(
        self,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        user: User,
        channel: Channel,
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
        locale: str | None = None,
    ) -> Interaction:
        """A user runs `/name` (`"group sub"` for subcommands) with `options` as a user would fill
        them in: checked against the schema the bot registered. Values: str, int, float, bool,
        `User`, `Channel`, `Role`, or `Upload` for attachment options."""
        words = name.split()
        if not words:
            raise FakeDiscordError("empty command name")
        cmd = self.command(words[0], guild=channel.guild)
        if cmd is None:
            known = sorted(c.name for c in self._visible(channel) if c.type == CHAT_INPUT)
            raise FakeDiscordError(f"no command /{words[0]} is registered; known: {known}")
        member = self._context_check(cmd, user, channel)
        schema = cmd.options
        path: list[JSON] = []
        for word in words[1:]:
            sub = next(
                (
                    o
                    for o in schema
                    if o["name"] == word and o["type"] in (OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP)
                ),
                None,
            )
            if sub is None:
                raise FakeDiscordError(f"/{' '.join(words[:-1])} has no subcommand {word!r}")
            path.append(sub)
            schema = list(sub.get("options") or [])
        if any(o["type"] in (OPT_SUB_COMMAND, OPT_SUB_COMMAND_GROUP) for o in schema):
            raise FakeDiscordError(f"/{name} needs a subcommand")
        resolved: dict[str, dict[str, JSON]] = {}
        given = dict(options or {})
        built: list[JSON] = []
        by_name = {o["name"]: o for o in schema}
        for key in given:
            if key not in by_name:
                raise FakeDiscordError(
                    f"/{name} has no option {key!r}; its options are {sorted(by_name)}"
                )
        for opt in schema:
            if opt["name"] not in given:
                if opt.get("required"):
                    raise FakeDiscordError(f"/{name} requires option {opt['name']!r}")
                continue
            value = self._option_value(name, opt, given[opt["name"]], channel, resolved)
            built.append({"name": opt["name"], "type": opt["type"], "value": value})
        for sub in reversed(path):
            built = [{"name": sub["name"], "type": sub["type"], "options": built}]
        data: JSON = {"id": str(cmd.id), "name": cmd.name, "type": CHAT_INPUT}
        if built:
            data["options"] = built
        if resolved:
            data["resolved"] = resolved
        if cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        return await self._dispatch_interaction(
            type=APPLICATION_COMMAND,
            data=data,
            user=user,
            channel=channel,
            member=member,
            command_name=name,
            attachment_size_limit=attachment_size_limit,
            locale=locale,
        )

    def _visible(self, channel: Channel) -> list[Command]:
        out = list(self.global_commands)
        if channel.guild is not None:
            out += self.guild_commands.get(channel.guild.id, [])
        return out

    def _option_value(
        self,
        command: str,
        opt: JSON,
        value: Any,
        channel: Channel,
        resolved: dict[str, dict[str, JSON]],
    ) -> Any:
        otype = opt["type"]
        where = f"/{command} option {opt['name']!r}"

        def bad(expected: str) -> FakeDiscordError:
            return FakeDiscordError(f"{where} takes {expected}, not {value!r}")

        choices = opt.get("choices") or []
        if otype == OPT_STRING:
            if not isinstance(value, str):
                raise bad("a string")
            lo, hi = opt.get("min_length"), opt.get("max_length", 6000)
            if (lo is not None and len(value) < lo) or (hi is not None and len(value) > hi):
                raise FakeDiscordError(f"{where}: length must be within {lo}..{hi}")
        elif otype == OPT_INTEGER:
            if not isinstance(value, int) or isinstance(value, bool):
                raise bad("an integer")
        elif otype == OPT_NUMBER:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise bad("a number")
        elif otype == OPT_BOOLEAN and not isinstance(value, bool):
            raise bad("a boolean")
        if otype in (OPT_INTEGER, OPT_NUMBER):
            lo, hi = opt.get("min_value"), opt.get("max_value")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise FakeDiscordError(f"{where}: value must be within {lo}..{hi}")
        if otype in (OPT_STRING, OPT_INTEGER, OPT_NUMBER, OPT_BOOLEAN):
            if choices and value not in [c["value"] for c in choices]:
                raise FakeDiscordError(
                    f"{where} must be one of its choices {[c['value'] for c in choices]}"
                )
            return value
        if otype in (OPT_USER, OPT_MENTIONABLE) and isinstance(value, User):
            resolved.setdefault("users", {})[str(value.id)] = value.payload()
            member = channel.guild.member(value) if channel.guild is not None else None
            if member is not None:
                partial = member.payload(with_permissions=member.permissions_in(channel))
                del partial["user"]
                resolved.setdefault("members", {})[str(value.id)] = partial
            return str(value.id)
        if otype in (OPT_ROLE, OPT_MENTIONABLE) and isinstance(value, Role):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        if otype == OPT_CHANNEL and isinstance(value, Channel):
            types = opt.get("channel_types")
            if types and value.type not in types:
                raise FakeDiscordError(f"{where} accepts channel types {types}")
            data = value.payload()
            data["permissions"] = str(self.bot_permissions_in(value))
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        if otype == OPT_ATTACHMENT and isinstance(value, Upload):
            attachment = self.store_attachment(
                channel,
                value.filename,
                value.data,
                content_type=value.content_type,
                description=value.description,
                ephemeral=True,
            )
            resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.payload()
            return str(attachment.id)
        kinds = {
            OPT_USER: "a User",
            OPT_ROLE: "a Role",
            OPT_MENTIONABLE: "a User or Role",
            OPT_CHANNEL: "a Channel",
            OPT_ATTACHMENT: "an Upload",
        }
        raise bad(kinds.get(otype, f"option type {otype}"))

    async def dispatch_message_command(
        self,
        name: str,
        target: Message,
        *,
        user: User,
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
        locale: str | None = None,
    ) -> Interaction:
        """A user picks Apps -> `name` on `target`."""
        channel = target.channel
        if target.deleted:
            raise FakeDiscordError("the target message was deleted")
        cmd = self.command(name, guild=channel.guild, type=MESSAGE_COMMAND)
        if cmd is None:
            raise FakeDiscordError(f"no message command {name!r} is registered")
        member = self._context_check(cmd, user, channel)
        data: JSON = {
            "id": str(cmd.id),
            "name": cmd.name,
            "type": MESSAGE_COMMAND,
            "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): target.payload()}},
        }
        if cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        return await self._dispatch_interaction(
            type=APPLICATION_COMMAND,
            data=data,
            user=user,
            channel=channel,
            member=member,
            command_name=name,
            attachment_size_limit=attachment_size_limit,
            locale=locale,
        )

    async def dispatch_user_command(
        self,
        name: str,
        target: User,
        *,
        user: User,
        channel: Channel,
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
    ) -> Interaction:
        cmd = self.command(name, guild=channel.guild, type=USER_COMMAND)
        if cmd is None:
            raise FakeDiscordError(f"no user command {name!r} is registered")
        member = self._context_check(cmd, user, channel)
        resolved: JSON = {"users": {str(target.id): target.payload()}}
        target_member = channel.guild.member(target) if channel.guild is not None else None
        if target_member is not None:
            partial = target_member.payload(with_permissions=target_member.permissions_in(channel))
            del partial["user"]
            resolved["members"] = {str(target.id): partial}
        data: JSON = {
            "id": str(cmd.id),
            "name": cmd.name,
            "type": USER_COMMAND,
            "target_id": str(target.id),
            "resolved": resolved,
        }
        if cmd.guild_id is not None:
            data["guild_id"] = str(cmd.guild_id)
        return await self._dispatch_interaction(
            type=APPLICATION_COMMAND,
            data=data,
            user=user,
            channel=channel,
            member=member,
            command_name=name,
            attachment_size_limit=attachment_size_limit,
        )

    def _component_source(self, message: Message, user: User) -> Member | None:
        current = self.messages.get(message.id)
        if current is None or current.deleted:
            raise FakeDiscordError("that message is not in the channel (any more)")
        owner = current.interaction.user if current.interaction is not None else None
        if current.ephemeral and owner is not None and owner.id != user.id:
            raise FakeDiscordError("only the user who ran the command sees that ephemeral message")
        return self._member_check(user, current.channel)

    async def dispatch_button(
        self,
        message: Message,
        custom_id: str,
        *,
        user: User,
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
    ) -> Interaction:
        """A user clicks the button `custom_id` on `message` (as it is now)."""
        member = self._component_source(message, user)
        button = message.component(custom_id)
        if button is None or button.get("type") != 2:
            ids = [b.get("custom_id") for b in message.buttons]
            raise FakeDiscordError(f"no button {custom_id!r} on message {message.id}; it has {ids}")
        if button.get("disabled"):
            raise FakeDiscordError(f"button {custom_id!r} is disabled")
        data: JSON = {"custom_id": custom_id, "component_type": 2}
        if "id" in button:
            data["id"] = button["id"]
        return await self._dispatch_interaction(
            type=MESSAGE_COMPONENT,
            data=data,
            user=user,
            channel=message.channel,
            member=member,
            source_message=message,
            attachment_size_limit=attachment_size_limit,
        )

    async def dispatch_select(
        self,
        message: Message,
        custom_id: str,
        values: Sequence[str],
        *,
        user: User,
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
    ) -> Interaction:
        """A user picks `values` in the string select `custom_id` on `message`."""
        member = self._component_source(message, user)
        select = message.component(custom_id)
        if select is None or select.get("type") != 3:
            raise FakeDiscordError(f"no string select {custom_id!r} on message {message.id}")
        if select.get("disabled"):
            raise FakeDiscordError(f"select {custom_id!r} is disabled")
        offered = [o["value"] for o in select.get("options") or []]
        for v in values:
            if v not in offered:
                raise FakeDiscordError(f"select {custom_id!r} offers {offered}, not {v!r}")
        lo, hi = int(select.get("min_values", 1)), int(select.get("max_values", 1))
        if not lo <= len(values) <= hi:
            raise FakeDiscordError(f"select {custom_id!r} takes {lo}..{hi} values")
        data: JSON = {"custom_id": custom_id, "component_type": 3, "values": list(values)}
        if "id" in select:
            data["id"] = select["id"]
        return await self._dispatch_interaction(
            type=MESSAGE_COMPONENT,
            data=data,
            user=user,
            channel=message.channel,
            member=member,
            source_message=message,
            attachment_size_limit=attachment_size_limit,
        )

    async def dispatch_modal_submit(
        self,
        custom_id: str,
        values: Mapping[str, str | Sequence[str]],
        *,
        user: User | None = None,
        source: Interaction | None = None,
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
    ) -> Interaction:
        """The user submits the modal `custom_id` the bot showed them (the latest one, or the one
        answering `source`), with `values` keyed by text input custom_id."""
        candidates = [
            i
            for i in self.interactions.values()
            if i.response_type == CALLBACK_MODAL
            and i.modal is not None
            and i.modal.get("custom_id") == custom_id
            and (source is None or i is source)
            and (user is None or i.user.id == user.id)
        ]
        if not candidates:
            raise FakeDiscordError(f"the bot showed no modal {custom_id!r} to that user")
        origin = candidates[-1]
        assert origin.modal is not None
        who = origin.user
        member = self._member_check(who, origin.channel)
        inputs: set[str] = set()
        for top in origin.modal.get("components") or []:
            for item in [*(top.get("components") or []), top.get("component") or {}]:
                if isinstance(item.get("custom_id"), str):
                    inputs.add(item["custom_id"])
        unknown = set(values) - inputs
        if unknown:
            raise FakeDiscordError(
                f"modal {custom_id!r} has no inputs {sorted(unknown)}; it has {sorted(inputs)}"
            )
        components: list[JSON] = []

        def submitted(item: JSON) -> JSON | None:
            cid = item.get("custom_id")
            if not isinstance(cid, str):
                return None
            out: JSON = {"type": item["type"], "custom_id": cid}
            if "id" in item:
                out["id"] = item["id"]
            given = values.get(cid)
            if item["type"] == 4:
                text = given if isinstance(given, str) else ""
                if given is not None and not isinstance(given, str):
                    raise FakeDiscordError(f"text input {cid!r} takes a string")
                if item.get("required", True) and not text:
                    raise FakeDiscordError(f"text input {cid!r} is required")
                lo, hi = item.get("min_length"), item.get("max_length")
                if text and (
                    (lo is not None and len(text) < lo) or (hi is not None and len(text) > hi)
                ):
                    raise FakeDiscordError(f"text input {cid!r} takes {lo}..{hi} characters")
                out["value"] = text
            else:
                picked = [given] if isinstance(given, str) else list(given or [])
                out["values"] = picked
            return out

        for top in origin.modal.get("components") or []:
            if top.get("type") == 1:
                row = [s for s in (submitted(c) for c in top.get("components") or []) if s]
                components.append({"type": 1, "components": row})
            elif top.get("type") == 18 and isinstance(top.get("component"), dict):
                inner = submitted(top["component"])
                if inner is not None:
                    label: JSON = {"type": 18, "component": inner}
                    if "id" in top:
                        label["id"] = top["id"]
                    components.append(label)
        source_message = origin.source_message if origin.type == MESSAGE_COMPONENT else None
        return await self._dispatch_interaction(
            type=MODAL_SUBMIT,
            data={"custom_id": custom_id, "components": components},
            user=who,
            channel=origin.channel,
            member=member,
            source_message=source_message,
            attachment_size_limit=attachment_size_limit,
        )

    # ------------------------------------------------------------------ requests and faults

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request the fake answered, in order, with what it answered."""
        return self.rest.log

    def requests_to(self, route: str) -> list[RequestRecord]:
        """Requests whose `"METHOD /template"` equals `route`, or whose `"METHOD /path"` matches it
        as a glob (`"PATCH /webhooks/*"`)."""
        return [r for r in self.rest.log if r.key == route or fnmatch.fnmatchcase(r.line, route)]

    def rate_limit(
        self,
        route: str,
        *,
        remaining: int = 0,
        reset_after: float = 0.2,
        limit: int | None = None,
        global_: bool = False,
        bucket: str | None = None,
    ) -> RateLimitRule:
        """Rate-limit requests matching `route` (as in `requests_to`): `remaining` more requests go
        through in the current window, then 429s until `reset_after` *real* seconds have passed
        (discord.py sleeps for real), after which the bucket refills to `limit`."""
        return self.rest.add_rate_limit(
            route,
            remaining=remaining,
            reset_after=reset_after,
            limit=limit if limit is not None else max(remaining, 1),
            global_=global_,
            bucket=bucket,
        )

    def observe(self, observer: Callable[[RequestRecord], None]) -> None:
        """Call `observer` with each request once its route is known, before it is answered:
        a test can look at the bot's state at the moment a request reaches Discord."""
        self.rest.observers.append(observer)

    def fail_next(
        self,
        route: str,
        status: int = 500,
        *,
        times: int = 1,
        code: int = 0,
        message: str | None = None,
    ) -> FailureRule:
        """Answer the next `times` requests matching `route` with `status` (nothing is done)."""
        return self.rest.add_failure(route, status, times=times, code=code, message=message)

    async def drop_gateway(self, *, code: int | None = None, resumable: bool = True) -> None:
        """Cut the bot's gateway connection: without `code` the TCP connection is aborted, with one
        a close frame is sent. With `resumable=False` the RESUME is refused (INVALID_SESSION)."""
        await self._drain()
        await self.gateway.drop(code=code, resumable=resumable)

    def clear_rate_limits(self) -> None:
        """Drop the rules added with `rate_limit` (the default buckets stay)."""
        self.rest.rate_limits.clear()

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT, as Discord does before moving a session; the bot resumes."""
        await self._drain()
        await self.gateway.reconnect_request()

    async def send_event(self, event: str, data: JSON) -> None:
        """Dispatch a raw gateway event to the bot."""
        await self._drain()
        if not await self.gateway.dispatch(event, data):
            raise FakeDiscordError("the bot has not connected to the gateway")

    # ------------------------------------------------------------------ CDN

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        record = self.rest.record_cdn(request)
        try:
            aid = int(request.match_info["attachment_id"])
        except ValueError:
            aid = 0
        attachment = self.attachments.get(aid)
        if (
            attachment is None
            or attachment.filename != request.match_info["filename"]
            or attachment.ephemeral != request.path.startswith("/ephemeral-attachments/")
            or attachment.channel_id != request.match_info["channel_id"]
        ):
            record.status = 404
            self.notify()
            return web.Response(status=404, text="This content is no longer available.")
        record.status = 200
        self.notify()
        return web.Response(
            body=attachment.data,
            headers={"Content-Type": attachment.content_type or "application/octet-stream"},
        )
