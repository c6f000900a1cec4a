"""The built-in simulated video backend: the Videos API on loopback, with real media.

Used by the bot when no API key is configured (`EmbeddedSim`), served on its own with
`python -m videobot sim`, and driven by tests in-process (`SimServer` on port 0 with a `SimClock`).
The server (server.py) wires the parts, each in its own module; this face names what callers use.
"""

from __future__ import annotations

from bot.sim.cli import add_sim_arguments, run_sim_from_args
from bot.sim.clock import SimClock
from bot.sim.config import SimConfig
from bot.sim.embedded import EmbeddedSim
from bot.sim.faults import FAULT_KINDS, ROUTES, FaultKind
from bot.sim.records import SimRequest, SimVideo
from bot.sim.server import SimServer

__all__ = [
    "FAULT_KINDS",
    "ROUTES",
    "EmbeddedSim",
    "FaultKind",
    "SimClock",
    "SimConfig",
    "SimRequest",
    "SimServer",
    "SimVideo",
    "add_sim_arguments",
    "run_sim_from_args",
]
