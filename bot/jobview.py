"""What a job's message shows, as plain data: the Discord adapter only turns it into an embed.

Keeping this free of Discord lets the "edit only when something visible changed" rule compare two
values, and lets tests check every state's wording without a client.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.notice import Notice, notice
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

GENERATING = notice("Generating")
QUEUED_THERE = notice("Queued at the video service")
STATUS_WORDS = {
    "queued": QUEUED_THERE,
    "pending": QUEUED_THERE,
    "in_progress": GENERATING,
    "processing": GENERATING,
}

# A job the video service itself reports as cancelled (a member's Cancel is `cancelled`).
SERVICE_CANCELLED_CODE = "cancelled_at_service"
_BLOCKED = notice("Blocked by the video service's content policy.")
# Failure codes people meet, in plain words; anything else shows the service's own message.
FAILURE_WORDS = {
    "moderation_blocked": _BLOCKED,
    "content_policy_violation": _BLOCKED,
    "deadline": notice("The video service took too long; the job was given up."),
    "unreachable": notice("The video service could not be reached in time. Nothing was charged."),
    "expired": notice("The video was finished but expired before it could be fetched."),
    "reference_lost": notice("The reference image was lost before the job was sent."),
    "rate_limit_exceeded": notice("The video service is busy; try again in a few minutes."),
    "insufficient_quota": notice("The bot's video service account is out of credit."),
    "create_unconfirmed": notice(
        "The video service did not confirm the request; nothing was charged to you."
    ),
    "undeliverable": notice(
        "The video was made, but it could not be delivered here or by direct message, so it "
        "was given up."
    ),
    "not_found": notice("The video service no longer knows this video."),
    "cancelled": notice("Cancelled."),
    SERVICE_CANCELLED_CODE: notice("The job was cancelled at the video service."),
    "create_unusable": notice(
        "The video service answered in a way the bot cannot use, so the request was given up."
    ),
}


def failure_notice(code: str | None, message: str | None) -> Notice:
    """Why a job failed, for the member who asked: plain words, never a raw payload."""
    plain = FAILURE_WORDS.get((code or "").lower())
    if plain:
        return plain
    # Stored messages are the bot's own wording or a server's text already redacted; redacted
    # again here so nothing reaches a channel unfiltered whatever wrote it.
    detail = redact(message or "", 300)
    if detail:
        return notice("The video could not be made: {detail}", detail=detail)
    return notice("The video could not be made.")


def status_text(status: str | None) -> Notice:
    """A running job's status in words; one the bot does not know is shown by name."""
    key = (status or "").lower()
    if not key:
        return GENERATING
    known = STATUS_WORDS.get(key)
    if known:
        return known
    name = _NOT_A_WORD.sub(" ", status or "").strip()[:_STATUS_NAME_LIMIT].strip()
    return notice("Running — status: {name}", name=name) if name else GENERATING


def _charge_note(said: Notice) -> Notice:
    # Some wordings already say what was charged; say it once.
    if "charged" in said.plain().lower():
        return said
    return said + notice("Nothing was charged.")


@dataclass(frozen=True)
class JobView:
    """What a job's message shows; the words are notices, shown in the member's language."""

    title: Notice
    prompt: str
    model: str
    seconds: str
    size: str
    status: Notice
    bar: str
    elapsed: str
    tone: Tone
    job_id: int
    note: Notice | None = None
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
    status: Notice
    if job.state == "failed":
        tone = "failed"
        status = notice("Failed")
        bar = ""
        note = _charge_note(failure_notice(job.error_code, job.error_message))
    elif job.state == "succeeded":
        tone = "done"
        status = (
            notice("Done")
            if job.delivery_state == "done"
            else notice("Finishing: fetching the video")
        )
        bar = progress_bar(100)
    elif job.state == "queued_local":
        status = notice("Waiting for a free slot")
        if queue_position is not None:
            status = notice(
                "Waiting for a free slot (position {place} in the queue)", place=queue_position
            )
        bar = progress_bar(None)
    elif job.state == "creating":
        status = notice("Sending to the video service")
        if job.create_attempts > 1 or (job.create_attempts == 1 and not job.create_attempted_at):
            # The previous send was shown not to have started a job: it is being sent again.
            tries = job.create_attempts + (0 if job.create_attempted_at else 1)
            status = notice(
                "Retrying: the video service did not confirm the request, sending it again "
                "(try {try_number} of {tries})",
                try_number=min(tries, MAX_CREATE_SENDS),
                tries=MAX_CREATE_SENDS,
            )
        bar = progress_bar(None)
    else:
        status = status_text(job.api_status)
        bar = progress_bar(job.progress)
    if tone == "working" and not service_ok:
        status = notice("Waiting for the video service (it is not answering right now)")
    return JobView(
        title=notice("Your video") if tone != "failed" else notice("Video failed"),
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
