"""Turns on the one database connection: a lock whose urgent waiters go first.

Under a burst of commands the ordinary queue for the connection holds one transaction per
request already acknowledged (reserve, mark sent, ...). A request's intake row is written before
its acknowledgement, so it must not wait behind all of them: Discord gives 3 seconds, and every
millisecond there is the member's. Urgent turns are taken in order among themselves, before any
ordinary one; the turn being used is never interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator


class Turns:
    def __init__(self) -> None:
        self._held = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._ordinary: deque[asyncio.Future[None]] = deque()

    @property
    def held(self) -> bool:
        return self._held

    @contextlib.asynccontextmanager
    async def turn(self, *, urgent: bool = False) -> AsyncIterator[None]:
        await self._acquire(urgent)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, urgent: bool) -> None:
        if not self._held and not self._urgent and not self._ordinary:
            self._held = True
            return
        queue = self._urgent if urgent else self._ordinary
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # The turn was handed over just as this waiter was cancelled: pass it on.
                self._release()
            else:
                # A release may already have skipped (and dropped) the cancelled waiter.
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            raise

    def _release(self) -> None:
        # Hand the turn straight to the next waiter (it stays held), so no newcomer can slip in
        # between the release and the waiter's wake-up.
        for queue in (self._urgent, self._ordinary):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._held = False
