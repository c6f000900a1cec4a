"""`python -m bot generate`: the whole job without Discord, on the same client and catalog."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TextIO

from bot.api.client import VideosClient
from bot.api.errors import CreateOutcomeUnknown, VideoAPIError
from bot.api.models import CreateVideo, Phase, ReferenceImage, Video
from bot.backend import open_backend
from bot.progress import format_duration, progress_bar
from bot.prompt import clean_prompt, prompt_problem
from bot.reference import ReferenceRejected, fit_reference_async
from bot.settings import Settings

# The simulator runs on this machine, so the terminal may poll it often for a smooth bar.
SIM_POLL_MS = 1000


class CliError(Exception):
    """Bad input or a failed job: one line for the user, non-zero exit."""


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="what the video should show")
    parser.add_argument("--model", help="model id from the catalog (default: the catalog's first)")
    parser.add_argument("--seconds", help="clip length in seconds (default: the model's shortest)")
    parser.add_argument("--size", help="WIDTHxHEIGHT (default: the model's first size)")
    parser.add_argument("--reference", type=Path, help="image to start from (jpeg, png, webp, gif)")
    parser.add_argument(
        "--fit", choices=("crop", "pad"), default="crop", help="how a reference is fitted to --size"
    )
    parser.add_argument(
        "--out", type=Path, help="where to write the mp4 (default: DATA_DIR/videos)"
    )


async def generate(args: argparse.Namespace, settings: Settings, out: TextIO = sys.stdout) -> Path:
    """Validate everything locally, then create, watch and download one video."""
    request = _validated_request(args, settings)
    reference = await _load_reference(args, request) if args.reference else None
    async with AsyncExitStack() as stack:
        backend = await open_backend(settings, stack, sim_poll_after_ms=SIM_POLL_MS)
        if backend.simulated:
            print(
                f"No OPENAI_API_KEY set: using the built-in simulator at {backend.base_url}",
                file=out,
            )
        client = backend.client
        try:
            video = await client.create(request, reference)
        except CreateOutcomeUnknown as exc:
            raise CliError(
                f"{exc.message}. It was not sent again, so nothing is billed twice; "
                "check your provider's dashboard before retrying."
            ) from None
        print(f"job {video.id} created", file=out)
        video = await _watch(client, video, settings, out)
        dest = args.out or Path(settings.data_dir) / "videos" / f"{_safe_name(video.id)}.mp4"
        size = await client.download(video.id, dest)
        print(f"video: {dest} ({size / 1_000_000:.1f} MB)", file=out)
        if client.caps.variants:
            thumb = dest.with_suffix(".webp")
            await client.download(video.id, thumb, variant="thumbnail")
            print(f"thumbnail: {thumb}", file=out)
        return dest


def _validated_request(args: argparse.Namespace, settings: Settings) -> CreateVideo:
    prompt = clean_prompt(str(args.prompt))
    problem = prompt_problem(prompt)
    if problem:
        raise CliError(problem[0].lower() + problem[1:].rstrip("."))
    catalog = settings.catalog()
    spec = catalog.get(args.model) if args.model else catalog.default
    model = args.model or catalog.default.id
    seconds = args.seconds or (spec.seconds[0] if spec else "")
    size = args.size or (spec.sizes[0] if spec else "")
    problem = catalog.check(model, str(seconds), str(size))
    if problem:
        raise CliError(problem.replace("`", ""))
    return CreateVideo(prompt=prompt, model=model, seconds=str(seconds), size=str(size))


async def _load_reference(args: argparse.Namespace, request: CreateVideo) -> ReferenceImage:
    path: Path = args.reference
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except FileNotFoundError:
        raise CliError(f"reference image not found: {path}") from None
    except OSError as exc:
        raise CliError(f"cannot read reference image {path}: {exc.strerror}") from None
    assert request.size is not None
    try:
        return await fit_reference_async(data, request.size, mode=args.fit)
    except ReferenceRejected as exc:
        raise CliError(f"reference image refused: {exc.reason}") from None


async def _watch(client: VideosClient, video: Video, settings: Settings, out: TextIO) -> Video:
    started = time.monotonic()
    deadline = started + settings.job_deadline_minutes * 60
    live = out.isatty()
    last_line = ""
    while video.phase is Phase.RUNNING:
        line = (
            f"{video.status:<12} {progress_bar(video.progress)}  "
            f"{format_duration(time.monotonic() - started)}"
        )
        if live:
            print("\r" + line, end="", file=out, flush=True)
        elif line.split()[:2] != last_line.split()[:2]:
            print(line, file=out, flush=True)
        last_line = line
        if time.monotonic() > deadline:
            raise CliError(
                f"job {video.id} still not finished after {format_duration(deadline - started)}"
            )
        await asyncio.sleep(client.poll_after or settings.poll_interval_seconds)
        video = await client.retrieve(video.id)
    if live:
        print(file=out)
    if video.phase is Phase.FAILED:
        reason = video.error.message if video.error and video.error.message else video.status
        raise CliError(f"job {video.id} {video.status}: {reason}")
    print(
        f"completed     {progress_bar(100)}  {format_duration(time.monotonic() - started)}",
        file=out,
    )
    return video


def _safe_name(video_id: str) -> str:
    # IDs are opaque and come from the server: they never decide where a file is written.
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in video_id)[:100] or "video"


def run_generate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        asyncio.run(generate(args, settings))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except VideoAPIError as exc:
        print(f"error: the video service said: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    return 0
