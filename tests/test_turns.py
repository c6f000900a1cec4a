"""Turns on the database connection: one at a time, urgent waiters first, nothing lost to a
cancelled waiter."""

from __future__ import annotations

import asyncio

import pytest

from bot.store.turns import Turns


async def take(turns: Turns, name: str, order: list[str], *, urgent: bool = False) -> None:
    async with turns.turn(urgent=urgent):
        order.append(name)
        await asyncio.sleep(0)


async def hold(turns: Turns, release: asyncio.Event, started: asyncio.Event) -> None:
    async with turns.turn():
        started.set()
        await release.wait()


async def queued_behind_a_holder(
    turns: Turns, waiters: list[tuple[str, bool]], order: list[str]
) -> tuple[asyncio.Event, list[asyncio.Task[None]]]:
    release, started = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(hold(turns, release, started))
    await started.wait()
    tasks = [holder]
    for name, urgent in waiters:
        tasks.append(asyncio.create_task(take(turns, name, order, urgent=urgent)))
        await asyncio.sleep(0)  # each reaches the queue in this order
    return release, tasks


async def test_urgent_waiters_go_before_ordinary_ones_each_in_arrival_order() -> None:
    turns, order = Turns(), list[str]()
    release, tasks = await queued_behind_a_holder(
        turns, [("a", False), ("u1", True), ("b", False), ("u2", True), ("c", False)], order
    )
    assert order == []  # nobody passes the holder
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["u1", "u2", "a", "b", "c"]
    assert not turns.held


async def test_one_turn_at_a_time() -> None:
    turns, inside, most = Turns(), 0, 0

    async def use(urgent: bool) -> None:
        nonlocal inside, most
        async with turns.turn(urgent=urgent):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(use(n % 3 == 0) for n in range(60)))
    assert most == 1
    assert not turns.held


async def test_a_cancelled_waiter_gives_up_its_place() -> None:
    turns, order = Turns(), list[str]()
    release, tasks = await queued_behind_a_holder(turns, [("a", True), ("b", False)], order)
    tasks[1].cancel()
    release.set()
    await asyncio.gather(tasks[0], tasks[2])
    with pytest.raises(asyncio.CancelledError):
        await tasks[1]
    assert order == ["b"]
    assert not turns.held


async def test_a_waiter_cancelled_as_the_turn_reaches_it_passes_the_turn_on() -> None:
    turns, order = Turns(), list[str]()
    entered, leave = asyncio.Event(), asyncio.Event()
    first: asyncio.Task[None] | None = None

    async def holder() -> None:
        async with turns.turn():
            entered.set()
            await leave.wait()
        # The turn was just handed to `first`, which has not resumed yet: cancel it now.
        assert first is not None
        first.cancel()

    held = asyncio.create_task(holder())
    await entered.wait()
    first = asyncio.create_task(take(turns, "a", order))
    await asyncio.sleep(0)
    second = asyncio.create_task(take(turns, "b", order))
    await asyncio.sleep(0)
    leave.set()
    await asyncio.gather(held, second)
    with pytest.raises(asyncio.CancelledError):
        await first
    assert order == ["b"]
    assert not turns.held


async def test_a_free_turn_is_taken_at_once_and_a_newcomer_cannot_jump_a_handover() -> None:
    turns, order = Turns(), list[str]()
    async with turns.turn():
        waiting = asyncio.create_task(take(turns, "waiting", order))
        await asyncio.sleep(0)
    # The turn now belongs to "waiting" even before it runs: a newcomer queues behind it.
    assert turns.held
    await take(turns, "newcomer", order)
    await waiting
    assert order == ["waiting", "newcomer"]
