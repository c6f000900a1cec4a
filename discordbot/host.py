"""What the Discord layer's parts use of the running bot besides discord.py's client: its
settings and the core's services. A Protocol, so the access gate and the sink reach them without
importing the client module (which imports them)."""

from __future__ import annotations

from typing import Protocol

from bot.services import Services
from bot.settings import Settings


class Host(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def services(self) -> Services:
        """The core's services; open from `setup_hook` on, before any interaction arrives."""
        ...
