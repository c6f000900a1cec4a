"""Command line: `python -m videobot run | sim | generate | doctor` (also installed as
`video-bot`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from bot.logs import configure_logging
from bot.redact import register_secret
from bot.settings import SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    from bot.cli import add_generate_arguments
    from bot.sim import add_sim_arguments

    parser = argparse.ArgumentParser(prog="video-bot", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="run the Discord bot (default)")
    sim = sub.add_parser("sim", help="serve the simulated Videos API")
    add_sim_arguments(sim)
    gen = sub.add_parser("generate", help="make one video from the terminal, without Discord")
    add_generate_arguments(gen)
    sub.add_parser(
        "doctor",
        help="check the video server settings: reachable, auth, profile, models (exit 0 = ready)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    if command == "sim":
        from bot.sim import run_sim_from_args

        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_sim_from_args(args))
        return 0
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    # Secrets first, then the handler: from the first record on, none of them is written.
    for secret in settings.secrets():
        register_secret(secret)
    configure_logging(settings.log_level)
    if command == "doctor":
        from bot.doctor import run_doctor

        return asyncio.run(run_doctor(settings))
    if command == "generate":
        from bot.cli import run_generate

        return run_generate(args, settings)
    from discordbot.client import run_bot

    return run_bot(settings)


if __name__ == "__main__":
    sys.exit(main())
