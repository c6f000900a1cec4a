"""A delivery sink (bot.delivery.DeliverySink) that accepts everything and keeps nothing: a
test's own sink derives from it and overrides only the part it watches."""

from __future__ import annotations

from bot.delivery import Result
from bot.queueview import Outlook
from bot.store import Intake, Job


class QuietSink:
    async def show_progress(self, job: Job, outlook: Outlook | None = None) -> None:
        return None

    async def send_result(self, job: Job, result: Result) -> int | None:
        return 1

    async def find_result(self, job: Job) -> int | None:
        return None

    async def answer_unrecorded(self, intake: Intake) -> bool:
        return True
