"""The benchmark's side of an end-to-end run: a fake Discord and the simulator in this process (the
e2e tests' `world`), and the real bot in a child process (`benchmarks.botproc`).

The fake stamps everything on its own clock (`FakeDiscord.clock`, real time), so a latency is the
difference of two stamps taken in this process: when the fake built and sent an INTERACTION_CREATE
(`Interaction.created_at`) and when the bot's request reached it (`RequestRecord.at`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from pydantic import SecretStr

from benchmarks.common import proc_status
from bot.settings import Settings
from tests.e2e import World, world
from tests.fakediscord import DEFAULT_UPLOAD_LIMIT, FakeDiscord, Interaction, RequestRecord

ROOT = Path(__file__).resolve().parent.parent
CALLBACK_ROUTE = "POST /interactions/{interaction_id}/{interaction_token}/callback"
ORIGINAL_EDIT_ROUTE = "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/{message_id}"
# Startup warnings of discord.py that say nothing about the run.
QUIET_LOG = ("voice will NOT be supported",)
# Generous limits everywhere: these runs are about speed and memory, not about quotas.
LOAD_SETTINGS: dict[str, Any] = {
    "quota_max_active_per_user": 100,
    "quota_max_concurrent_jobs": 1000,
    "openai_requests_per_minute": 100_000,
}


@contextlib.asynccontextmanager
async def stage(tmp: Path, *, users: int, **sim_config: Any) -> AsyncIterator[World]:
    """A fresh fake Discord (one guild, one channel, `users` members) and simulator."""
    fake = FakeDiscord()
    await fake.start()
    try:
        async with world(fake, tmp, users=users, **sim_config) as w:
            yield w
    finally:
        await fake.stop()


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path | Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def settings_values(settings: Settings) -> dict[str, Any]:
    """The explicitly set fields of `settings`, as JSON the child can pass back to `Settings`."""
    return {name: _plain(getattr(settings, name)) for name in settings.model_fields_set}


class BotProcess:
    """A running `benchmarks.botproc` child."""

    def __init__(self, proc: asyncio.subprocess.Process, log: IO[str]) -> None:
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return proc_status(self.pid)["VmRSS"]

    def log_tail(self, chars: int = 3000) -> str:
        self.log.flush()
        self.log.seek(0)
        text: str = self.log.read()
        return text[-chars:]

    async def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command.encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"the bot process ended:\n{self.log_tail()}")
        return json.loads(line)

    async def stats(self) -> dict[str, int]:
        """RSS ("rss"), peak RSS ("hwm"), pymalloc blocks, active jobs and asyncio tasks, taken
        in the child after a full garbage collection."""
        found: dict[str, int] = await self.ask("stats")
        return found

    async def acks(self) -> dict[int, tuple[float, float]]:
        """Per interaction id: when the bot handled its INTERACTION_CREATE and when it issued
        the defer callback, on the bot's own clock (time.time)."""
        found: dict[str, list[float]] = await self.ask("acks")
        return {int(k): (v[0], v[1]) for k, v in found.items()}

    async def quit(self) -> None:
        proc = self.proc
        if proc.returncode is None:
            with contextlib.suppress(ConnectionError):
                assert proc.stdin is not None
                proc.stdin.write(b"quit\n")
                await proc.stdin.drain()
                proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@contextlib.asynccontextmanager
async def bot_process(
    w: World,
    *,
    instrument: bool = False,
    defer_only: bool = False,
    profile: Path | None = None,
    **overrides: Any,
) -> AsyncIterator[BotProcess]:
    """The real bot in a child process against `w`'s fake Discord and simulator, from identify
    until the block ends (then closed as a shutdown closes it). With `instrument` the child
    stamps each ack (see `BotProcess.acks`); with `defer_only` it runs a bare discord.py client
    that only defers /video instead of the bot; with `profile` it runs under cProfile and leaves
    its stats there."""
    values = settings_values(w.settings(**{**LOAD_SETTINGS, **overrides}))
    config = {
        "api_base": w.fake.api_base,
        "gateway_url": w.fake.gateway_url,
        "cdn_base": w.fake.cdn_base,
        "token": w.fake.token,
        "settings": values,
        "instrument": instrument,
        "defer_only": defer_only,
    }
    # Settings read the environment too: only what is passed here may configure the child.
    fields = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in fields}
    if profile is not None:
        env["BENCH_PROFILE"] = str(profile)
    with tempfile.TemporaryFile("w+") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.botproc",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            cwd=ROOT,
            env=env,
        )
        bot = BotProcess(proc, log)
        try:
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(config).encode() + b"\n")
            await proc.stdin.drain()
            connected = asyncio.ensure_future(w.fake.wait_until_connected(60))
            ended = asyncio.ensure_future(proc.wait())
            await asyncio.wait({connected, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not connected.done():
                connected.cancel()
                raise RuntimeError(f"the bot process ended before connecting:\n{bot.log_tail()}")
            ended.cancel()
            connected.result()
            yield bot
        finally:
            # Commands whose reply has arrived may still be writing to the database.
            await asyncio.sleep(0.5)
            await bot.quit()
            # The numbers stand, but whatever the bot logged at WARNING or above is shown.
            tail = "\n".join(
                line
                for line in bot.log_tail(4000).splitlines()
                if not any(quiet in line for quiet in QUIET_LOG)
            )
            if tail.strip():
                print(f"-- the bot process logged:\n{tail}", file=sys.stderr, flush=True)


async def slash_burst(
    w: World,
    count: int,
    prompt: str,
    *,
    attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
) -> list[Interaction]:
    """`count` members' /video, sent back to back on the gateway as a burst arrives from Discord.
    The fake yields to its loop between sends, so the bot's answers are stamped as they arrive."""
    sent: list[Interaction] = []
    for i in range(count):
        interaction = await w.fake.dispatch_slash(
            "video",
            {"prompt": prompt},
            user=w.users[i % len(w.users)],
            channel=w.channel,
            attachment_size_limit=attachment_size_limit,
        )
        sent.append(interaction)
        await asyncio.sleep(0)
    return sent


def first_requests(records: Iterable[RequestRecord], route: str, param: str) -> dict[str, float]:
    """When the first request to `route` arrived, by the value of its path parameter `param`."""
    first: dict[str, float] = {}
    for record in records:
        if record.key == route:
            first.setdefault(record.params[param], record.at)
    return first


def callback_arrivals(fake: FakeDiscord) -> dict[int, float]:
    """When each interaction's first callback (the ack) reached the fake, by interaction id."""
    found = first_requests(fake.requests, CALLBACK_ROUTE, "interaction_id")
    return {int(k): v for k, v in found.items()}


def first_edits(fake: FakeDiscord) -> dict[str, float]:
    """When each interaction token's first edit of its original reply reached the fake."""
    return first_requests(fake.requests, ORIGINAL_EDIT_ROUTE, "webhook_token")


async def all_shown(w: World, interactions: list[Interaction], timeout: float) -> None:  # noqa: ASYNC109
    """Until every interaction's reply has left "thinking..." (the job embed, or a refusal)."""

    def done() -> bool:
        return all(i.original is not None and not i.original.loading for i in interactions)

    await w.fake.wait_for(done, timeout=timeout, poll=0.1)
