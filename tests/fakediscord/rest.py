"""The REST API under /api/v10: routing, the request log, injected failures, rate limits with
Discord's headers, and the handlers. Responses are JSON with `Content-Type: application/json`
exactly (discord.py treats `application/json; charset=utf-8` as text) and errors have Discord's
`{"message", "code"}` shape."""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from tests.fakediscord.snowflake import snowflake_time
from tests.fakediscord.state import (
    APPLICATION_COMMAND,
    ATTACH_FILES,
    AUTOCOMPLETE,
    CALLBACK_AUTOCOMPLETE_RESULT,
    CALLBACK_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_CHANNEL_MESSAGE,
    CALLBACK_DEFERRED_UPDATE_MESSAGE,
    CALLBACK_MODAL,
    CALLBACK_UPDATE_MESSAGE,
    CHAT_INPUT,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    JSON,
    MANAGE_MESSAGES,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    VIEW_CHANNEL,
    Attachment,
    Channel,
    Interaction,
    Message,
    normalize_embeds,
)
from tests.fakediscord.validate import (
    ApiError,
    FormErrors,
    check_commands,
    check_message,
)

if TYPE_CHECKING:
    from tests.fakediscord.server import FakeDiscord

# "A few minutes" in Discord's docs for `enforce_nonce`.
NONCE_WINDOW_SECONDS = 5 * 60
CALLBACK_DEADLINE_SECONDS = 3.0


@dataclass
class UploadedFile:
    field: str
    filename: str
    content_type: str
    data: bytes


@dataclass
class RequestRecord:
    """One request as the fake saw it and what it answered."""

    method: str
    path: str
    route: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    files: list[UploadedFile]
    at: float
    status: int = 0
    response: Any = None

    @property
    def key(self) -> str:
        """`"METHOD /template"`, e.g. `"POST /channels/{channel_id}/messages"`."""
        return f"{self.method} {self.route}"

    @property
    def line(self) -> str:
        return f"{self.method} {self.path}"

    def __str__(self) -> str:
        files = f" +{len(self.files)} file(s)" if self.files else ""
        return f"{self.line}{files} -> {self.status}"


@dataclass
class RateLimitRule:
    route: str
    limit: int
    remaining: int
    reset_after: float
    global_: bool
    bucket: str
    reset_at: float | None = None
    hits: int = 0  # how many 429s it answered


@dataclass
class FailureRule:
    route: str
    status: int
    times: int
    code: int
    message: str
    hits: int = 0


@dataclass
class Call:
    request: web.Request
    record: RequestRecord
    params: dict[str, str]
    body: Any
    files: list[UploadedFile]

    def param_int(self, name: str) -> int:
        try:
            return int(self.params[name])
        except ValueError:
            raise ApiError(404, 0, "404: Not Found") from None


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Reply]]

NOT_FOUND = ApiError(404, 0, "404: Not Found")


def _matches(pattern: str, key: str, line: str) -> bool:
    return (
        pattern in (key, "*")
        or fnmatch.fnmatchcase(line, pattern)
        or fnmatch.fnmatchcase(key, pattern)
    )


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    out = dict(headers or {})
    if status == 204 or body is None:
        return web.Response(status=status, headers=out)
    out["Content-Type"] = "application/json"
    return web.Response(status=status, body=json.dumps(body).encode(), headers=out)


