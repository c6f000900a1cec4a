"""Progress text shared by the terminal and Discord."""

from __future__ import annotations

import pytest

from bot.progress import format_duration, progress_bar


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
