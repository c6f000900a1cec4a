"""The gateway: a websocket speaking Discord's v10 protocol to one bot.

HELLO, IDENTIFY -> READY + one GUILD_CREATE per guild, heartbeat ACKs, RESUME (replaying what was
dispatched while the bot was away, then RESUMED), INVALID_SESSION for a session that cannot be
resumed, and GUILD_MEMBERS_CHUNK for member requests. IDENTIFY's `shard` [id, count] is honoured as
Discord does: each shard is its own session, whose READY lists only the guilds with
`(guild_id >> 22) % count == id`, and a guild's events (its interactions included) go to its
shard's session; direct messages go to shard 0. `compress=zlib-stream` (what discord.py asks
for) is honoured: every frame is a binary zlib chunk ending in a Z_SYNC_FLUSH, like Discord's.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from tests.fakediscord.server import FakeDiscord

JSON = dict[str, Any]

# Intent bits.
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

# Close code for an IDENTIFY whose `shard` is not [id, count] with 0 <= id < count.
INVALID_SHARD = 4010

# Opcodes.
DISPATCH = 0
HEARTBEAT = 1
IDENTIFY = 2
PRESENCE_UPDATE = 3
VOICE_STATE_UPDATE = 4
RESUME = 6
RECONNECT = 7
REQUEST_GUILD_MEMBERS = 8
INVALID_SESSION = 9
HELLO = 10
HEARTBEAT_ACK = 11


def _dumps(payload: JSON) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


@dataclass(eq=False)
class Connection:
    """One websocket connection, as a test can inspect it afterwards."""

    path: str
    query: dict[str, str]
    ws: web.WebSocketResponse = field(repr=False)
    request: web.Request = field(repr=False)
    compressor: Any = field(default=None, repr=False)
    received: list[JSON] = field(default_factory=list)
    sent: list[JSON] = field(default_factory=list)
    identified: bool = False
    resumed: bool = False
    closed: bool = False
    close_code: int | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def send(self, payload: JSON) -> None:
        text = _dumps(payload)
        async with self._lock:
            if self.ws.closed:
                raise ConnectionResetError("gateway connection closed")
            self.sent.append(payload)
            if self.compressor is not None:
                data = self.compressor.compress(text.encode()) + self.compressor.flush(
                    zlib.Z_SYNC_FLUSH
                )
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_str(text)

    async def close(self, code: int, message: str = "") -> None:
        self.close_code = code
        await self.ws.close(code=code, message=message.encode())

    def abort(self) -> None:
        """Drop the TCP connection without a close frame, like a network failure."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()


