"""Re-encoding a finished video so it fits under an upload limit (Discord's, per channel).

Works frame by frame through PyAV, so memory stays flat whatever the video's length. Everything is
synchronous and CPU-bound; async callers use `reencode_to_fit_async`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import InputContainer, OutputContainer
from av.video.frame import VideoFrame
from av.video.stream import VideoStream

from bot.files import create_private

log = logging.getLogger(__name__)

# The byte budget the encoders aim at, as a share of the limit: room for the container's index
# and for x264's rate control landing a little over its target.
HEADROOM = 0.92
# x264 may run over its average by up to one VBV buffer; the rate is set so that even the buffer's
# worth of extra bits still fits (buffer = this many seconds of the target rate).
VBV_SECONDS = 0.5
AUDIO_BPS = 64_000
# Below this the picture is mush at any resolution; saying "it does not fit" is more honest.
MIN_VIDEO_BPS = 32_000
# Bits per pixel per frame. Under MIN_BPP the encoder smears detail, so the resolution is lowered
# until the budget gives TARGET_BPP: fewer sharp pixels look better than many blocky ones.
MIN_BPP = 0.06
TARGET_BPP = 0.1
# The short side is never scaled below this (unless the source is smaller already).
MIN_SHORT_SIDE = 144
MAX_ATTEMPTS = 3
# Landing below this share of the target means x264 hit its quantizer ceiling: a lower bitrate
# alone would not help, the picture must get smaller.
_CEILING_RATIO = 0.8
_DEFAULT_FPS = Fraction(24)


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    duration: float
    """Seconds; 0.0 when the file does not say and no timestamps could be read."""
    fps: float
    bit_rate: int | None
    """Bits per second of the whole file, when known."""
    has_audio: bool


@dataclass(frozen=True)
class _Plan:
    width: int
    height: int
    video_bps: int
    audio_bps: int


def _rate(stream: VideoStream) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate
    return Fraction(rate) if rate and rate > 0 else _DEFAULT_FPS


def _duration(container: InputContainer, stream: VideoStream) -> float:
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    # Neither header says: the last packet's timestamp does, and demuxing reads no pixels.
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return end


def probe(path: Path) -> VideoInfo:
    """Dimensions, duration, frame rate, bit rate and audio presence of a video file.

    Raises `ValueError` when the file has no video stream, `av.FFmpegError` when it is not a
    container FFmpeg can read.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path.name} has no video stream")
        stream = container.streams.video[0]
        return VideoInfo(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            duration=_duration(container, stream),
            fps=float(_rate(stream)),
            bit_rate=container.bit_rate or None,
            has_audio=bool(container.streams.audio),
        )


