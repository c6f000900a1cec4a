"""Progress text and job status wording shared by the terminal and Discord."""

from __future__ import annotations

import pytest

from bot.jobview import job_view
from bot.progress import format_duration, progress_bar
from tests.jobs import job_record


@pytest.mark.parametrize(
    ("progress", "filled", "label"),
    [(0, 0, "0%"), (50, 10, "50%"), (100, 20, "100%"), (150, 20, "100%"), (-5, 0, "0%")],
)
def test_bar_fills_in_proportion(progress: int, filled: int, label: str) -> None:
    bar, pct = progress_bar(progress).split(" ")
    assert bar.count("█") == filled and len(bar) == 20
    assert pct == label


def test_missing_progress_shows_an_empty_bar_without_a_number() -> None:
    assert progress_bar(None) == "░" * 20


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (42.9, "42s"), (185, "3m 05s"), (3720, "1h 02m"), (-3, "0s")],
)
def test_durations(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_a_status_the_bot_does_not_know_is_shown_by_name() -> None:
    assert str(job_view(job_record(api_status="moderating"), now=5).status) == (
        "Running — status: moderating"
    )
    assert str(job_view(job_record(api_status="in_progress"), now=5).status) == "Generating"
    # Only a short plain word of it: no markup or mentions from a server.
    odd = str(job_view(job_record(api_status="**@everyone** `x`" + "z" * 100), now=5).status)
    assert "*" not in odd and "@" not in odd and "`" not in odd
    assert len(odd) <= len("Running — status: ") + 32


def test_a_create_sent_again_says_it_is_retrying() -> None:
    first = job_view(job_record(state="creating", api_video_id=None, api_status=None), now=5)
    assert str(first.status) == "Sending to the video service"
    resend = job_record(state="creating", api_video_id=None, create_attempted_at=None)
    assert "Retrying" in str(job_view(resend, now=5).status)
    assert "try 2 of 3" in str(job_view(resend, now=5).status)
    third = job_record(
        state="creating", api_video_id=None, create_attempts=3, create_attempted_at=9.0
    )
    assert "try 3 of 3" in str(job_view(third, now=5).status)


def test_failure_notes_say_once_that_nothing_was_charged_and_never_show_a_key() -> None:
    unconfirmed = job_record(state="failed", error_code="create_unconfirmed")
    assert str(job_view(unconfirmed, now=5).note) == (
        "The video service did not confirm the request; nothing was charged to you."
    )
    unreachable = str(job_view(job_record(state="failed", error_code="unreachable"), now=5).note)
    assert unreachable.count("harged") == 1
    leaked = job_record(
        state="failed", error_code="x", error_message="bad key sk-live-0123456789abcdef"
    )
    note = str(job_view(leaked, now=5).note)
    assert "sk-live" not in note and note.endswith("Nothing was charged.")
