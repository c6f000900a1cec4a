"""`python -m videobot generate`: the whole job without Discord, on the same client and catalog.

Whatever a server does, the terminal gets one line on stderr and a non-zero exit, never a
traceback; a download that fails leaves no file behind (the client removes its partial file), so
nothing unverified is ever left under the name of the video.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TextIO

from bot.api.adoption import JobMatch
from bot.api.client import VideosClient
from bot.api.errors import CreateOutcomeUnknown, VideoAPIError, describe_error
from bot.api.models import CreateVideo, Phase, ReferenceImage, Video
from bot.backend import open_backend
from bot.catalog import NotOffered
from bot.media import MediaFiles
from bot.progress import format_duration, progress_bar
from bot.prompt import clean_prompt, prompt_problem
from bot.redact import redact
from bot.reference import ReferenceRejected, fit_reference_async
from bot.settings import Settings
from bot.thumbnail import make_thumbnail_async

log = logging.getLogger(__name__)

# The simulator runs on this machine, so the terminal may poll it often for a smooth bar.
SIM_POLL_MS = 1000
# After a create whose answer was lost, how many times the job is looked for (one poll interval
# apart) before the terminal is told the service did not confirm the request.
LOOKS_AFTER_A_LOST_ANSWER = 2
# Error lines stay readable in a terminal.
LINE_LIMIT = 400


class CliError(Exception):
    """Bad input or a failed job: one line for the user, non-zero exit."""


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", help="what the video should show")
    parser.add_argument("--model", help="model id from the catalog (default: the catalog's first)")
    parser.add_argument("--seconds", help="clip length in seconds (default: the model's default)")
    parser.add_argument("--size", help="WIDTHxHEIGHT (default: the model's default size)")
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
            why = (
                "VIDEO_API_PROFILE=simulator"
                if settings.video_api_profile == "simulator"
                else "No OPENAI_BASE_URL or OPENAI_API_KEY set"
            )
            print(f"{why}: using the built-in simulator at {backend.base_url}", file=out)
        client = backend.client
        video = await _start(client, request, reference, settings, out)
        print(redact(f"job {video.id} created"), file=out)
        video = await _watch(client, video, settings, out)
        dest = args.out or MediaFiles(Path(settings.data_dir)).named_video(_safe_name(video.id))
        # The client checks the body is a video and removes what it wrote if anything fails.
        size = await client.download(video.id, dest)
        print(f"video: {dest} ({size / 1_000_000:.1f} MB)", file=out)
        thumb = dest.with_suffix(".webp")
        fetched = False
        if client.caps.variants:
            try:
                await client.download(video.id, thumb, variant="thumbnail")
                fetched = True
            except VideoAPIError as exc:
                # A gateway that drops `variant` answers with the video itself: made here
                # instead, from the video's first frame, as the bot does.
                print(
                    redact(f"the service's thumbnail was refused: {describe_error(exc)}"), file=out
                )
        if fetched or await make_thumbnail_async(dest, thumb):
            print(f"thumbnail: {thumb}", file=out)
        return dest


async def _start(
    client: VideosClient,
    request: CreateVideo,
    reference: ReferenceImage | None,
    settings: Settings,
    out: TextIO,
) -> Video:
    """Create the job; after a lost answer, look for it and take it only when it is certainly
    this request's (the client's adoption rules), never sending it again."""
    try:
        return await client.create(request, reference)
    except CreateOutcomeUnknown as exc:
        lost = exc
    unconfirmed = (
        f"the video service did not confirm the request ({describe_error(lost.cause)}). "
        "It was not sent again, so nothing is billed twice; check your provider's dashboard "
        "before retrying"
    )
    if not client.caps.list:
        raise CliError(unconfirmed)
    print("the video service did not confirm the request; looking for its job", file=out)
    match = JobMatch(
        prompt=request.prompt,
        model=request.model,
        size=request.size,
        seconds=request.seconds,
        has_reference=reference is not None,
    )
    for look in range(LOOKS_AFTER_A_LOST_ANSWER):
        if look:
            await asyncio.sleep(settings.poll_interval_seconds)
        try:
            search = await client.find_created(match, since=lost.attempted_at)
        except VideoAPIError as exc:
            log.info("looking for the job failed: %s", describe_error(exc))
            continue
        if search.video is not None:
            return search.video
        if search.ambiguous:
            raise CliError(
                "the video service did not confirm the request, and the jobs there that could "
                "be it cannot be told apart from other requests', so none was taken. Nothing "
                "was sent again; check your provider's dashboard"
            )
    raise CliError(unconfirmed)


def _validated_request(args: argparse.Namespace, settings: Settings) -> CreateVideo:
    prompt = clean_prompt(str(args.prompt))
    problem = prompt_problem(prompt)
    if problem:
        said = problem.plain()
        raise CliError(said[0].lower() + said[1:].rstrip("."))
    try:
        # What is not given is the catalog's default, exactly as `/video` fills it in.
        picked = settings.catalog().resolve(args.model, args.seconds, args.size)
    except NotOffered as exc:
        raise CliError(exc.notice.plain()) from None
    return picked.request(prompt, sound_asked=False)


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
        # The server's hint is capped by the client; the cap here guards against a stale one.
        await asyncio.sleep(
            min(client.poll_after or settings.poll_interval_seconds, client.config.max_poll_after)
        )
        video = await client.retrieve(video.id)
    if live:
        print(file=out)
    if video.phase is Phase.FAILED:
        reason = video.error.message if video.error and video.error.message else video.status
        raise CliError(f"job {video.id} {video.status}: {redact(reason)}")
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
        return _fail(str(exc))
    except VideoAPIError as exc:
        return _fail(describe_error(exc))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # The disk, not the server: say which file and why, in one line.
        where = f" {exc.filename}" if exc.filename else ""
        return _fail(f"cannot write{where}: {exc.strerror or type(exc).__name__}")
    except Exception as exc:
        # Never a traceback in the terminal; the log has it for a bug report.
        log.debug("generate failed", exc_info=True)
        return _fail(f"unexpected {type(exc).__name__}: {exc}")
    return 0


def _fail(message: str) -> int:
    print(f"error: {redact(message, LINE_LIMIT)}", file=sys.stderr)
    return 1