@dataclass(eq=False)
class Session:
    id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    buffer: list[tuple[int, JSON]] = field(default_factory=list, repr=False)
    conn: Connection | None = None
    resumable: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    on_change: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def shard_id(self) -> int:
        return self.shard[0] if self.shard else 0

    @property
    def shard_count(self) -> int:
        return self.shard[1] if self.shard else 1

    def owns(self, guild_id: int) -> bool:
        return (guild_id >> 22) % self.shard_count == self.shard_id

    async def dispatch(self, event: str, data: JSON) -> None:
        async with self.lock:
            self.seq += 1
            payload: JSON = {"op": DISPATCH, "t": event, "s": self.seq, "d": data}
            self.buffer.append((self.seq, payload))
            del self.buffer[:-2000]
            if self.conn is not None:
                try:
                    await self.conn.send(payload)
                except (ConnectionError, RuntimeError):
                    # Delivered on RESUME, as Discord replays what a dropped session missed.
                    self.conn = None
            if self.on_change is not None:
                self.on_change()


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.connections: list[Connection] = []
        self.sessions: dict[str, Session] = {}
        # The last session identified; with shards, each shard's current one is in `shards`.
        self.session: Session | None = None
        self.shards: dict[int, Session] = {}
        self.heartbeat_interval_ms = 41_250

    # ------------------------------------------------------------------ websocket

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = Connection(path=request.path, query=dict(request.query), ws=ws, request=request)
        self.connections.append(conn)
        self.fake.notify()
        try:
            if await self._check_query(conn):
                await conn.send(
                    {
                        "op": HELLO,
                        "d": {
                            "heartbeat_interval": self.heartbeat_interval_ms,
                            "_trace": ['["gateway-prd-fake",{"micros":0}]'],
                        },
                        "s": None,
                        "t": None,
                    }
                )
                async for msg in ws:
                    if msg.type is WSMsgType.TEXT:
                        await self._on_message(conn, msg.data)
                    elif msg.type is WSMsgType.BINARY:
                        await conn.close(4002, "Decode error")
                    else:
                        break
        except (ConnectionError, RuntimeError):
            pass
        finally:
            conn.closed = True
            if conn.close_code is None:
                conn.close_code = ws.close_code
            for session in self.shards.values():
                if session.conn is conn:
                    session.conn = None
            self.fake.notify()
        return ws

    async def _check_query(self, conn: Connection) -> bool:
        q = conn.query
        if q.get("v") != "10":
            await conn.close(4012, "Invalid API version")
            return False
        if q.get("encoding", "json") != "json":
            await conn.close(4002, "Decode error")
            return False
        compress = q.get("compress")
        if compress == "zlib-stream":
            conn.compressor = zlib.compressobj()
        elif compress is not None:
            await conn.close(4000, "Unknown compression")
            return False
        return True

    async def _on_message(self, conn: Connection, text: str) -> None:
        try:
            msg = json.loads(text)
            op = msg["op"]
            data = msg.get("d")
        except (ValueError, KeyError, TypeError):
            await conn.close(4002, "Decode error")
            return
        conn.received.append(msg)
        self.fake.notify()
        if op == HEARTBEAT:
            await conn.send({"op": HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == IDENTIFY:
            await self._identify(conn, data)
        elif op == RESUME:
            await self._resume(conn, data)
        elif op == REQUEST_GUILD_MEMBERS:
            await self._request_members(conn, data)
        elif op in (PRESENCE_UPDATE, VOICE_STATE_UPDATE):
            if not (conn.identified or conn.resumed):
                await conn.close(4003, "Not authenticated")
        else:
            await conn.close(4001, "Unknown opcode")

    async def _identify(self, conn: Connection, data: Any) -> None:
        fake = self.fake
        if conn.identified or conn.resumed:
            await conn.close(4005, "Already authenticated")
            return
        if not isinstance(data, dict) or data.get("token") != fake.token:
            await conn.close(4004, "Authentication failed")
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0 or intents >= 1 << 26:
            await conn.close(4013, "Invalid intent(s)")
            return
        if intents & PRIVILEGED_INTENTS & ~fake.privileged_intents:
            await conn.close(4014, "Disallowed intent(s)")
            return
        shard = data.get("shard")
        if shard is not None and not (
            isinstance(shard, list)
            and len(shard) == 2
            and all(type(n) is int for n in shard)
            and 0 <= shard[0] < shard[1]
        ):
            await conn.close(INVALID_SHARD, "Invalid shard")
            return
        session = Session(
            id=secrets.token_hex(16), intents=intents, shard=shard, on_change=fake.notify
        )
        previous = self.shards.get(session.shard_id)
        if previous is not None:
            previous.resumable = False
            previous.conn = None
        self.sessions[session.id] = session
        self.session = session
        self.shards[session.shard_id] = session
        conn.identified = True
        async with session.lock:
            session.conn = conn
        ready: JSON = {
            "v": 10,
            "user": fake.bot_user_payload(),
            "user_settings": {},
            "guilds": [
                {"id": str(g.id), "unavailable": True} for g in fake.guilds if session.owns(g.id)
            ],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": fake.resume_gateway_url,
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "auth": {},
            "application": {"id": str(fake.application_id), "flags": fake.application_flags},
            "_trace": ['["gateway-prd-fake",{"micros":0}]'],
        }
        if shard is not None:
            ready["shard"] = shard
        await session.dispatch("READY", ready)
        for guild in fake.guilds:
            if session.owns(guild.id):
                await session.dispatch("GUILD_CREATE", guild.payload())
        fake.notify()

    async def _resume(self, conn: Connection, data: Any) -> None:
        fake = self.fake
        if conn.identified or conn.resumed:
            await conn.close(4005, "Already authenticated")
            return
        if not isinstance(data, dict) or data.get("token") != fake.token:
            await conn.close(4004, "Authentication failed")
            return
        session = self.sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        if (
            session is None
            or self.shards.get(session.shard_id) is not session
            or not session.resumable
            or not isinstance(seq, int)
            or seq > session.seq
            or (session.buffer and seq < session.buffer[0][0] - 1)
        ):
            await conn.send({"op": INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        async with session.lock:
            for s, payload in session.buffer:
                if s > seq:
                    await conn.send(payload)
            session.seq += 1
            resumed: JSON = {"op": DISPATCH, "t": "RESUMED", "s": session.seq, "d": {"_trace": []}}
            session.buffer.append((session.seq, resumed))
            await conn.send(resumed)
            session.conn = conn
            conn.resumed = True
        fake.notify()

    async def _request_members(self, conn: Connection, data: Any) -> None:
        if not isinstance(data, dict):
            return
        guild = self.fake.guild(int(data.get("guild_id", 0)))
        session = self.session_for(None if guild is None else guild.id)
        if guild is None or session is None:
            return
        members = list(guild.members.values())
        user_ids = data.get("user_ids")
        if user_ids is not None:
            wanted = {int(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])}
            members = [m for m in members if m.user.id in wanted]
        else:
            query = str(data.get("query", "")).lower()
            members = [m for m in members if m.user.username.lower().startswith(query)]
            limit = int(data.get("limit") or 0)
            if limit:
                members = members[:limit]
        chunk: JSON = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("presences"):
            chunk["presences"] = []
        if "nonce" in data:
            chunk["nonce"] = data["nonce"]
        await session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # ------------------------------------------------------------------ test controls

    @property
    def live(self) -> bool:
        """Every shard the bot identified is connected."""
        return bool(self.shards) and all(self.shard_live(i) for i in self.shards)

    def shard_live(self, shard_id: int) -> bool:
        s = self.shards.get(shard_id)
        return s is not None and s.conn is not None and not s.conn.closed

    def session_for(self, guild_id: int | None) -> Session | None:
        """The session a guild's events go to (shard 0's for events outside any guild), or None
        when the bot runs no such shard."""
        session = self.session
        if session is None:
            return None
        shard_id = 0 if guild_id is None else (guild_id >> 22) % session.shard_count
        return self.shards.get(shard_id)

    async def dispatch(self, event: str, data: JSON, *, intent: int = 0) -> bool:
        """Send an event to the session of the shard it belongs to (buffered while it is
        disconnected). Returns False when that session did not subscribe to `intent` or the bot
        runs no such shard."""
        guild_id = data.get("id") if event.startswith("GUILD_") else None
        guild_id = data.get("guild_id", guild_id)
        session = self.session_for(None if guild_id is None else int(guild_id))
        if session is None:
            return False
        if intent and not session.intents & intent:
            return False
        await session.dispatch(event, data)
        return True

    async def drop(self, *, code: int | None = None, resumable: bool = True) -> None:
        session = self.session
        if session is None or session.conn is None:
            raise RuntimeError("the bot has no live gateway connection to drop")
        conn = session.conn
        async with session.lock:
            session.conn = None
            session.resumable = resumable
        if code is None:
            conn.abort()
        else:
            await conn.close(code, "dropped by the test")

    async def reconnect_request(self) -> None:
        """Send op 7 RECONNECT, as Discord does before moving a session."""
        session = self.session
        if session is None or session.conn is None:
            raise RuntimeError("no live gateway connection")
        await session.conn.send({"op": RECONNECT, "d": None, "s": None, "t": None})

    async def close_all(self) -> None:
        for conn in self.connections:
            if not conn.ws.closed:
                conn.abort()
