"""The Store's intake: requests acknowledged to Discord that are not jobs yet, written together
ahead of everything else so that a burst of requests is acknowledged quickly (see turns.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from bot.store import intake as intake_sql
from bot.store.base import StoreBase
from bot.store.db import Engine
from bot.store.records import Intake


class Intakes(StoreBase):
    """Acknowledged requests that are not jobs yet."""

    def __init__(self, db: Engine, clock: Callable[[], float] = time.time) -> None:
        super().__init__(db, clock)
        # Intakes waiting for the next shared write, and the task writing them (see record_intake).
        self._intakes_waiting: list[tuple[Intake, asyncio.Future[None]]] = []
        self._intake_writer: asyncio.Task[None] | None = None

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
                        await intake_sql.record(
                            conn,
                            [intake for intake, _ in batch],
                            self._new_lease(self.clock()),
                        )
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
        except BaseException:
            self._intake_writer = None
            for _, written in batch + self._intakes_waiting:
                if not written.done():
                    written.set_exception(RuntimeError("the store stopped before the write"))
            self._intakes_waiting = []
            raise
        # Handing the connection back may wait (PostgreSQL's pool): intakes that arrived
        # meanwhile found this writer still set, so it starts the next one for them.
        self._intake_writer = None
        if self._intakes_waiting:
            self._intake_writer = asyncio.create_task(self._write_intakes(), name="intake writer")

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
