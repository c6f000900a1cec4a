"""The Store's copies of reference images, on a database several processes share."""

from __future__ import annotations

from bot.store import references
from bot.store.base import StoreBase


class References(StoreBase):
    """A job's reference image, kept in the database until the job is sent (references.py)."""

    async def keep_reference(self, job_id: int, content_type: str, data: bytes) -> None:
        """Keep a job's reference image in the database (a shared one), for whichever process
        sends the job."""
        async with self._db.single_statements() as conn:
            await references.keep(conn, job_id, content_type, data)

    async def kept_reference(self, job_id: int) -> tuple[str, bytes] | None:
        """A job's reference image as kept by `keep_reference`: its type and bytes."""
        async with self._read() as conn:
            return await references.kept(conn, job_id)

    async def drop_sent_references(self) -> int:
        """Forget the reference images of jobs past sending."""
        async with self._db.single_statements() as conn:
            return await references.drop_sent(conn)
