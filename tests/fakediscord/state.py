"""What the fake Discord knows: users, guilds, channels, messages, commands and interactions, as a
test reads them and as Discord would serialize them (the `payload()` methods)."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.fakediscord.snowflake import iso

JSON = dict[str, Any]

# Discord's free-tier upload limit (per file), also the default `attachment_size_limit`.
DEFAULT_UPLOAD_LIMIT = 10_485_760

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE = 1 << 0
ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
MENTION_EVERYONE = 1 << 17
USE_EXTERNAL_EMOJIS = 1 << 18
CHANGE_NICKNAME = 1 << 26
USE_APPLICATION_COMMANDS = 1 << 31
SEND_MESSAGES_IN_THREADS = 1 << 38
ALL_PERMISSIONS = (1 << 51) - 1

DEFAULT_EVERYONE_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
    | SEND_MESSAGES_IN_THREADS
)
DEFAULT_BOT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | ADD_REACTIONS
    | SEND_MESSAGES_IN_THREADS
)
# What Discord reports as `app_permissions` in a DM with the bot.
DM_APP_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_EXTERNAL_EMOJIS
)

# Message flags.
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15

# Interaction types and callback types.
PING = 1
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
AUTOCOMPLETE = 4
MODAL_SUBMIT = 5

CALLBACK_PONG = 1
CALLBACK_CHANNEL_MESSAGE = 4
CALLBACK_DEFERRED_CHANNEL_MESSAGE = 5
CALLBACK_DEFERRED_UPDATE_MESSAGE = 6
CALLBACK_UPDATE_MESSAGE = 7
CALLBACK_AUTOCOMPLETE_RESULT = 8
CALLBACK_MODAL = 9

# Application command types and option types.
CHAT_INPUT = 1
USER_COMMAND = 2
MESSAGE_COMMAND = 3

OPT_SUB_COMMAND = 1
OPT_SUB_COMMAND_GROUP = 2
OPT_STRING = 3
OPT_INTEGER = 4
OPT_BOOLEAN = 5
OPT_USER = 6
OPT_CHANNEL = 7
OPT_ROLE = 8
OPT_MENTIONABLE = 9
OPT_NUMBER = 10
OPT_ATTACHMENT = 11


class FakeDiscordError(AssertionError):
    """A test asked the fake for something Discord would never send (an unknown command, a
    missing option, a button that is not on the message...)."""


@dataclass(eq=False)
class User:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False
    avatar: str | None = None
    accepts_dms: bool = True
    locale: str = "en-US"

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": self.avatar,
            "avatar_decoration_data": None,
            "banner": None,
            "accent_color": None,
            "public_flags": 0,
            "flags": 0,
            "collectibles": None,
            "primary_guild": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(eq=False)
class Role:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False
    bot_id: int | None = None

    @property
    def is_everyone(self) -> bool:
        return self.id == self.guild_id

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "name": self.name,
            "description": None,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": self.position,
            "permissions": str(self.permissions),
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
        }
        if self.bot_id is not None:
            data["tags"] = {"bot_id": str(self.bot_id)}
        return data


@dataclass(eq=False)
class Member:
    user: User
    guild: Guild = field(repr=False)
    roles: list[Role] = field(default_factory=list)
    nick: str | None = None
    joined_at: float = 0.0

    @property
    def permissions(self) -> int:
        """Guild-level permissions: @everyone and every role, all of them for the owner or an
        administrator."""
        if self.user.id == self.guild.owner_id:
            return ALL_PERMISSIONS
        value = self.guild.everyone.permissions
        for role in self.roles:
            value |= role.permissions
        if value & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return value

    def permissions_in(self, channel: Channel) -> int:
        base = self.permissions
        if base == ALL_PERMISSIONS:
            return base
        overwrite = channel.member_overwrites.get(self.user.id)
        if overwrite is not None:
            allow, deny = overwrite
            base = (base & ~deny) | allow
        return base

    def payload(self, *, with_permissions: int | None = None) -> JSON:
        data: JSON = {
            "user": self.user.payload(),
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "roles": [str(r.id) for r in self.roles],
            "joined_at": iso(self.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }
        if with_permissions is not None:
            data["permissions"] = str(with_permissions)
        return data


@dataclass(eq=False)
class Guild:
    id: int
    name: str
    owner_id: int
    roles: list[Role] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)
    members: dict[int, Member] = field(default_factory=dict)
    preferred_locale: str = "en-US"
    joined_at: float = 0.0

    @property
    def everyone(self) -> Role:
        return self.roles[0]

    def member(self, user: User | int) -> Member | None:
        return self.members.get(user if isinstance(user, int) else user.id)

    def payload(self) -> JSON:
        """The GUILD_CREATE payload: the guild with its channels, roles and members."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "application_id": None,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "safety_alerts_channel_id": None,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "nsfw": False,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": self.preferred_locale,
            "vanity_url_code": None,
            "max_members": 500000,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "features": [],
            "roles": [r.payload() for r in self.roles],
            "emojis": [],
            "stickers": [],
            "joined_at": iso(self.joined_at),
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "voice_states": [],
            "members": [m.payload() for m in self.members.values()],
            "channels": [c.payload() for c in self.channels],
            "threads": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "embedded_activities": [],
            "lazy": True,
            "incidents_data": None,
        }

    def partial_payload(self) -> JSON:
        """The `guild` object inside an interaction."""
        return {"id": str(self.id), "locale": self.preferred_locale, "features": []}