class Rest:
    def __init__(self, fake: FakeDiscord, *, default_rate_limit: tuple[int, float]) -> None:
        self.fake = fake
        self.log: list[RequestRecord] = []
        self.rate_limits: list[RateLimitRule] = []
        self.failures: list[FailureRule] = []
        # Called with each routed request before it is answered (see FakeDiscord.observe).
        self.observers: list[Callable[[RequestRecord], None]] = []
        self.default_limit, self.default_window = default_rate_limit
        self._default_buckets: dict[str, RateLimitRule] = {}
        self._routes: list[tuple[str, re.Pattern[str], str, Handler, bool]] = []
        self._build_routes()

    # ------------------------------------------------------------------ routing

    def _route(self, method: str, template: str, handler: Handler, *, auth: bool = True) -> None:
        pattern = re.escape(template)
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{pattern}$"), template, handler, auth))

    def _build_routes(self) -> None:
        r = self._route
        r("GET", "/users/@me", self.get_me)
        r("GET", "/oauth2/applications/@me", self.get_application)
        r("GET", "/applications/@me", self.get_application)
        r("GET", "/gateway", self.get_gateway, auth=False)
        r("GET", "/gateway/bot", self.get_gateway_bot)
        r("POST", "/users/@me/channels", self.create_dm)
        r("GET", "/users/{user_id}", self.get_user)
        app = "/applications/{application_id}"
        for prefix in (app, f"{app}/guilds/{{guild_id}}"):
            r("GET", f"{prefix}/commands", self.get_commands)
            r("PUT", f"{prefix}/commands", self.put_commands)
            r("POST", f"{prefix}/commands", self.post_command)
            r("GET", f"{prefix}/commands/{{command_id}}", self.get_command)
            r("PATCH", f"{prefix}/commands/{{command_id}}", self.patch_command)
            r("DELETE", f"{prefix}/commands/{{command_id}}", self.delete_command)
        r("GET", "/guilds/{guild_id}", self.get_guild)
        r("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        r("GET", "/guilds/{guild_id}/roles", self.get_guild_roles)
        r("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)
        r("GET", "/channels/{channel_id}", self.get_channel)
        r("POST", "/channels/{channel_id}/typing", self.typing)
        r("GET", "/channels/{channel_id}/messages", self.get_messages)
        r("POST", "/channels/{channel_id}/messages", self.create_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        r(
            "POST",
            "/interactions/{interaction_id}/{interaction_token}/callback",
            self.interaction_callback,
            auth=False,
        )
        hook = "/webhooks/{webhook_id}/{webhook_token}"
        r("POST", hook, self.followup, auth=False)
        r("GET", f"{hook}/messages/{{message_id}}", self.get_webhook_message, auth=False)
        r("PATCH", f"{hook}/messages/{{message_id}}", self.edit_webhook_message, auth=False)
        r("DELETE", f"{hook}/messages/{{message_id}}", self.delete_webhook_message, auth=False)

    def _match(self, method: str, path: str) -> tuple[str, dict[str, str], Handler, bool] | None:
        for m, regex, template, handler, auth in self._routes:
            if m != method:
                continue
            found = regex.match(path)
            if found:
                return template, found.groupdict(), handler, auth
        return None

    # ------------------------------------------------------------------ faults

    def add_rate_limit(
        self,
        route: str,
        *,
        remaining: int,
        reset_after: float,
        limit: int,
        global_: bool,
        bucket: str | None,
    ) -> RateLimitRule:
        rule = RateLimitRule(
            route=route,
            limit=limit,
            remaining=remaining,
            reset_after=reset_after,
            global_=global_,
            bucket=bucket or f"fake{len(self.rate_limits):04x}",
        )
        self.rate_limits.append(rule)
        return rule

    def add_failure(
        self, route: str, status: int, *, times: int, code: int, message: str | None
    ) -> FailureRule:
        rule = FailureRule(
            route=route,
            status=status,
            times=times,
            code=code,
            message=message
            or {500: "500: Internal Server Error", 502: "502: Bad Gateway"}.get(
                status, f"{status}: injected by the test"
            ),
        )
        self.failures.append(rule)
        return rule

    def _bucket_for(self, key: str, line: str, major: str) -> RateLimitRule:
        for rule in reversed(self.rate_limits):
            if _matches(rule.route, key, line):
                return rule
        bucket_key = f"{key}:{major}"
        default = self._default_buckets.get(bucket_key)
        if default is None:
            digest = f"{abs(hash(key)) & 0xFFFFFFFF:08x}"
            default = RateLimitRule(
                route=key,
                limit=self.default_limit,
                remaining=self.default_limit,
                reset_after=self.default_window,
                global_=False,
                bucket=digest,
            )
            self._default_buckets[bucket_key] = default
        return default

    @staticmethod
    def _consume(rule: RateLimitRule) -> tuple[bool, dict[str, str], float]:
        """Take a token. Returns (allowed, headers, retry_after)."""
        now = asyncio.get_running_loop().time()
        if rule.reset_at is not None and now >= rule.reset_at:
            rule.remaining = rule.limit
            rule.reset_at = None
        if rule.reset_at is None:
            rule.reset_at = now + rule.reset_after
        reset_after = max(rule.reset_at - now, 0.0)
        allowed = rule.remaining > 0
        if allowed:
            rule.remaining -= 1
        headers = {
            "X-RateLimit-Limit": str(rule.limit),
            "X-RateLimit-Remaining": str(max(rule.remaining, 0)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": rule.bucket,
        }
        return allowed, headers, reset_after

    # ------------------------------------------------------------------ request pipeline

    def record_cdn(self, request: web.Request) -> RequestRecord:
        record = RequestRecord(
            method=request.method,
            path=request.path,
            route="CDN " + request.path.split("/")[1],
            params=dict(request.match_info),
            query=dict(request.query),
            headers=dict(request.headers),
            json=None,
            files=[],
            at=self.fake.clock.now(),
        )
        self.log.append(record)
        return record

    async def _read_body(self, request: web.Request) -> tuple[Any, list[UploadedFile]]:
        ctype = request.content_type
        if ctype.startswith("multipart/"):
            body: Any = None
            files: list[UploadedFile] = []
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):  # nested multipart
                    continue
                data = await part.read(decode=False)
                name = part.name or ""
                if name == "payload_json":
                    body = json.loads(bytes(data).decode())
                elif part.filename is not None:
                    files.append(
                        UploadedFile(
                            field=name,
                            filename=part.filename,
                            content_type=part.headers.get(
                                "Content-Type", "application/octet-stream"
                            ),
                            data=bytes(data),
                        )
                    )
            return body, files
        raw = await request.read()
        if not raw:
            return None, []
        if ctype != "application/json":
            raise ApiError(400, 50109, "The request body contains invalid JSON.")
        return json.loads(raw), []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        fake = self.fake
        path = request.path
        record = RequestRecord(
            method=request.method,
            path=path,
            route="?",
            params={},
            query=dict(request.query),
            headers=dict(request.headers),
            json=None,
            files=[],
            at=fake.clock.now(),
        )
        self.log.append(record)
        headers: dict[str, str] = {}
        try:
            try:
                record.json, record.files = await self._read_body(request)
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
            if not path.startswith("/api/v10/"):
                raise NOT_FOUND
            sub = path[len("/api/v10") :]
            found = self._match(request.method, sub)
            if found is None:
                if self._path_known(sub) is not None:
                    raise ApiError(405, 0, "405: Method Not Allowed")
                raise NOT_FOUND
            template, params, handler, auth = found
            record.route, record.params = template, params
            for observe in self.observers:
                observe(record)
            if auth and request.headers.get("Authorization") != f"Bot {fake.token}":
                raise ApiError(401, 0, "401: Unauthorized")
            key, line = record.key, record.line
            for failure in self.failures:
                if failure.times > 0 and _matches(failure.route, key, line):
                    failure.times -= 1
                    failure.hits += 1
                    raise ApiError(failure.status, failure.code, failure.message)
            major = "+".join(
                params[k]
                for k in ("channel_id", "guild_id", "webhook_id", "webhook_token", "interaction_id")
                if k in params
            )
            rule = self._bucket_for(key, line, major)
            allowed, headers, retry_after = self._consume(rule)
            if not allowed:
                rule.hits += 1
                scope = "global" if rule.global_ else "user"
                limited: dict[str, str] = {
                    **headers,
                    "Retry-After": str(max(1, int(retry_after + 0.999))),
                    "X-RateLimit-Scope": scope,
                    "Via": "1.1 google",
                }
                if rule.global_:
                    limited["X-RateLimit-Global"] = "true"
                body = {
                    "message": "You are being rate limited.",
                    "retry_after": round(retry_after, 3),
                    "global": rule.global_,
                }
                if rule.global_:
                    body["code"] = 0
                record.status, record.response = 429, body
                return json_response(429, body, limited)
            reply = await handler(
                Call(
                    request=request,
                    record=record,
                    params=params,
                    body=record.json,
                    files=record.files,
                )
            )
            record.status, record.response = reply.status, reply.body
            return json_response(reply.status, reply.body, {**headers, **reply.headers})
        except ApiError as exc:
            record.status, record.response = exc.status, exc.body()
            return json_response(exc.status, exc.body(), {**headers, **exc.headers})
        finally:
            fake.notify()

    def _path_known(self, path: str) -> str | None:
        for _m, regex, template, _h, _a in self._routes:
            if regex.match(path):
                return template
        return None

    # ------------------------------------------------------------------ lookups

    def _channel(self, call: Call, *, need: int = VIEW_CHANNEL) -> Channel:
        channel = self.fake.channels.get(call.param_int("channel_id"))
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        if channel.guild is not None:
            perms = self.fake.bot_permissions_in(channel)
            if not perms & VIEW_CHANNEL:
                raise ApiError(403, 50001, "Missing Access")
            if perms & need != need:
                raise ApiError(403, 50013, "Missing Permissions")
        return channel

    def _channel_message(self, channel: Channel, call: Call) -> Message:
        try:
            mid = int(call.params["message_id"])
        except ValueError:
            raise ApiError(404, 10008, "Unknown Message") from None
        message = self.fake.messages.get(mid)
        if (
            message is None
            or message.deleted
            or message.channel is not channel
            or message.ephemeral
        ):
            raise ApiError(404, 10008, "Unknown Message")
        return message

    def _guild_for_app(self, call: Call) -> int | None:
        if call.params.get("application_id") != str(self.fake.application_id):
            raise ApiError(403, 50001, "Missing Access")
        gid = call.params.get("guild_id")
        if gid is None:
            return None
        guild = self.fake.guild(call.param_int("guild_id"))
        if guild is None:
            raise ApiError(403, 50001, "Missing Access")
        return guild.id

    # ------------------------------------------------------------------ users, app, gateway

    async def get_me(self, call: Call) -> Reply:
        return Reply(200, self.fake.bot_user_payload())

    async def get_application(self, call: Call) -> Reply:
        return Reply(200, self.fake.application_payload())

    async def get_gateway(self, call: Call) -> Reply:
        return Reply(200, {"url": self.fake.gateway_url.rstrip("/")})

    async def get_gateway_bot(self, call: Call) -> Reply:
        return Reply(
            200,
            {
                "url": self.fake.gateway_url.rstrip("/"),
                "shards": 1,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 999,
                    "reset_after": 86_400_000,
                    "max_concurrency": 1,
                },
            },
        )

    async def get_user(self, call: Call) -> Reply:
        user = self.fake.users.get(call.param_int("user_id"))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return Reply(200, user.payload())

    async def create_dm(self, call: Call) -> Reply:
        body = call.body if isinstance(call.body, dict) else {}
        try:
            user = self.fake.users.get(int(body.get("recipient_id", 0)))
        except (TypeError, ValueError):
            user = None
        if user is None or user.id == self.fake.bot_user.id:
            raise ApiError(400, 50033, "Invalid Recipient(s)")
        return Reply(200, self.fake.dm_channel(user).payload())

    # ------------------------------------------------------------------ guilds

    def _guild(self, call: Call) -> Any:
        guild = self.fake.guild(call.param_int("guild_id"))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    async def get_guild(self, call: Call) -> Reply:
        data = self._guild(call).payload()
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at"):
            data.pop(key, None)
        return Reply(200, data)

    async def get_guild_channels(self, call: Call) -> Reply:
        return Reply(200, [c.payload() for c in self._guild(call).channels])

    async def get_guild_roles(self, call: Call) -> Reply:
        return Reply(200, [r.payload() for r in self._guild(call).roles])

    async def get_member(self, call: Call) -> Reply:
        member = self._guild(call).member(call.param_int("user_id"))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return Reply(200, member.payload())

    # ------------------------------------------------------------------ commands

    async def get_commands(self, call: Call) -> Reply:
        gid = self._guild_for_app(call)
        guild = self.fake.guild(gid) if gid is not None else None
        return Reply(200, [c.payload() for c in self.fake.commands(guild)])

    async def put_commands(self, call: Call) -> Reply:
        gid = self._guild_for_app(call)
        check_commands(call.body)
        guild = self.fake.guild(gid) if gid is not None else None
        return Reply(
            200, [c.payload() for c in self.fake.register_commands(call.body, guild=guild)]
        )

    def _pool(self, call: Call) -> tuple[Any, list[JSON]]:
        gid = self._guild_for_app(call)
        guild = self.fake.guild(gid) if gid is not None else None
        return guild, [c.raw for c in self.fake.commands(guild)]

    async def post_command(self, call: Call) -> Reply:
        guild, raws = self._pool(call)
        body = call.body
        check_commands([body])
        existed = any(
            r["name"] == body.get("name") and r.get("type", 1) == body.get("type", 1) for r in raws
        )
        raws = [
            r
            for r in raws
            if not (r["name"] == body.get("name") and r.get("type", 1) == body.get("type", 1))
        ]
        commands = self.fake.register_commands([*raws, body], guild=guild)
        return Reply(200 if existed else 201, commands[-1].payload())

    def _command(self, call: Call) -> Any:
        guild, _ = self._pool(call)
        cid = call.param_int("command_id")
        cmd = next((c for c in self.fake.commands(guild) if c.id == cid), None)
        if cmd is None:
            raise ApiError(404, 10063, "Unknown application command")
        return guild, cmd

    async def get_command(self, call: Call) -> Reply:
        _, cmd = self._command(call)
        return Reply(200, cmd.payload())

    async def patch_command(self, call: Call) -> Reply:
        guild, cmd = self._command(call)
        raw = {**cmd.raw, **(call.body or {})}
        check_commands([raw])
        raws = [raw if c is cmd else c.raw for c in self.fake.commands(guild)]
        commands = self.fake.register_commands(raws, guild=guild)
        return Reply(200, next(c for c in commands if c.id == cmd.id).payload())

    async def delete_command(self, call: Call) -> Reply:
        guild, cmd = self._command(call)
        self.fake.register_commands(
            [c.raw for c in self.fake.commands(guild) if c is not cmd], guild=guild
        )
        return Reply(204)

    # ------------------------------------------------------------------ channels and messages

    async def get_channel(self, call: Call) -> Reply:
        return Reply(200, self._channel(call).payload())

    async def typing(self, call: Call) -> Reply:
        self._channel(call, need=VIEW_CHANNEL | SEND_MESSAGES)
        return Reply(204)

    async def get_messages(self, call: Call) -> Reply:
        channel = self._channel(call)
        if (
            channel.guild is not None
            and not self.fake.bot_permissions_in(channel) & READ_MESSAGE_HISTORY
        ):
            return Reply(200, [])
        q = call.request.query
        try:
            limit = int(q.get("limit", "50"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            errors = FormErrors()
            errors.add(["limit"], "NUMBER_TYPE_MAX", "int value should be between 1 and 100.")
            errors.raise_if_any()
        visible = [m for m in channel.messages if not m.deleted and not m.ephemeral]
        if "before" in q:
            visible = [m for m in visible if m.id < int(q["before"])]
            picked = visible[-limit:]
        elif "after" in q:
            picked = [m for m in visible if m.id > int(q["after"])][:limit]
        elif "around" in q:
            around = int(q["around"])
            older = [m for m in visible if m.id < around][-(limit // 2) :] if limit > 1 else []
            newer = [m for m in visible if m.id >= around][: limit - len(older)]
            picked = older + newer
        else:
            picked = visible[-limit:]
        return Reply(200, [m.payload() for m in sorted(picked, key=lambda m: -m.id)])

    async def get_message(self, call: Call) -> Reply:
        channel = self._channel(call, need=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
        return Reply(200, self._channel_message(channel, call).payload())

    def _store_files(
        self,
        call: Call,
        channel: Channel,
        payload: JSON,
        *,
        limit: int,
        keep: list[Attachment] | None,
    ) -> list[Attachment]:
        """Check every uploaded file against `limit` (413 / 40005 like Discord), then build the
        message's attachment list: kept attachments (`attachments: [{id: <snowflake>}]`) and the
        uploads (`files[n]` described by `attachments: [{id: n, ...}]`)."""
        for f in call.files:
            if len(f.data) > limit:
                raise ApiError(413, 40005, "Request entity too large")
        described: dict[int, JSON] = {}
        kept: list[Attachment] = []
        entries = payload.get("attachments")
        existing = {a.id: a for a in keep or []}
        if isinstance(entries, list):
            for entry in entries:
                try:
                    aid = int(entry.get("id"))
                except (TypeError, ValueError, AttributeError):
                    continue
                if aid in existing:
                    kept.append(existing[aid])
                else:
                    described[aid] = entry
        elif keep is not None:
            kept = list(keep)
        new: list[Attachment] = []
        for f in call.files:
            m = re.fullmatch(r"files\[(\d+)\]", f.field) or re.fullmatch(r"file(\d*)", f.field)
            index = int(m.group(1) or 0) if m else len(new)
            entry = described.get(index, {})
            new.append(
                self.fake.store_attachment(
                    channel,
                    str(entry.get("filename") or f.filename),
                    f.data,
                    description=entry.get("description"),
                )
            )
        return kept + new

    def _reference(self, channel: Channel, payload: JSON) -> tuple[JSON | None, Message | None]:
        ref = payload.get("message_reference")
        if not isinstance(ref, dict):
            return None, None
        try:
            target = self.fake.messages.get(int(ref.get("message_id", 0)))
        except (TypeError, ValueError):
            target = None
        if target is None or target.deleted or target.ephemeral or target.channel is not channel:
            if ref.get("fail_if_not_exists", True):
                errors = FormErrors()
                errors.add(
                    ["message_reference"], "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                )
                errors.raise_if_any()
            return None, None
        data: JSON = {
            "type": 0,
            "channel_id": str(channel.id),
            "message_id": str(target.id),
        }
        if channel.guild is not None:
            data["guild_id"] = str(channel.guild.id)
        return data, target

    async def create_message(self, call: Call) -> Reply:
        fake = self.fake
        channel = self._channel(call, need=VIEW_CHANNEL | SEND_MESSAGES)
        payload = call.body if isinstance(call.body, dict) else {}
        attach = fake.bot_permissions_in(channel) & ATTACH_FILES
        if call.files and channel.guild is not None and not attach:
            raise ApiError(403, 50013, "Missing Permissions")
        if channel.is_dm and channel.recipient is not None and not channel.recipient.accepts_dms:
            raise ApiError(403, 50007, "Cannot send messages to this user")
        check_message(payload, file_count=len(call.files), creating=True)
        flags = int(payload.get("flags") or 0)
        if flags & (FLAG_EPHEMERAL | FLAG_LOADING):
            errors = FormErrors()
            errors.add(["flags"], "MESSAGE_FLAGS_INVALID", "Invalid flags")
            errors.raise_if_any()
        nonce = payload.get("nonce")
        nonce_str = str(nonce) if nonce is not None else None
        if nonce_str is not None and payload.get("enforce_nonce"):
            now = fake.clock.now()
            for m in reversed(channel.messages):
                if (
                    m.nonce == nonce_str
                    and m.author.id == fake.bot_user.id
                    and not m.deleted
                    and now - m.created_at <= NONCE_WINDOW_SECONDS
                ):
                    return Reply(200, m.payload())
        reference, referenced = self._reference(channel, payload)
        attachments = self._store_files(
            call, channel, payload, limit=channel.upload_limit, keep=None
        )
        content = payload.get("content") or ""
        mentions = fake.resolve_mentions(content, payload.get("allowed_mentions"), None)
        allowed = payload.get("allowed_mentions")
        # Inside an allowed_mentions object Discord defaults replied_user to false.
        ping_author = allowed is None or bool(allowed.get("replied_user", False))
        if referenced is not None and ping_author and referenced.author not in mentions:
            mentions.append(referenced.author)
        message = fake.new_message(
            channel,
            fake.bot_user,
            content=content,
            embeds=payload.get("embeds") or [],
            components=payload.get("components") or [],
            attachments=attachments,
            flags=flags,
            type=19 if reference is not None else 0,
            nonce=nonce_str,
            mentions=mentions,
            reference=reference,
            referenced=referenced,
            tts=bool(payload.get("tts")),
        )
        await fake.emit_message("MESSAGE_CREATE", message)
        return Reply(200, message.payload())

    def _apply_edit(
        self,
        call: Call,
        message: Message,
        payload: JSON,
        *,
        limit: int,
        resolve_loading: bool = True,
    ) -> None:
        """PATCH semantics: present keys replace, absent keys stay."""
        loading = message.loading
        existing = 0 if "attachments" in payload else len(message.attachments)
        check_message(
            payload, file_count=len(call.files), creating=False, existing_attachments=existing
        )
        attachments = self._store_files(
            call, message.channel, payload, limit=limit, keep=message.attachments
        )
        after_content = (payload.get("content") or "") if "content" in payload else message.content
        after_embeds = payload.get("embeds") or [] if "embeds" in payload else message.embeds
        after_components = (
            payload.get("components") or [] if "components" in payload else message.components
        )
        if not (after_content or after_embeds or attachments or after_components):
            raise ApiError(400, 50006, "Cannot send an empty message")
        message.history.append(message.payload())
        message.content = after_content
        if "embeds" in payload:
            message.embeds = normalize_embeds(after_embeds)
        message.components = after_components
        message.attachments = attachments
        if "flags" in payload and payload["flags"] is not None:
            keep = message.flags & (FLAG_EPHEMERAL | FLAG_LOADING)
            message.flags = keep | (int(payload["flags"]) & ~(FLAG_EPHEMERAL | FLAG_LOADING))
        if "allowed_mentions" in payload or "content" in payload:
            message.mentions = self.fake.resolve_mentions(
                message.content, payload.get("allowed_mentions"), None
            )
        if loading and resolve_loading:
            # The "thinking..." placeholder becomes the reply; that is not an edit.
            message.flags &= ~FLAG_LOADING
        else:
            message.edited_at = self.fake.clock.now()
        self.fake.notify()

    async def edit_message(self, call: Call) -> Reply:
        channel = self._channel(call)
        message = self._channel_message(channel, call)
        if message.author.id != self.fake.bot_user.id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        payload = call.body if isinstance(call.body, dict) else {}
        self._apply_edit(call, message, payload, limit=channel.upload_limit)
        await self.fake.emit_message("MESSAGE_UPDATE", message)
        return Reply(200, message.payload())

    async def delete_message(self, call: Call) -> Reply:
        channel = self._channel(call)
        message = self._channel_message(channel, call)
        may_manage = not channel.is_dm and self.fake.bot_permissions_in(channel) & MANAGE_MESSAGES
        if message.author.id != self.fake.bot_user.id and not may_manage:
            raise ApiError(403, 50013, "Missing Permissions")
        await self._delete(message)
        return Reply(204)

    async def _delete(self, message: Message) -> None:
        message.deleted = True
        self.fake.notify()
        await self.fake.emit_delete(message)

    # ------------------------------------------------------------------ interactions

    def _interaction_for_webhook(self, call: Call) -> Interaction:
        fake = self.fake
        interaction = fake.interactions_by_token.get(call.params["webhook_token"])
        if interaction is None:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        if call.params["webhook_id"] != str(fake.application_id):
            raise ApiError(404, 10015, "Unknown Webhook")
        if fake.clock.now() > interaction.expires_at:
            interaction.errors.append((401, 50027))
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return interaction

    def _message_type(self, interaction: Interaction) -> int:
        if interaction.type == APPLICATION_COMMAND:
            return 20 if interaction.data.get("type", CHAT_INPUT) == CHAT_INPUT else 23
        return 0

    async def interaction_callback(self, call: Call) -> Reply:
        fake = self.fake
        try:
            interaction = fake.interactions.get(int(call.params["interaction_id"]))
        except ValueError:
            interaction = None
        if interaction is None or interaction.token != call.params["interaction_token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        try:
            return await self._callback(call, interaction)
        except ApiError as exc:
            interaction.errors.append((exc.status, exc.code))
            raise

    async def _callback(self, call: Call, interaction: Interaction) -> Reply:
        fake = self.fake
        if fake.clock.now() - snowflake_time(interaction.id) > CALLBACK_DEADLINE_SECONDS:
            raise ApiError(404, 10062, "Unknown interaction")
        if interaction.response_type is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        body = call.body if isinstance(call.body, dict) else {}
        rtype = body.get("type")
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        assert isinstance(data, dict)
        allowed = {
            APPLICATION_COMMAND: {4, 5, 9},
            MESSAGE_COMPONENT: {4, 5, 6, 7, 9},
            MODAL_SUBMIT: {4, 5, 6, 7},
            AUTOCOMPLETE: {CALLBACK_AUTOCOMPLETE_RESULT},
        }.get(interaction.type, set())
        if rtype in (6, 7) and interaction.source_message is None:
            allowed = allowed - {6, 7}
        if rtype not in allowed:
            errors = FormErrors()
            errors.add(
                ["type"], "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type"
            )
            errors.raise_if_any()
        limit = interaction.attachment_size_limit
        channel = interaction.channel
        message: Message | None = None
        if rtype == CALLBACK_CHANNEL_MESSAGE:
            check_message(data, file_count=len(call.files), creating=True)
            attachments = self._store_files(call, channel, data, limit=limit, keep=None)
            content = data.get("content") or ""
            message = fake.new_message(
                channel,
                fake.bot_user,
                content=content,
                embeds=data.get("embeds") or [],
                components=data.get("components") or [],
                attachments=attachments,
                flags=int(data.get("flags") or 0) & (FLAG_EPHEMERAL | 1 << 2 | 1 << 12 | 1 << 15),
                type=self._message_type(interaction),
                webhook_id=fake.application_id,
                interaction=interaction,
                mentions=fake.resolve_mentions(content, data.get("allowed_mentions"), None),
                tts=bool(data.get("tts")),
            )
            interaction.original = message
        elif rtype == CALLBACK_DEFERRED_CHANNEL_MESSAGE:
            message = fake.new_message(
                channel,
                fake.bot_user,
                flags=FLAG_LOADING | (int(data.get("flags") or 0) & FLAG_EPHEMERAL),
                type=self._message_type(interaction),
                webhook_id=fake.application_id,
                interaction=interaction,
            )
            interaction.original = message
        elif rtype == CALLBACK_DEFERRED_UPDATE_MESSAGE:
            interaction.original = interaction.source_message
        elif rtype == CALLBACK_UPDATE_MESSAGE:
            source = interaction.source_message
            assert source is not None
            self._apply_edit(call, source, data, limit=limit)
            interaction.original = message = source
        elif rtype == CALLBACK_MODAL:
            errors = FormErrors()
            errors.required(["data", "custom_id"], data.get("custom_id"))
            errors.max_len(["data", "custom_id"], data.get("custom_id"), 100)
            errors.required(["data", "title"], data.get("title"))
            errors.max_len(["data", "title"], data.get("title"), 45)
            comps = data.get("components")
            if not isinstance(comps, list) or not 1 <= len(comps) <= 5:
                errors.add(
                    ["data", "components"], "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5."
                )
            errors.raise_if_any()
            interaction.modal = data
        interaction.response_type = rtype
        interaction.response_data = data
        interaction.responded_at = fake.clock.now()
        fake.notify()
        if message is not None and rtype in (
            CALLBACK_CHANNEL_MESSAGE,
            CALLBACK_DEFERRED_CHANNEL_MESSAGE,
        ):
            await fake.emit_message("MESSAGE_CREATE", message)
        elif message is not None:
            await fake.emit_message("MESSAGE_UPDATE", message)
        with_response = call.request.query.get("with_response", "").lower() in ("1", "true")
        if not with_response:
            return Reply(204)
        summary: JSON = {"id": str(interaction.id), "type": interaction.type}
        if message is not None:
            summary["response_message_id"] = str(message.id)
            summary["response_message_loading"] = message.loading
            summary["response_message_ephemeral"] = message.ephemeral
        out: JSON = {"interaction": summary}
        if rtype in (CALLBACK_CHANNEL_MESSAGE, CALLBACK_UPDATE_MESSAGE) and message is not None:
            out["resource"] = {"type": rtype, "message": message.payload()}
        elif rtype != CALLBACK_MODAL:
            out["resource"] = {"type": rtype}
        return Reply(200, out)

    def _webhook_message(self, call: Call, interaction: Interaction) -> Message:
        mid = call.params["message_id"]
        if mid == "@original":
            message = interaction.original
        else:
            try:
                wanted = int(mid)
            except ValueError:
                raise ApiError(404, 10008, "Unknown Message") from None
            candidates = [
                *([interaction.original] if interaction.original else []),
                *interaction.followups,
            ]
            message = next((m for m in candidates if m.id == wanted), None)
        if message is None or message.deleted:
            raise ApiError(404, 10008, "Unknown Message")
        return message

    async def _guarded(
        self, interaction: Interaction, action: Callable[[], Awaitable[Reply]]
    ) -> Reply:
        try:
            return await action()
        except ApiError as exc:
            interaction.errors.append((exc.status, exc.code))
            raise

    async def followup(self, call: Call) -> Reply:
        interaction = self._interaction_for_webhook(call)

        async def act() -> Reply:
            fake = self.fake
            if interaction.response_type is None or interaction.response_type == CALLBACK_MODAL:
                raise ApiError(404, 10015, "Unknown Webhook")
            payload = call.body if isinstance(call.body, dict) else {}
            original = interaction.original
            if (
                interaction.response_type == CALLBACK_DEFERRED_CHANNEL_MESSAGE
                and original is not None
                and original.loading
                and not original.deleted
            ):
                # Discord: a followup sent while the deferred reply is still loading resolves it
                # (and keeps the defer's ephemerality, whatever the followup's flags say).
                check_message(payload, file_count=len(call.files), creating=True)
                edit = {k: v for k, v in payload.items() if k != "flags"}
                self._apply_edit(call, original, edit, limit=interaction.attachment_size_limit)
                await fake.emit_message("MESSAGE_UPDATE", original)
                return Reply(200, original.payload())
            check_message(payload, file_count=len(call.files), creating=True)
            attachments = self._store_files(
                call,
                interaction.channel,
                payload,
                limit=interaction.attachment_size_limit,
                keep=None,
            )
            content = payload.get("content") or ""
            message = fake.new_message(
                interaction.channel,
                fake.bot_user,
                content=content,
                embeds=payload.get("embeds") or [],
                components=payload.get("components") or [],
                attachments=attachments,
                flags=int(payload.get("flags") or 0)
                & (FLAG_EPHEMERAL | 1 << 2 | 1 << 12 | 1 << 15),
                type=self._message_type(interaction),
                webhook_id=fake.application_id,
                interaction=interaction,
                mentions=fake.resolve_mentions(content, payload.get("allowed_mentions"), None),
                tts=bool(payload.get("tts")),
            )
            interaction.followups.append(message)
            await fake.emit_message("MESSAGE_CREATE", message)
            return Reply(200, message.payload())

        return await self._guarded(interaction, act)

    async def get_webhook_message(self, call: Call) -> Reply:
        interaction = self._interaction_for_webhook(call)

        async def act() -> Reply:
            return Reply(200, self._webhook_message(call, interaction).payload())

        return await self._guarded(interaction, act)

    async def edit_webhook_message(self, call: Call) -> Reply:
        interaction = self._interaction_for_webhook(call)

        async def act() -> Reply:
            message = self._webhook_message(call, interaction)
            payload = call.body if isinstance(call.body, dict) else {}
            self._apply_edit(call, message, payload, limit=interaction.attachment_size_limit)
            interaction.edits += 1
            await self.fake.emit_message("MESSAGE_UPDATE", message)
            return Reply(200, message.payload())

        return await self._guarded(interaction, act)

    async def delete_webhook_message(self, call: Call) -> Reply:
        interaction = self._interaction_for_webhook(call)

        async def act() -> Reply:
            message = self._webhook_message(call, interaction)
            await self._delete(message)
            return Reply(204)

        return await self._guarded(interaction, act)
