"""The Store: every operation the rest of the bot may perform on its database.

Each writing method is one transaction, and a job transition that moves money (fail -> refund,
deliver a success -> settle) moves it in that same transaction, so a crash can never leave a
failed job holding budget or a delivered one unpaid.

Money, in integer micro-dollars (see ledger.py): reserving a job holds its cost; the hold stays
while the job runs and after it succeeds, and is captured into 'spent' when the success is
delivered (finish_delivery), or released when the job fails or its video expires before
delivery. Quota usage is held + spent, so a hold counts against limits from the moment of the
request. Each step moves only what is still held, so repeating any of them charges nothing more.

Where the service reports what a finished job actually cost, the delivery settles at that cost
instead, in the same transaction: the difference back to the member when it is lower, charged
when higher but only within the limits the job was reserved under (what does not fit is
recorded on the job, not charged). Those limits are kept with the job when it is reserved.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from pathlib import Path
from types import TracebackType

import aiosqlite
from pydantic import JsonValue

from bot.redact import redact
from bot.store import audit, jobs, kv, ledger, quota
from bot.store import intake as intake_sql
from bot.store.db import Database, Synchronous, connect, migrate
from bot.store.ledger import ANY_GUILD, AnyGuild
from bot.store.records import (
    Account,
    Intake,
    Job,
    JobBalance,
    JobState,
    LedgerEntry,
    NewJob,
    QuotaOverride,
    Refusal,
    SpendLimit,
    TargetKind,
)

# Bounds on what the store keeps from a server: a status is a word, a code a short token.
STATUS_LIMIT = 64
CODE_LIMIT = 64
MESSAGE_LIMIT = 300


def _status(value: str) -> str:
    return redact(value, STATUS_LIMIT)


log = logging.getLogger(__name__)

EXPIRED_MESSAGE = (
    "The video was finished but expired before it could be fetched. Nothing was charged."
)


class Store:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self.clock = clock
        # Intakes waiting for the next shared write, and the task writing them (see record_intake).
        self._intakes_waiting: list[tuple[Intake, asyncio.Future[None]]] = []
        self._intake_writer: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        clock: Callable[[], float] = time.time,
        synchronous: Synchronous = "FULL",
    ) -> Store:
        """Open (creating if needed, owner-only) and migrate the database at `path`."""
        conn = await connect(path, synchronous=synchronous)
        try:
            await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        return cls(Database(conn), clock)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def transaction(self) -> contextlib.AbstractAsyncContextManager[aiosqlite.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the process-wide lock (store package only)."""
        return self._db.transaction()

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._db.reading() as conn:
            yield conn

    # ------------------------------------------------------------------ creating jobs

    async def insert_job(
        self, new: NewJob, *, state: JobState = "creating", now: float | None = None
    ) -> Job:
        """Record a job and reserve its cost, with no quota check (owner tools, tests)."""
        at = self.clock() if now is None else now
        async with self.transaction() as conn:
            job = await jobs.insert_job(conn, new, state, at)
            await ledger.reserve(conn, job, at)
        return job

    async def reserve_job(
        self,
        new: NewJob,
        cost_micros: int,
        limits: Sequence[SpendLimit] = (),
        *,
        max_active_per_user: int | None = None,
        cooldown_seconds: float | None = None,
        role_ids: Collection[int] = (),
        ceilings: quota.Ceilings = quota.NO_CEILINGS,
        now: float | None = None,
    ) -> Job | Refusal:
        """Check every limit, the user's active-job cap and cooldown, and if all pass record the
        job ('creating') with its reservation: all in one BEGIN IMMEDIATE transaction, so
        concurrent requests (in this process or another) cannot both fit the last slot.

        The guild's quota overrides for the user and for `role_ids` (the user's roles there)
        are applied in the same transaction, within the owner's `ceilings`; see quota.py for
        how they combine."""
        if cost_micros != new.cost_micros:
            raise ValueError(f"cost {cost_micros} differs from the job's {new.cost_micros}")
        at = self.clock() if now is None else now
        async with self.transaction() as conn:
            refusal = await quota.check_request(
                conn,
                new,
                cost_micros,
                limits,
                max_active_per_user=max_active_per_user,
                cooldown_seconds=cooldown_seconds,
                now=at,
                role_ids=role_ids,
                ceilings=ceilings,
            )
            if refusal is not None:
                return refusal
            overrides = await quota.load_overrides(conn, new, role_ids)
            kept = _spend_limits(new, limits, overrides)
            job = await jobs.insert_job(conn, new, "creating", at, spend_limits=kept)
            await ledger.reserve(conn, job, at)
        return job

    async def check_job(
        self,
        new: NewJob,
        cost_micros: int,
        limits: Sequence[SpendLimit] = (),
        *,
        max_active_per_user: int | None = None,
        cooldown_seconds: float | None = None,
        role_ids: Collection[int] = (),
        ceilings: quota.Ceilings = quota.NO_CEILINGS,
        now: float | None = None,
    ) -> Refusal | None:
        """The refusal `reserve_job` would give now, reading only (no job, no hold): an early
        answer, not a promise; `reserve_job` decides."""
        at = self.clock() if now is None else now
        async with self._read() as conn:
            return await quota.check_request(
                conn,
                new,
                cost_micros,
                limits,
                max_active_per_user=max_active_per_user,
                cooldown_seconds=cooldown_seconds,
                now=at,
                role_ids=role_ids,
                ceilings=ceilings,
            )

    # ------------------------------------------------------------------ transitions

    async def set_state(self, job_id: int, state: JobState) -> bool:
        """'creating' <-> 'queued_local' (local queueing); whether anything changed."""
        async with self.transaction() as conn:
            return await jobs.set_state(conn, job_id, state, self.clock())

    async def mark_create_attempted(self, job_id: int, at: float) -> bool:
        async with self.transaction() as conn:
            return await jobs.mark_create_attempted(conn, job_id, at, self.clock())

    async def mark_create_answered(self, job_id: int) -> bool:
        """The service accepted the send with an answer the bot could not use: never resent."""
        async with self.transaction() as conn:
            return await jobs.mark_create_answered(conn, job_id, self.clock())

    async def retry_create(self, job_id: int, attempted_at: float, max_sends: int) -> bool:
        """A send proven not to have started a job may be sent again (see jobs.py); whether it
        may. The next `mark_create_attempted` counts the new send."""
        async with self.transaction() as conn:
            return await jobs.retry_create(conn, job_id, attempted_at, max_sends, self.clock())

    async def release_create_attempt(self, job_id: int) -> bool:
        """A send that reached no server: the job may be sent again (see jobs.py)."""
        async with self.transaction() as conn:
            return await jobs.release_create_attempt(conn, job_id, self.clock())

    async def attach_video(
        self, job_id: int, api_video_id: str, api_status: str, progress: int | None
    ) -> Job | None:
        """creating -> running with its API video; None if already attached to that video."""
        async with self.transaction() as conn:
            return await jobs.attach_video(
                conn, job_id, api_video_id, _status(api_status), progress, now=self.clock()
            )

    async def update_progress(self, job_id: int, api_status: str, progress: int | None) -> bool:
        """Whether a running job's status or progress changed."""
        async with self.transaction() as conn:
            return await jobs.update_progress(
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
            return await jobs.mark_succeeded(
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
            done = await jobs.mark_failed(
                conn,
                job_id,
                redact(code, CODE_LIMIT),
                None if message is None else redact(message, MESSAGE_LIMIT),
                now,
            )
            await ledger.refund(conn, done or await jobs.require(conn, job_id), now)
            return done

    async def expire_undelivered(
        self, job_id: int, code: str = "expired", message: str = EXPIRED_MESSAGE
    ) -> Job | None:
        """A success whose video expired before it was delivered: -> failed and refunded
        (the user never got it). Leaves any delivery claim in place for the caller to finish."""
        async with self.transaction() as conn:
            now = self.clock()
            done = await jobs.expire_undelivered(
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

    # ------------------------------------------------------------------ delivery

    async def claim_delivery(self, job_id: int, now: float | None = None) -> bool:
        """pending -> claimed for a finished job; True for exactly one of any concurrent callers.
        False (nothing changed) if the job is still active or its delivery is claimed or done."""
        async with self.transaction() as conn:
            return await jobs.claim_delivery(conn, job_id, self.clock() if now is None else now)

    async def release_claim(
        self, job_id: int, retry_at: float | None = None, *, failed: bool = True
    ) -> bool:
        """claimed -> pending after a failed attempt (attempts + 1 unless `failed` is False: an
        attempt cut short by a shutdown), not to be tried again before `retry_at` (None: at
        once); whether it was claimed."""
        async with self.transaction() as conn:
            return await jobs.release_claim(conn, job_id, self.clock(), retry_at, failed=failed)

    async def finish_delivery(
        self, job_id: int, message_id: int | None, now: float | None = None
    ) -> Job | None:
        """claimed -> done, clearing the interaction token, and in the same transaction settle a
        success's hold into spending (or refund a failure's, should one remain). None if the
        delivery was already done (nothing is charged again)."""
        async with self.transaction() as conn:
            now = self.clock() if now is None else now
            done = await jobs.finish_delivery(conn, job_id, message_id, now)
            job = done or await jobs.require(conn, job_id)
            if job.state == "succeeded":
                await ledger.settle(conn, job, now)
                if done is not None and job.reported_cost_micros is not None:
                    # Only on the delivery that settles it: a repeat changes nothing.
                    done = await self._settle_at_reported(conn, job, job.reported_cost_micros, now)
            else:
                await ledger.refund(conn, job, now)
            return done

    async def _settle_at_reported(
        self, conn: aiosqlite.Connection, job: Job, reported: int, now: float
    ) -> Job:
        headroom = await _headroom(conn, job)
        charged, uncharged = await ledger.adjust(conn, job, reported, headroom, now)
        await jobs.record_charge(conn, job.id, charged, uncharged, now)
        if uncharged:
            log.warning(
                "job %s: the service reported %s micro-dollars; %s over the member's limits "
                "was not charged",
                job.id,
                reported,
                uncharged,
            )
        return await jobs.require(conn, job.id)

    # ------------------------------------------------------------------ job queries

    async def get_job(self, job_id: int) -> Job | None:
        async with self._read() as conn:
            return await jobs.get(conn, job_id)

    async def active_jobs(self) -> list[Job]:
        """creating, queued_local and running jobs, oldest first."""
        async with self._read() as conn:
            return await jobs.active(conn)

    async def undelivered_jobs(self) -> list[Job]:
        """Finished jobs whose delivery is pending or claimed, oldest first."""
        async with self._read() as conn:
            return await jobs.undelivered(conn)

    async def due_deliveries(self, now: float | None = None) -> list[Job]:
        """Pending deliveries whose back-off has passed, oldest first."""
        async with self._read() as conn:
            return await jobs.due_deliveries(conn, self.clock() if now is None else now)

    async def jobs_with_local_files(self) -> list[Job]:
        """Jobs with a file kept on disk (`set_local_path`), oldest first."""
        async with self._read() as conn:
            return await jobs.with_local_files(conn)

    async def recent_jobs(self, user_id: int, limit: int, offset: int = 0) -> list[Job]:
        """The user's jobs, newest first, `limit` from `offset` (for paging)."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        async with self._read() as conn:
            return await jobs.recent(conn, user_id, limit, offset)

    async def count_jobs(self, user_id: int) -> int:
        async with self._read() as conn:
            return await jobs.count(conn, user_id)

    async def count_working(self, exclude_id: int | None = None) -> int:
        """Jobs being sent or running at the video service, besides `exclude_id`."""
        async with self._read() as conn:
            return await jobs.count_working(conn, exclude_id)

    async def queue_position(self, job_id: int) -> int | None:
        """1-based place among locally queued jobs; None if the job is not queued."""
        async with self._read() as conn:
            return await jobs.queue_position(conn, job_id)

    async def known_video_ids(self, since: float | None = None) -> set[str]:
        """API video ids already owned by a job (optionally of jobs created since `since`)."""
        async with self._read() as conn:
            return await jobs.known_video_ids(conn, since)

    async def last_request_at(self, user_id: int) -> float | None:
        async with self._read() as conn:
            return await jobs.last_request_at(conn, user_id)

    # ------------------------------------------------------------------ ledger

    async def usage(
        self, *, user_id: int | None = None, guild_id: int | None = None, since: float = 0.0
    ) -> int:
        """held + spent of requests made since `since` (None = no filter on that field)."""
        async with self._read() as conn:
            return await ledger.usage(
                conn,
                since=since,
                user_id=user_id,
                guild_id=ANY_GUILD if guild_id is None else guild_id,
            )

    async def top_spenders(
        self, guild_id: int | None, since: float, limit: int = 10
    ) -> list[tuple[int, int]]:
        """(user_id, held + spent) of the biggest users since `since`; guild None = all."""
        async with self._read() as conn:
            return await ledger.top_spenders(
                conn, guild_id=ANY_GUILD if guild_id is None else guild_id, since=since, limit=limit
            )

    async def open_hold(self, job_id: int) -> int:
        async with self._read() as conn:
            return await ledger.open_hold(conn, job_id)

    async def ledger_balances(self) -> dict[Account, int]:
        async with self._read() as conn:
            return await ledger.balances(conn)

    async def ledger_sum_by_job(self) -> dict[int, JobBalance]:
        async with self._read() as conn:
            return await ledger.sum_by_job(conn)

    async def ledger_entries(self, job_id: int | None = None) -> list[LedgerEntry]:
        async with self._read() as conn:
            return await ledger.entries(conn, job_id)

    # ------------------------------------------------------------------ settings

    async def get_guild_setting(self, guild_id: int, key: str) -> JsonValue:
        """The stored JSON value, or None if unset."""
        async with self._read() as conn:
            return await kv.get_guild_setting(conn, guild_id, key)

    async def set_guild_setting(self, guild_id: int, key: str, value: JsonValue) -> None:
        async with self.transaction() as conn:
            await kv.set_guild_setting(conn, guild_id, key, value)

    async def delete_guild_setting(self, guild_id: int, key: str) -> bool:
        async with self.transaction() as conn:
            return await kv.delete_guild_setting(conn, guild_id, key)

    async def all_guild_settings(self, guild_id: int) -> dict[str, JsonValue]:
        async with self._read() as conn:
            return await kv.all_guild_settings(conn, guild_id)

    async def set_quota_override(self, override: QuotaOverride) -> None:
        async with self.transaction() as conn:
            await kv.set_quota_override(conn, override)

    async def get_quota_override(
        self, guild_id: int, target_kind: TargetKind, target_id: int, limit_name: str
    ) -> QuotaOverride | None:
        async with self._read() as conn:
            return await kv.get_quota_override(conn, guild_id, target_kind, target_id, limit_name)

    async def list_quota_overrides(self, guild_id: int) -> list[QuotaOverride]:
        async with self._read() as conn:
            return await kv.list_quota_overrides(conn, guild_id)

    async def delete_quota_override(
        self, guild_id: int, target_kind: TargetKind, target_id: int, limit_name: str
    ) -> bool:
        async with self.transaction() as conn:
            return await kv.delete_quota_override(
                conn, guild_id, target_kind, target_id, limit_name
            )

    async def get_meta(self, key: str) -> str | None:
        async with self._read() as conn:
            return await kv.get_meta(conn, key)

    async def set_meta(self, key: str, value: str) -> None:
        async with self.transaction() as conn:
            await kv.set_meta(conn, key, value)

    # ------------------------------------------------------------------ intake

    async def record_intake(self, intake: Intake) -> None:
        """Keep an acknowledged request until it is a job; returns once the row is committed.
        This runs before the request is acknowledged, so requests arriving together share one
        write, taken ahead of every waiting transaction (an urgent turn, see turns.py): a burst
        of 200 costs a few commits instead of 200 queued behind the burst's other work."""
        written = asyncio.get_running_loop().create_future()
        self._intakes_waiting.append((intake, written))
        if self._intake_writer is None:
            self._intake_writer = asyncio.create_task(self._write_intakes(), name="intake writer")
        await written

    async def _write_intakes(self) -> None:
        batch: list[tuple[Intake, asyncio.Future[None]]] = []
        try:
            # The turn is kept while intakes keep arriving: handing it back between batches would
            # let a waiting transaction in, and the next batch would wait for all of it.
            async with self._db.single_statements(urgent=True) as conn:
                while self._intakes_waiting:
                    # Everything that arrived while waiting for the turn or the last write.
                    batch, self._intakes_waiting = self._intakes_waiting, []
                    failure: Exception | None = None
                    try:
                        await intake_sql.record(conn, [intake for intake, _ in batch])
                    except Exception as exc:  # each waiting request sees its write fail
                        failure = exc
                    for _, written in batch:
                        if written.done():  # its request was cancelled meanwhile
                            continue
                        if failure is None:
                            written.set_result(None)
                        else:
                            written.set_exception(failure)
                    batch = []
        finally:
            self._intake_writer = None
            for _, written in batch + self._intakes_waiting:
                if not written.done():
                    written.set_exception(RuntimeError("the store stopped before the write"))
            self._intakes_waiting = []

    async def drop_intake(self, interaction_id: int) -> None:
        async with self._db.single_statements() as conn:
            await intake_sql.drop(conn, interaction_id)

    async def unrecorded_intakes(self) -> list[Intake]:
        """On start: the acknowledged requests that never became jobs. Those that did are
        dropped here (they are resumed as jobs); each returned one is dropped by the caller once
        its member has been told, so a stop during start-up tells them on the next one."""
        async with self.transaction() as conn:
            await intake_sql.drop_recorded(conn)
            return await intake_sql.unrecorded(conn)

    # ------------------------------------------------------------------ audited changes
    # Limit changes by server admins and owners: each is written with its audit entry in one
    # transaction (see audit.py), so the audit holds exactly the changes that happened.

    async def audited_change(
        self,
        draft: audit.AuditDraft,
        change: audit.Change,
        *,
        refused: bool = False,
        reason: str | None = None,
    ) -> audit.AuditEntry:
        """Apply `change` and record it, with the touched items before and after; a `refused`
        attempt is recorded (after = what was asked for) and changes nothing."""
        async with self.transaction() as conn:
            before = await audit.snapshot(conn, change)
            if refused:
                after = change.requested()
            else:
                await audit.apply(conn, change)
                after = await audit.snapshot(conn, change)
            return await audit.insert_entry(
                conn, draft, self.clock(), before, after, refused=refused, reason=reason
            )

    async def audit_entries(
        self, guild_id: int | None, limit: int, offset: int = 0
    ) -> list[audit.AuditEntry]:
        """A guild's audit (None: the bot-wide changes), newest first, `limit` from `offset`."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must not be negative")
        async with self._read() as conn:
            return await audit.entries(conn, guild_id, limit, offset)

    async def count_audit(self, guild_id: int | None) -> int:
        async with self._read() as conn:
            return await audit.count(conn, guild_id)


def _spend_limits(new: NewJob, limits: Sequence[SpendLimit], overrides: quota.Overrides) -> str:
    """The spend limits a reservation was checked against, as they applied to it (overrides
    applied, exempt ones and other guilds' left out), as JSON kept with the job."""
    kept: list[dict[str, object]] = []
    for default in limits:
        if not quota.applies(default, new):
            continue
        limit = quota.with_overrides(default, overrides)
        if limit is None:
            continue
        if limit.scope == "guild":
            guild: int | str | None = limit.guild_id if limit.guild_id is not None else new.guild_id
        else:
            guild = "any" if limit.guild_id is None else limit.guild_id
        kept.append(
            {
                "name": limit.name,
                "since": limit.since,
                "max": limit.max_micros,
                "user": limit.scope == "user",
                "guild": guild,
            }
        )
    return json.dumps(kept)


async def _headroom(conn: aiosqlite.Connection, job: Job) -> int | None:
    """What the limits the job was reserved under still allow (its own charges counted), or
    None when none applies (a job recorded without a quota check)."""
    if job.spend_limits is None:
        return None
    room: int | None = None
    for limit in json.loads(job.spend_limits):
        raw = limit["guild"]
        guild: int | AnyGuild | None = ANY_GUILD if raw == "any" else raw
        used = await ledger.usage(
            conn,
            since=float(limit["since"]),
            user_id=job.user_id if limit["user"] else None,
            guild_id=guild,
        )
        left = int(limit["max"]) - used
        room = left if room is None else min(room, left)
    return room
