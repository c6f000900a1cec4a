"""The built-in simulated video backend: the Videos API on loopback, with real media.

Used by the bot when no API key is configured (`EmbeddedSim`), served on its own with
`python -m videobot sim`, and driven by tests in-process (`SimServer` on port 0 with a `SimClock`).
"""

from __future__ import annotations

from bot.sim.cli import add_sim_arguments, run_sim_from_args
from bot.sim.server import (
    FAULT_KINDS,
    ROUTES,
    EmbeddedSim,
    FaultKind,
    SimClock,
    SimConfig,
    SimRequest,
    SimServer,
    SimVideo,
)

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
