"""`python -m videobot sim`: serve the simulated Videos API until interrupted.

Every flag can also come from the environment as `SIM_<FLAG>` (`--job-seconds` from
`SIM_JOB_SECONDS`); a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from bot.api.profiles import ProfileName
from bot.sim.config import SimConfig
from bot.sim.server import SimServer


@dataclass(frozen=True)
class _Option:
    flag: str
    convert: Callable[[str], Any]
    default: Any
    help: str

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def env(self) -> str:
        return "SIM_" + self.dest.upper()


def _profile(value: str) -> str:
    name = value.strip().lower()
    if name not in get_args(ProfileName):
        raise ValueError(f"unknown profile {value!r}; one of: {', '.join(get_args(ProfileName))}")
    return name


def _share(value: str) -> float:
    share = float(value)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value}")
    return share


def _non_negative(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return number


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"must be more than 0, got {value}")
    return number


def _port(value: str) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(f"must be 0-65535, got {value}")
    return port


def _fps(value: str) -> int:
    fps = int(value)
    if not 1 <= fps <= 60:
        raise ValueError(f"must be 1-60, got {value}")
    return fps


def _text(value: str) -> str:
    return value


def _clip(value: str) -> str:
    name = value.strip().lower()
    if name not in ("render", "prepared"):
        raise ValueError(f"must be render or prepared, got {value!r}")
    return name


def _names(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    if not names:
        raise ValueError("name at least one model")
    return names


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"must be true or false, got {value}")


OPTIONS = (
    _Option("--host", _text, "127.0.0.1", "address to listen on"),
    _Option("--port", _port, 8765, "port to listen on (0 picks a free one)"),
    _Option(
        "--profile", _profile, "openai", "backend to imitate: " + ", ".join(get_args(ProfileName))
    ),
    _Option("--job-seconds", _non_negative, 20.0, "how long a job takes"),
    _Option("--retention-seconds", _positive, 3600.0, "how long finished media stays downloadable"),
    _Option("--fail-rate", _share, 0.0, "share of jobs that fail (0-1)"),
    _Option("--fail-code", _text, "moderation_blocked", "error code of a failed job"),
    _Option("--fail-message", _text, None, "error message of a failed job"),
    _Option(
        "--moderation-word", _text, None, "a prompt containing this word always fails moderation"
    ),
    _Option("--rate-limit-rate", _share, 0.0, "share of requests answered 429 (0-1)"),
    _Option("--retry-after", _non_negative, 1.0, "Retry-After seconds sent with a 429"),
    _Option("--server-error-rate", _share, 0.0, "share of requests answered 5xx (0-1)"),
    _Option("--latency-ms", _non_negative, 0.0, "delay added to every request"),
    _Option("--api-key", _text, None, "the only key accepted (default: any non-empty key)"),
    _Option(
        "--auth",
        _flag,
        None,
        "whether a key is needed (default: the profile's way; fastvideo never, vllm-omni and "
        "sglang only with --api-key)",
    ),
    _Option(
        "--models", _names, None, "served models, comma-separated (default: sora-2,sora-2-pro)"
    ),
    _Option("--check-model", _flag, False, "refuse a create naming a model not served"),
    _Option("--report-model", _text, None, "the model jobs report (azure: a deployment's base)"),
    _Option("--cache-dir", Path, None, "where rendered media is kept (default: a temporary dir)"),
    _Option("--poll-after-ms", int, None, "send openai-poll-after-ms with every retrieve"),
    _Option("--fps", _fps, 12, "frame rate of rendered videos"),
    _Option(
        "--clip",
        _clip,
        "render",
        "render: a clip per prompt, showing it; prepared: one clip per size and duration, "
        "rendered once",
    ),
    _Option("--seed", int, None, "seed for fault and failure draws (repeatable runs)"),
)


def _argparse_type(option: _Option) -> Callable[[str], Any]:
    def convert(value: str) -> Any:
        try:
            return option.convert(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = option.dest
    return convert


def add_sim_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's flags; their defaults are resolved later, so SIM_* can fill them."""
    for option in OPTIONS:
        shown = "" if option.default is None else f" (default {option.default})"
        parser.add_argument(
            option.flag,
            type=_argparse_type(option),
            default=None,
            help=f"{option.help}{shown}; env {option.env}",
        )


class SimArgumentError(ValueError):
    """A SIM_* environment value is malformed; the message names it."""


def resolve_options(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """Each option from its flag, else from SIM_<NAME>, else its default."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        value = getattr(args, option.dest, None)
        if value is None:
            raw = environ.get(option.env, "").strip()
            if raw:
                try:
                    value = option.convert(raw)
                except ValueError as exc:
                    raise SimArgumentError(f"{option.env}: {exc}") from None
            else:
                value = option.default
        values[option.dest] = value
    return values


def config_from_options(values: Mapping[str, Any]) -> SimConfig:
    config = SimConfig(
        job_seconds=values["job_seconds"],
        retention_seconds=values["retention_seconds"],
        profile=values["profile"],
        poll_after_ms=values["poll_after_ms"],
        api_key=values["api_key"],
        auth=values["auth"],
        check_model=values["check_model"],
        report_model=values["report_model"],
        fail_rate=values["fail_rate"],
        fail_code=values["fail_code"],
        moderation_word=values["moderation_word"],
        rate_limit_rate=values["rate_limit_rate"],
        retry_after_seconds=values["retry_after"],
        server_error_rate=values["server_error_rate"],
        latency_ms=values["latency_ms"],
        fps=values["fps"],
        clip=values["clip"],
        seed=values["seed"],
        cache_dir=values["cache_dir"],
        log_requests=True,
    )
    if values["models"] is not None:
        config.served_models = values["models"]
    if values["fail_message"] is not None:
        config.fail_message = values["fail_message"]
    return config


async def run_sim_from_args(args: argparse.Namespace) -> None:
    """Serve until cancelled, interrupted or sent SIGTERM."""
    try:
        values = resolve_options(args, os.environ)
    except SimArgumentError as exc:
        raise SystemExit(f"error: {exc}") from None
    server = SimServer(config_from_options(values))
    url = await server.start(values["host"], values["port"])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(f"Simulated Videos API listening on {url}", flush=True)
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
        await server.stop()
