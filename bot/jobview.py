"""What a job's message shows, as plain data: the Discord adapter only turns it into an embed.

Keeping this free of Discord lets the "edit only when something visible changed" rule compare two
values, and lets tests check every state's wording without a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.progress import format_duration, progress_bar
from bot.redact import redact
from bot.store import Job

PROMPT_LIMIT = 1000
# How many sends one request may take when the video service leaves creates unconfirmed (the
# first and at most two more, each only after it was shown that the previous one started nothing).
MAX_CREATE_SENDS = 3
# A status the bot does not know is shown by name; only a short plain word of it.
_STATUS_NAME_LIMIT = 32
_NOT_A_WORD = re.compile(r"[^A-Za-z0-9_. -]+")
Tone = Literal["working", "done", "failed"]

STATUS_WORDS = {
    "queued": "Queued at the video service",
    "pending": "Queued at the video service",
    "in_progress": "Generating",
    "processing": "Generating",
}


# Failure codes people meet, in plain words; anything else shows the service's own message.
FAILURE_WORDS = {
    "moderation_blocked": "Blocked by the video service's content policy.",
    "content_policy_violation": "Blocked by the video service's content policy.",
    "deadline": "The video service took too long; the job was given up.",
    "unreachable": "The video service could not be reached in time. Nothing was charged.",
    "expired": "The video was finished but expired before it could be fetched.",
    "reference_lost": "The reference image was lost before the job was sent.",
    "rate_limit_exceeded": "The video service is busy; try again in a few minutes.",
    "insufficient_quota": "The bot's video service account is out of credit.",
    "create_unconfirmed": "The video service did not confirm the request; nothing was charged "
    "to you.",
    "undeliverable": "The video was made, but it could not be delivered here or by direct "
    "message, so it was given up.",
    "not_found": "The video service no longer knows this video.",
    "create_unusable": "The video service answered in a way the bot cannot use, so the request "
    "was given up.",
}


def failure_text(code: str | None, message: str | None) -> str:
    """Why a job failed, for the member who asked: plain words, never a raw payload."""
    plain = FAILURE_WORDS.get((code or "").lower())
    if plain:
        return plain
    # Stored messages are the bot's own wording or a server's text already redacted; redacted
    # again here so nothing reaches a channel unfiltered whatever wrote it.
    detail = redact(message or "", 300)
    return f"The video could not be made: {detail}" if detail else "The video could not be made."


def status_text(status: str | None) -> str:
    """A running job's status in words; one the bot does not know is shown by name."""
    key = (status or "").lower()
    if not key:
        return "Generating"
    known = STATUS_WORDS.get(key)
    if known:
        return known
    name = _NOT_A_WORD.sub(" ", status or "").strip()[:_STATUS_NAME_LIMIT].strip()
    return f"Running — status: {name}" if name else "Generating"


def _charge_note(text: str) -> str:
    # Some wordings already say what was charged; say it once.
    return text if "charged" in text.lower() else f"{text} Nothing was charged."


@dataclass(frozen=True)
class JobView:
    title: str
    prompt: str
    model: str
    seconds: str
    size: str
    status: str
    bar: str
    elapsed: str
    tone: Tone
    job_id: int
    note: str | None = None
    # The seed a finished video was made with, so a member can make it again.
    seed: str | None = None


def safe_prompt(prompt: str, limit: int = PROMPT_LIMIT) -> str:
    """A prompt shortened to fit an embed, on a character boundary and marked when cut."""
    text = prompt.strip()
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def job_view(
    job: Job,
    *,
    now: float,
    queue_position: int | None = None,
    service_ok: bool = True,
    elapsed_step: int = 1,
) -> JobView:
    """Render a job at time `now`. Elapsed time is rounded down to `elapsed_step` seconds so a
    progress-less backend still shows movement without forcing an edit on every poll."""
    elapsed_s = max(0.0, (job.completed_at or now) - job.created_at)
    elapsed_s -= elapsed_s % max(1, elapsed_step)
    elapsed = format_duration(elapsed_s)
    tone: Tone = "working"
    note = None
    if job.state == "failed":
        tone = "failed"
        status = "Failed"
        bar = ""
        note = _charge_note(failure_text(job.error_code, job.error_message))
    elif job.state == "succeeded":
        tone = "done"
        status = "Done" if job.delivery_state == "done" else "Finishing: fetching the video"
        bar = progress_bar(100)
    elif job.state == "queued_local":
        status = "Waiting for a free slot"
        if queue_position is not None:
            status += f" (position {queue_position} in the queue)"
        bar = progress_bar(None)
    elif job.state == "creating":
        status = "Sending to the video service"
        if job.create_attempts > 1 or (job.create_attempts == 1 and not job.create_attempted_at):
            # The previous send was shown not to have started a job: it is being sent again.
            tries = job.create_attempts + (0 if job.create_attempted_at else 1)
            status = (
                "Retrying: the video service did not confirm the request, sending it again "
                f"(try {min(tries, MAX_CREATE_SENDS)} of {MAX_CREATE_SENDS})"
            )
        bar = progress_bar(None)
    else:
        status = status_text(job.api_status)
        bar = progress_bar(job.progress)
    if tone == "working" and not service_ok:
        status = "Waiting for the video service (it is not answering right now)"
    return JobView(
        title="Your video" if tone != "failed" else "Video failed",
        prompt=safe_prompt(job.prompt),
        model=job.model,
        seconds=job.seconds,
        size=job.size,
        status=status,
        bar=bar,
        elapsed=elapsed,
        tone=tone,
        job_id=job.id,
        note=note,
        seed=str(job.seed) if job.seed is not None and job.state == "succeeded" else None,
    )
