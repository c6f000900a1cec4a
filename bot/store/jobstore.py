"""The Store's job writes: recording a job (with the quota check and its reservation in one
transaction) and moving it through its state machine (lifecycle.py), refunding in the same
transaction where a transition fails it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Unpack

from bot.redact import redact
from bot.store import jobs, ledger, lifecycle, quota
from bot.store.base import StoreBase
from bot.store.keptlimits import kept_limits
from bot.store.records import Job, JobState, NewJob, Refusal, SpendLimit

log = logging.getLogger(__name__)


# Bounds on what the store keeps from a server: a status is a word, a code a short token.
STATUS_LIMIT = 64
CODE_LIMIT = 64
MESSAGE_LIMIT = 300


def _status(value: str) -> str:
    return redact(value, STATUS_LIMIT)


EXPIRED_MESSAGE = (
    "The video was finished but expired before it could be fetched. Nothing was charged."
)


class JobWrites(StoreBase):
    """Recording jobs and moving them through their states."""

    async def insert_job(
        self, new: NewJob, *, state: JobState = "creating", now: float | None = None
    ) -> Job:
        """Record a job and reserve its cost, with no quota check (owner tools, tests)."""
        at = self.clock() if now is None else now
        async with self.transaction() as conn:
            job = await jobs.insert_job(conn, new, state, at, lease=self._new_lease(at))
            await ledger.reserve(conn, job, at)
        return job

    async def reserve_job(
        self,
        new: NewJob,
        cost_micros: int,
        limits: Sequence[SpendLimit] = (),
        *,
        now: float | None = None,
        **terms: Unpack[quota.QuotaTerms],
    ) -> Job | Refusal:
        """Check every limit, the user's active-job cap and cooldown (`terms`), and if all pass
        record the job ('creating') with its reservation: all in one BEGIN IMMEDIATE
        transaction, so concurrent requests (in this process or another) cannot both fit the
        last slot.

        The guild's quota overrides for the user and for `terms["role_ids"]` (the user's roles
        there) are applied in the same transaction, within the owner's `terms["ceilings"]`;
        see quota.py for how they combine."""
        if cost_micros != new.cost_micros:
            raise ValueError(f"cost {cost_micros} differs from the job's {new.cost_micros}")
        at = self.clock() if now is None else now
        async with self.transaction() as conn:
            # Loaded once, within the owner's ceilings, for both the check and the limits kept
            # with the job (a later reported cost is charged only within what was checked).
            overrides = await quota.load_overrides(
                conn, new, terms.get("role_ids", ()), terms.get("ceilings", quota.NO_CEILINGS)
            )
            refusal = await quota.check_request(
                conn, new, cost_micros, limits, now=at, overrides=overrides, **terms
            )
            if refusal is not None:
                return refusal
            kept = kept_limits(new, limits, overrides)
            job = await jobs.insert_job(
                conn, new, "creating", at, spend_limits=kept, lease=self._new_lease(at)
            )
            await ledger.reserve(conn, job, at)
        return job

    async def check_job(
        self,
        new: NewJob,
        cost_micros: int,
        limits: Sequence[SpendLimit] = (),
        *,
        now: float | None = None,
        **terms: Unpack[quota.QuotaTerms],
    ) -> Refusal | None:
        """The refusal `reserve_job` would give now, reading only (no job, no hold): an early
        answer, not a promise; `reserve_job` decides."""
        at = self.clock() if now is None else now
        async with self._read() as conn:
            return await quota.check_request(conn, new, cost_micros, limits, now=at, **terms)

    # ------------------------------------------------------------------ transitions

    async def set_state(self, job_id: int, state: JobState) -> bool:
        """'creating' <-> 'queued_local' (local queueing); whether anything changed."""
        async with self.transaction() as conn:
            return await lifecycle.set_state(conn, job_id, state, self.clock())

    async def mark_create_attempted(self, job_id: int, at: float) -> bool:
        async with self.transaction() as conn:
            return await lifecycle.mark_create_attempted(conn, job_id, at, self.clock())

    async def mark_create_answered(self, job_id: int) -> bool:
        """The service accepted the send with an answer the bot could not use: never resent."""
        async with self.transaction() as conn:
            return await lifecycle.mark_create_answered(conn, job_id, self.clock())

    async def retry_create(self, job_id: int, attempted_at: float, max_sends: int) -> bool:
        """A send proven not to have started a job may be sent again (see lifecycle.py); whether it
        may. The next `mark_create_attempted` counts the new send."""
        async with self.transaction() as conn:
            return await lifecycle.retry_create(conn, job_id, attempted_at, max_sends, self.clock())

    async def release_create_attempt(self, job_id: int) -> bool:
        """A send that reached no server: the job may be sent again (see lifecycle.py)."""
        async with self.transaction() as conn:
            return await lifecycle.release_create_attempt(conn, job_id, self.clock())

    async def attach_video(
        self, job_id: int, api_video_id: str, api_status: str, progress: int | None
    ) -> Job | None:
        """creating -> running with its API video; None if already attached to that video."""
        async with self.transaction() as conn:
            return await lifecycle.attach_video(
                conn, job_id, api_video_id, _status(api_status), progress, now=self.clock()
            )

    async def update_progress(self, job_id: int, api_status: str, progress: int | None) -> bool:
        """Whether a running job's status or progress changed. One guarded statement, atomic
        on its own: no serialised transaction (on PostgreSQL, no write lock) for the commonest
        write of every round."""
        async with self._db.single_statements() as conn:
            return await lifecycle.update_progress(
                conn, job_id, _status(api_status), progress, self.clock()
            )

    async def mark_succeeded(
        self,
        job_id: int,
        completed_at: float,
        expires_at: float | None,
        *,
        reported_cost_micros: int | None = None,
    ) -> Job | None:
        """running -> succeeded; the job, or None if it already was (nothing to announce).
        `reported_cost_micros`: what the service says the job cost, when it says (the delivery
        settles at it)."""
        if reported_cost_micros is not None and reported_cost_micros < 0:
            raise ValueError("a reported cost is not negative")
        async with self.transaction() as conn:
            return await lifecycle.mark_succeeded(
                conn,
                job_id,
                completed_at,
                expires_at,
                self.clock(),
                reported_cost_micros=reported_cost_micros,
            )

    async def mark_failed(self, job_id: int, code: str, message: str | None) -> Job | None:
        """-> failed and refund the open hold, together; the job, or None if it already had
        failed (and was refunded then). The code and message may come from a server: they are
        kept redacted and bounded."""
        async with self.transaction() as conn:
            now = self.clock()
            done = await lifecycle.mark_failed(
                conn,
                job_id,
                redact(code, CODE_LIMIT),
                None if message is None else redact(message, MESSAGE_LIMIT),
                now,
            )
            await ledger.refund(conn, done or await jobs.require(conn, job_id), now)
            return done

    async def cancel_job(
        self, job_id: int, by_user_id: int, *, video_id: str | None, message: str
    ) -> Job | None:
        """Its member's Cancel, and the refund, together: only while the job has not left
        (`video_id` None) or is still running at `video_id` (see lifecycle.cancel). The job, or
        None when it moved on meanwhile (nothing changed: read it again)."""
        async with self.transaction() as conn:
            now = self.clock()
            done = await lifecycle.cancel(
                conn,
                job_id,
                by_user_id,
                video_id=video_id,
                message=redact(message, MESSAGE_LIMIT),
                now=now,
            )
            if done is not None:
                await ledger.refund(conn, done, now)
            return done

    async def expire_undelivered(
        self, job_id: int, code: str = "expired", message: str = EXPIRED_MESSAGE
    ) -> Job | None:
        """A success whose video expired before it was delivered: -> failed and refunded
        (the user never got it). Leaves any delivery claim in place for the caller to finish."""
        async with self.transaction() as conn:
            now = self.clock()
            done = await lifecycle.expire_undelivered(
                conn, job_id, redact(code, CODE_LIMIT), redact(message, MESSAGE_LIMIT), now
            )
            await ledger.refund(conn, done or await jobs.require(conn, job_id), now)
            return done

    async def set_response_message(self, job_id: int, message_id: int) -> None:
        async with self.transaction() as conn:
            await jobs.set_response_message(conn, job_id, message_id, self.clock())

    async def clear_token(self, job_id: int) -> None:
        async with self.transaction() as conn:
            await jobs.clear_token(conn, job_id, self.clock())

    async def clear_expired_tokens(self, now: float | None = None) -> int:
        """Forget every interaction token past its expiry; how many were cleared."""
        async with self.transaction() as conn:
            return await jobs.clear_expired_tokens(conn, self.clock() if now is None else now)

    async def set_local_path(self, job_id: int, path: str | None) -> None:
        async with self.transaction() as conn:
            await jobs.set_local_path(conn, job_id, path, self.clock())

    async def record_deletion(self, job_id: int, by_user_id: int) -> Job | None:
        """The job's video is gone from the service, deleted by `by_user_id` (its owner); the
        job, or None if its deletion was recorded already."""
        async with self.transaction() as conn:
            return await jobs.record_deletion(conn, job_id, by_user_id, self.clock())
