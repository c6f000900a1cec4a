"""One PostgreSQL connection as the store's statements see it: the same helpers (execute,
fetch_all, insert) as SQLite's, over asyncpg. The store writes its SQL once, portable between
the two engines, with `?` placeholders; here they become asyncpg's `$1, $2, ...`."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import asyncpg


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> str:
    """`?` -> `$n` outside quoted text. The store's statements are literals (values always go in
    as parameters), so the cache holds a bounded set of texts; the intake's multi-row INSERTs
    differ only by their row count."""
    out: list[str] = []
    n = 0
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


def _params(params: Sequence[Any]) -> list[Any]:
    # The schema keeps flags as integers 0/1 (as SQLite does); asyncpg will not send a bool
    # as an integer.
    return [int(p) if isinstance(p, bool) else p for p in params]


def _count(status: str) -> int:
    """Rows a command changed, from its status ("UPDATE 3", "INSERT 0 2", "DELETE 1")."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PgConn:
    """A pool connection lent to one transaction or one read."""

    def __init__(self, raw: asyncpg.Connection) -> None:
        self.raw = raw

    async def fetch_all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self.raw.fetch(numbered(sql), *_params(params)))

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        if params:
            status = await self.raw.execute(numbered(sql), *_params(params))
        else:
            # Without parameters asyncpg sends the simple protocol, which also runs DDL.
            status = await self.raw.execute(numbered(sql))
        return _count(status)

    async def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one INSERT into a table with an `id` column; the new id."""
        value = await self.raw.fetchval(numbered(sql) + " RETURNING id", *_params(params))
        return int(value)