@dataclass(eq=False)
class Channel:
    id: int
    type: int  # 0 guild text, 1 DM
    name: str | None
    guild: Guild | None = field(default=None, repr=False)
    recipient: User | None = None
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    position: int = 0
    # user id -> (allow, deny), as Discord's member permission overwrites.
    member_overwrites: dict[int, tuple[int, int]] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)

    @property
    def is_dm(self) -> bool:
        return self.type == 1

    @property
    def guild_id(self) -> int | None:
        return self.guild.id if self.guild is not None else None

    @property
    def last_message_id(self) -> int | None:
        live = [m for m in self.messages if not m.deleted and not m.ephemeral]
        return live[-1].id if live else None

    def payload(self) -> JSON:
        last = self.last_message_id
        if self.is_dm:
            assert self.recipient is not None
            return {
                "id": str(self.id),
                "type": 1,
                "last_message_id": str(last) if last else None,
                "recipients": [self.recipient.payload()],
                "flags": 0,
            }
        assert self.guild is not None
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild.id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [
                {"id": str(uid), "type": 1, "allow": str(allow), "deny": str(deny)}
                for uid, (allow, deny) in self.member_overwrites.items()
            ],
            "topic": None,
            "nsfw": False,
            "last_message_id": str(last) if last else None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


@dataclass(eq=False)
class Upload:
    """A file a test user attaches to a command option."""

    filename: str
    data: bytes
    content_type: str | None = None
    description: str | None = None


@dataclass(eq=False)
class Attachment:
    id: int
    channel_id: str
    filename: str
    data: bytes
    url: str
    proxy_url: str
    content_type: str | None = None
    description: str | None = None
    ephemeral: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    @staticmethod
    def guess_type(filename: str) -> str | None:
        guessed, _ = mimetypes.guess_type(filename)
        return guessed

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
        }
        if self.content_type is not None:
            data["content_type"] = self.content_type
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        return data