def _even(n: float, cap: int) -> int:
    # yuv420p halves chroma in both directions, so both sides must be even; rounding to the
    # nearest even number keeps the aspect closest, the cap stops an odd side growing by a pixel.
    return max(2, min(round(n / 2) * 2, cap // 2 * 2))


def _scaled(info: VideoInfo, scale: float) -> tuple[int, int]:
    short = min(info.width, info.height)
    floor = min(1.0, MIN_SHORT_SIDE / short) if short else 1.0
    scale = min(1.0, max(scale, floor))
    return _even(info.width * scale, info.width), _even(info.height * scale, info.height)


def _plan(info: VideoInfo, budget_bits: float, scale: float) -> _Plan | None:
    """Bitrates and size for one attempt, or None when the budget is hopeless."""
    seconds = max(info.duration, 0.1)
    total_bps = budget_bits / (seconds + VBV_SECONDS)
    # Audio costs a fixed AUDIO_BPS; when that would starve the picture, the sound goes instead.
    audio_bps = AUDIO_BPS if info.has_audio and total_bps >= 5 * AUDIO_BPS else 0
    video_bps = int(total_bps - audio_bps)
    if video_bps < MIN_VIDEO_BPS:
        return None
    fps = info.fps or float(_DEFAULT_FPS)
    w, h = _scaled(info, scale)
    bpp = video_bps / (w * h * fps)
    if bpp < MIN_BPP:
        w, h = _scaled(info, scale * math.sqrt(bpp / TARGET_BPP))
    return _Plan(width=w, height=h, video_bps=video_bps, audio_bps=audio_bps)


def _after_overshoot(
    info: VideoInfo, plan: _Plan, *, budget: float, scale: float, size: int, limit_bytes: int
) -> tuple[float, float]:
    """The next attempt's bit budget and scale, after an encode came out `size` bytes."""
    ratio = limit_bytes * HEADROOM / size
    if ratio < _CEILING_RATIO:
        # Far over: x264 hit its quantizer ceiling, so only fewer pixels will help.
        scale = min(scale, plan.width / info.width) * math.sqrt(ratio)
    return budget * ratio, scale


def _encode(src: Path, dst: Path, plan: _Plan) -> None:
    # The encoder creates files with the umask's mode; an existing private file keeps its own.
    create_private(dst)
    with (
        av.open(str(src)) as inp,
        # faststart moves the index to the front, so Discord's player starts before the download
        # ends; the format is named because the temporary file's name has no .mp4 suffix.
        av.open(str(dst), "w", format="mp4", container_options={"movflags": "+faststart"}) as out,
    ):
        _transcode_streams(inp, out, plan)


def _transcode_streams(inp: InputContainer, out: OutputContainer, plan: _Plan) -> None:
    in_video = inp.streams.video[0]
    in_video.thread_type = "AUTO"
    rate = _rate(in_video)
    video = out.add_stream(
        "libx264",
        rate=rate,
        options={
            "preset": "veryfast",
            # A VBV cap turns x264's loose average into a bound on the file size.
            "maxrate": str(plan.video_bps),
            "bufsize": str(int(plan.video_bps * VBV_SECONDS)),
        },
    )
    video.width = plan.width
    video.height = plan.height
    video.pix_fmt = "yuv420p"
    video.bit_rate = plan.video_bps
    # Keep the source's clock: rebasing variable-rate timestamps onto 1/fps could make two frames
    # collide. The frame rate (set above) is what x264's rate control budgets with.
    time_base = in_video.time_base or 1 / rate
    video.codec_context.time_base = time_base
    sar = in_video.codec_context.sample_aspect_ratio
    if sar:
        video.codec_context.sample_aspect_ratio = sar

    in_audio: AudioStream | None = None
    audio: AudioStream | None = None
    if plan.audio_bps and inp.streams.audio:
        in_audio = inp.streams.audio[0]
        audio = out.add_stream("aac", rate=48_000)
        audio.bit_rate = plan.audio_bps
        audio.layout = "stereo"

    streams = (in_video, in_audio) if in_audio is not None else (in_video,)
    frame_step = max(1, int(1 / (rate * time_base)))
    last_pts: int | None = None
    for packet in inp.demux(*streams):
        if packet.stream is in_audio:
            assert audio is not None
            for audio_frame in packet.decode():
                assert isinstance(audio_frame, AudioFrame)
                # PyAV resamples to the encoder's format, rate and 1024-sample frames itself.
                out.mux(audio.encode(audio_frame))
            continue
        for frame in packet.decode():
            assert isinstance(frame, VideoFrame)
            scaled = frame.reformat(
                width=plan.width, height=plan.height, format="yuv420p", interpolation="AREA"
            )
            # Decoders can omit or repeat a timestamp; the encoder needs them strictly rising.
            if last_pts is None:
                pts = frame.pts or 0
            elif frame.pts is None:
                pts = last_pts + frame_step
            else:
                pts = max(frame.pts, last_pts + 1)
            scaled.pts = last_pts = pts
            scaled.time_base = time_base
            out.mux(video.encode(scaled))
    out.mux(video.encode(None))
    if audio is not None:
        out.mux(audio.encode(None))


def reencode_to_fit(src: Path, dst: Path, limit_bytes: int) -> Path | None:
    """Write to `dst` an H.264 mp4 of `src` no larger than `limit_bytes`; return `dst`, or None
    when no acceptable encoding fits (the limit is too small for the duration, or the source is
    unreadable).

    A source already within the limit is copied unchanged: re-encoding could only lose quality.
    The bitrate comes from the limit and the duration; the resolution drops (aspect kept) when
    that bitrate is too thin for the picture. The result is measured, and up to MAX_ATTEMPTS
    encodes are tried, each smaller than the last.
    """
    if src.stat().st_size <= limit_bytes:
        if src.resolve() != dst.resolve():
            create_private(dst)
            shutil.copyfile(src, dst)
        return dst
    try:
        info = probe(src)
    except (av.FFmpegError, ValueError) as exc:
        log.warning("cannot re-encode %s: %s", src.name, exc)
        return None

    budget = limit_bytes * 8 * HEADROOM
    scale = 1.0
    tmp = dst.with_name(dst.name + ".part")
    try:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            plan = _plan(info, budget, scale)
            if plan is None:
                log.info(
                    "%s: %d bytes is too small for %.1f s", src.name, limit_bytes, info.duration
                )
                return None
            try:
                _encode(src, tmp, plan)
            except av.FFmpegError as exc:
                log.warning("re-encoding %s failed: %s", src.name, exc)
                return None
            size = tmp.stat().st_size
            log.info(
                "%s attempt %d: %dx%d at %d b/s -> %d bytes (limit %d)",
                src.name,
                attempt,
                plan.width,
                plan.height,
                plan.video_bps,
                size,
                limit_bytes,
            )
            if size <= limit_bytes:
                os.replace(tmp, dst)
                return dst
            budget, scale = _after_overshoot(
                info, plan, budget=budget, scale=scale, size=size, limit_bytes=limit_bytes
            )
        return None
    finally:
        tmp.unlink(missing_ok=True)


async def reencode_to_fit_async(src: Path, dst: Path, limit_bytes: int) -> Path | None:
    """`reencode_to_fit` in a worker thread; an encode takes seconds and must not stall the loop."""
    return await asyncio.to_thread(reencode_to_fit, src, dst, limit_bytes)
