"""A member acting on a job of theirs (Cancel, Delete): only the member who started it may, and
anyone else learns nothing of it, not even whether it is still known."""

from __future__ import annotations

from bot.notice import Notice, notice
from bot.store import Job, Store

UNKNOWN = notice("This video is no longer known to the bot.")


async def own_job(store: Store, job_id: int, by_user_id: int, not_owner: Notice) -> Job | Notice:
    """Job `job_id` when it is `by_user_id`'s, else why not for the member: UNKNOWN, or
    `not_owner` (the action's own words). Checked before anything else about the job."""
    job = await store.get_job(job_id)
    if job is None:
        return UNKNOWN
    if job.user_id != by_user_id:
        return not_owner
    return job
