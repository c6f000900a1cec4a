"""Command line: `python -m bot run | sim | generate` (also installed as `video-bot`)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

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
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO; the tracker's polls would drown the bot's own log.
    logging.getLogger("httpx").setLevel(
        max(logging.WARNING, logging.getLevelName(settings.log_level))
    )
    if command == "generate":
        from bot.cli import run_generate

        return run_generate(args, settings)
    from bot.app import run_bot

    return run_bot(settings)


if __name__ == "__main__":
    sys.exit(main())
