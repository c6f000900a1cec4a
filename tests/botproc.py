"""The real bot in a child process, for tests that kill it.

`python -m tests.botproc` is the production entry point (`python -m videobot run`: settings from the
environment, logging, `run_bot`, which builds `VideoBot(load_settings())`) with two changes made
before it starts, both about the fake Discord rather than the bot:

- discord.py's three addresses (REST base, first gateway URL, CDN base) come from FAKE_API_BASE,
  FAKE_GATEWAY_URL and FAKE_CDN_BASE, as `tests.fakediscord.fixture.pointed_at` sets them
  in-process;
- `before_identify_hook` does not wait (discord.py sleeps 5 s before a re-identify; the fake never
  rate-limits identifies).

`BotProcess` starts that child from a test (the fake and the simulator stay in the test's event
loop), kills it with SIGKILL, and starts it again on the same data directory. The child's stdout
and stderr go to one log file, each run under a header line; its tail is printed when the block
using the process fails, and the whole file stays under the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import discord

    from bot.settings import Settings
    from tests.fakediscord import FakeDiscord

ENV_API_BASE = "FAKE_API_BASE"
ENV_GATEWAY_URL = "FAKE_GATEWAY_URL"
ENV_CDN_BASE = "FAKE_CDN_BASE"
REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 200


# ---------------------------------------------------------------------------------- the child


async def _no_wait(self: discord.Client, shard_id: int | None, *, initial: bool = False) -> None:
    return None


def main() -> int:
    import discord
    import yarl
    from discord.gateway import DiscordWebSocket
    from discord.http import Route

    from discordbot.client import VideoBot
    from videobot.__main__ import main as bot_main

    Route.BASE = os.environ[ENV_API_BASE]
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(os.environ[ENV_GATEWAY_URL])
    discord.Asset.BASE = os.environ[ENV_CDN_BASE]
    VideoBot.before_identify_hook = _no_wait  # type: ignore[method-assign]
    return bot_main(["run"])


# ---------------------------------------------------------------------------------- the parent


def _env_value(value: Any) -> str:
    from pydantic import SecretStr

    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, Decimal | Path | int | float | str):
        return str(value)
    raise TypeError(f"no environment form for {type(value).__name__}")


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that make `load_settings()` in the child equal `settings`: every
    field the test set explicitly, under its upper-case name."""
    out: dict[str, str] = {}
    for name in sorted(settings.model_fields_set):
        value = getattr(settings, name)
        if value is not None:
            out[name.upper()] = _env_value(value)
    return out


def child_environment(settings: Settings, fake: FakeDiscord) -> dict[str, str]:
    """The parent's environment without any bot setting a developer may have exported, plus the
    test's settings and the fake's addresses."""
    from bot.settings import Settings as SettingsModel

    names = {name.upper() for name in SettingsModel.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env.update(settings_env(settings))
    env[ENV_API_BASE] = fake.api_base
    env[ENV_GATEWAY_URL] = fake.gateway_url
    env[ENV_CDN_BASE] = fake.cdn_base
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


class BotProcessError(AssertionError):
    """The child stopped on its own, or did not connect in time; the message ends with its log."""


class BotProcess:
    """One bot at a time as a child process, connected to `fake`.

    `start()` returns once the new process has identified at the fake gateway and received its
    guilds; `kill()` sends SIGKILL and returns once the fake has seen the connection drop. The
    data directory (in `settings`) is the same for every run, as after a real crash.
    """

    def __init__(
        self,
        fake: FakeDiscord,
        settings: Settings,
        log_path: Path,
        *,
        cwd: Path | None = None,
        connect_timeout: float = 30.0,
        shard: int | None = None,
    ) -> None:
        self.fake = fake
        # The one shard this process runs, when several processes share the fake (each is then
        # connected, or gone, by its own shard's session); None: the bot is the only one.
        self.shard = shard
        self.env = child_environment(settings, fake)
        self.log_path = log_path
        # Not the repository: the child must not read a developer's .env.
        self.cwd = cwd or log_path.parent
        self.connect_timeout = connect_timeout
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self.kills = 0
        # Seconds from spawning each run to its gateway session being live.
        self.start_seconds: list[float] = []
        # Seconds each killed run lived.
        self.lifetimes: list[float] = []
        self._started_at = 0.0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def __aenter__(self) -> BotProcess:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.stop()
        finally:
            if exc is not None and not isinstance(exc, BotProcessError):
                print(self.describe())

    async def start(self) -> float:
        """Spawn a new bot process and wait until it is connected; returns how long that took."""
        if self.running:
            raise RuntimeError("the bot process is already running")
        self.starts += 1
        before = len(self.fake.gateway.connections)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== run {self.starts} =====\n".encode())
            log.flush()
            self._started_at = time.monotonic()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.botproc",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
            )
        proc = self.proc

        def connected() -> bool:
            gateway = self.fake.gateway
            session = gateway.session if self.shard is None else gateway.shards.get(self.shard)
            return (
                self._live()
                and session is not None
                and session.conn in gateway.connections[before:]
            )

        waiter = asyncio.create_task(self.fake.wait_for(connected, self.connect_timeout))
        exited = asyncio.create_task(proc.wait())
        done, _ = await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
        for task in (waiter, exited):
            if task not in done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if exited in done:
            raise BotProcessError(
                f"bot run {self.starts} exited with {proc.returncode} before connecting\n"
                + self.describe()
            )
        try:
            waiter.result()
        except AssertionError as exc:
            await self._kill_quietly()
            raise BotProcessError(
                f"bot run {self.starts} did not connect within {self.connect_timeout}s\n"
                + self.describe()
            ) from exc
        took = time.monotonic() - self._started_at
        self.start_seconds.append(took)
        return took

    async def kill(self) -> None:
        """SIGKILL the running bot: no cleanup of any kind runs in it."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            code = None if proc is None else proc.returncode
            raise BotProcessError(
                f"the bot was not running when a kill was due (exit code {code})\n"
                + self.describe()
            )
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        self.kills += 1
        self.lifetimes.append(time.monotonic() - self._started_at)
        # The kernel closes the socket; wait until the fake has noticed.
        await self.fake.wait_for(lambda: not self._live(), 10.0)

    def _live(self) -> bool:
        gateway = self.fake.gateway
        return gateway.live if self.shard is None else gateway.shard_live(self.shard)

    async def stop(self, timeout: float = 10.0) -> int | None:  # noqa: ASYNC109
        """End the current run politely (SIGINT, as Ctrl-C), killing it if it does not stop;
        returns its exit code (None when nothing was running)."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return None if proc is None else proc.returncode
        proc.send_signal(signal.SIGINT)
        try:
            return await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            await self._kill_quietly()
            return proc.returncode

    async def _kill_quietly(self) -> None:
        proc = self.proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            await proc.wait()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self, lines: int = LOG_TAIL_LINES) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return (
            f"bot log {self.log_path} (runs {self.starts}, kills {self.kills}); "
            f"last {len(tail)} lines:\n" + "\n".join(tail)
        )


if __name__ == "__main__":
    sys.exit(main())
