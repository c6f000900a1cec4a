"""Text renderings of a job's progress shared by the terminal and Discord."""

from __future__ import annotations

FULL = "█"
EMPTY = "░"


def progress_bar(progress: int | None, width: int = 20) -> str:
    """`█████░░░░░ 50%`; with no progress reported, an empty bar and no percent."""
    if progress is None:
        return EMPTY * width
    pct = max(0, min(100, progress))
    filled = round(width * pct / 100)
    return f"{FULL * filled}{EMPTY * (width - filled)} {pct}%"


def format_duration(seconds: float) -> str:
    """`42s`, `3m 05s`, `1h 02m`: compact and stable in width as time passes."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"