@dataclass(eq=False)
class Message:
    """A message as the channel shows it; `history` keeps the payload before each edit."""

    id: int
    channel: Channel = field(repr=False)
    author: User
    created_at: float
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    tts: bool = False
    nonce: str | None = None
    edited_at: float | None = None
    webhook_id: int | None = None
    application_id: int | None = None
    interaction: Interaction | None = field(default=None, repr=False)
    mentions: list[User] = field(default_factory=list)
    reference: JSON | None = None
    referenced: Message | None = field(default=None, repr=False)
    deleted: bool = False
    history: list[JSON] = field(default_factory=list)

    @property
    def channel_id(self) -> int:
        return self.channel.id

    @property
    def edited(self) -> bool:
        return self.edited_at is not None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred reply: the user sees "<bot> is thinking..."."""
        return bool(self.flags & FLAG_LOADING)

    @property
    def embed(self) -> JSON | None:
        return self.embeds[0] if self.embeds else None

    def walk_components(self) -> list[JSON]:
        out: list[JSON] = []

        def walk(items: list[JSON]) -> None:
            for item in items:
                out.append(item)
                walk(item.get("components", []))
                if isinstance(item.get("component"), dict):
                    walk([item["component"]])
                if isinstance(item.get("accessory"), dict):
                    walk([item["accessory"]])

        walk(self.components)
        return out

    def component(self, custom_id: str) -> JSON | None:
        return next((c for c in self.walk_components() if c.get("custom_id") == custom_id), None)

    @property
    def buttons(self) -> list[JSON]:
        return [c for c in self.walk_components() if c.get("type") == 2]

    def attachment(self, filename: str) -> Attachment | None:
        return next((a for a in self.attachments if a.filename == filename), None)

    def payload(self, *, with_reference: bool = True) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "content": self.content,
            "channel_id": str(self.channel.id),
            "author": self.author.payload(),
            "attachments": [a.payload() for a in self.attachments],
            "embeds": self.embeds,
            "mentions": [u.payload() for u in self.mentions],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": self.tts,
            "timestamp": iso(self.created_at),
            "edited_timestamp": iso(self.edited_at) if self.edited_at is not None else None,
            "flags": self.flags,
            "components": self.components,
        }
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction is not None:
            data["interaction_metadata"] = self.interaction.metadata()
        if self.interaction is not None and self.interaction.type == APPLICATION_COMMAND:
            data["interaction"] = {
                "id": str(self.interaction.id),
                "type": self.interaction.type,
                "name": self.interaction.command_name or "",
                "user": self.interaction.user.payload(),
            }
        if self.reference is not None:
            data["message_reference"] = self.reference
            if with_reference:
                data["referenced_message"] = (
                    self.referenced.payload(with_reference=False)
                    if self.referenced is not None and not self.referenced.deleted
                    else None
                )
        return data


@dataclass(eq=False)
class Command:
    """An application command as the bot registered it (the fake's copy of Discord's schema)."""

    id: int
    application_id: int
    version: int
    guild_id: int | None
    raw: JSON

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def type(self) -> int:
        return int(self.raw.get("type", CHAT_INPUT))

    @property
    def options(self) -> list[JSON]:
        return list(self.raw.get("options") or [])

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "application_id": str(self.application_id),
            "version": str(self.version),
            "type": self.type,
            "name": self.name,
            "name_localizations": self.raw.get("name_localizations"),
            "description": self.raw.get("description", ""),
            "description_localizations": self.raw.get("description_localizations"),
            "default_member_permissions": self.raw.get("default_member_permissions"),
            "dm_permission": self.raw.get("dm_permission", True),
            "nsfw": self.raw.get("nsfw", False),
            "contexts": self.raw.get("contexts"),
            "integration_types": self.raw.get("integration_types") or [0],
        }
        if self.options:
            data["options"] = self.options
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        return data


InteractionState = Literal["pending", "deferred", "responded", "modal", "failed"]


@dataclass(eq=False)
class Interaction:
    """The test's handle on one dispatched interaction and everything the bot did with it."""

    id: int
    token: str
    type: int
    application_id: int
    user: User
    channel: Channel = field(repr=False)
    guild: Guild | None = field(repr=False)
    created_at: float
    attachment_size_limit: int
    data: JSON
    payload: JSON
    command_name: str | None = None
    source_message: Message | None = field(default=None, repr=False)
    response_type: int | None = None
    response_data: JSON | None = None
    responded_at: float | None = None
    original: Message | None = field(default=None, repr=False)
    followups: list[Message] = field(default_factory=list)
    modal: JSON | None = None
    # Successful PATCHes of this interaction's messages through its webhook.
    edits: int = 0
    # Every webhook/callback request for this interaction that Discord refused, as (status, code).
    errors: list[tuple[int, int]] = field(default_factory=list)

    @property
    def expires_at(self) -> float:
        return self.created_at + 15 * 60

    @property
    def acknowledged(self) -> bool:
        return self.response_type is not None

    @property
    def state(self) -> InteractionState:
        """pending (no answer yet), failed (answered too late), deferred (the user still sees
        "thinking..." or a deferred update was never followed by an edit), modal, responded."""
        if self.response_type is None:
            return "failed" if any(code == 10062 for _, code in self.errors) else "pending"
        if self.response_type == CALLBACK_MODAL:
            return "modal"
        original = self.original
        loading = original is not None and original.loading and not original.deleted
        if self.response_type == CALLBACK_DEFERRED_CHANNEL_MESSAGE and loading:
            return "deferred"
        if self.response_type == CALLBACK_DEFERRED_UPDATE_MESSAGE and self.edits == 0:
            return "deferred"
        return "responded"

    def metadata(self) -> JSON:
        owners: JSON = (
            {"0": str(self.guild.id)} if self.guild is not None else {"1": str(self.user.id)}
        )
        data: JSON = {
            "id": str(self.id),
            "type": self.type,
            "user": self.user.payload(),
            "authorizing_integration_owners": owners,
        }
        if self.command_name is not None and self.type == APPLICATION_COMMAND:
            data["name"] = self.command_name
            data["command_type"] = self.data.get("type", CHAT_INPUT)
        if self.source_message is not None and self.type == MESSAGE_COMPONENT:
            data["interacted_message_id"] = str(self.source_message.id)
        if self.data.get("type") == MESSAGE_COMMAND and "target_id" in self.data:
            data["target_message_id"] = self.data["target_id"]
        return data


def normalize_embeds(embeds: list[JSON]) -> list[JSON]:
    """Embeds as Discord stores them: `type` defaults to "rich"."""
    out: list[JSON] = []
    for embed in embeds:
        e = dict(embed)
        e.setdefault("type", "rich")
        out.append(e)
    return out
