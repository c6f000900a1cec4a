"""The simulator inside the bot's own process: what the bot runs when no API key is configured."""

from __future__ import annotations

from pathlib import Path

from bot.api.profiles import ProfileName
from bot.sim.config import SimConfig
from bot.sim.server import SimServer
from bot.sim.wire import SECONDS, SIZES


class EmbeddedSim:
    """The simulator inside the bot's own process, on a free loopback port."""

    def __init__(
        self,
        *,
        cache_dir: Path,
        job_seconds: float,
        retention_seconds: float,
        profile: ProfileName,
        poll_after_ms: int | None = None,
        seconds: tuple[str, ...] = SECONDS,
        sizes: tuple[str, ...] = SIZES,
    ) -> None:
        self.server = SimServer(
            SimConfig(
                job_seconds=job_seconds,
                retention_seconds=retention_seconds,
                profile=profile,
                poll_after_ms=poll_after_ms,
                cache_dir=cache_dir,
                seconds=seconds,
                sizes=sizes,
            )
        )

    async def __aenter__(self) -> str:
        return await self.server.start("127.0.0.1", 0)

    async def __aexit__(self, *exc: object) -> None:
        await self.server.stop()
