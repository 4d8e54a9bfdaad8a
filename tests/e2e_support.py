"""Shared by the end-to-end suites: waiting for conditions and for an App's queue to settle.
(The per-test `data_dir` on the session's tiny model is a fixture in tests/conftest.py.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fedibot.app import App


async def eventually(
    check: Callable[[], Awaitable[Any] | Any], timeout: float = 20.0, interval: float = 0.05
) -> Any:
    """Wait until `check()` returns something truthy; fail with its last value on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


async def settled(app: App, timeout: float = 20.0) -> dict[str, int]:
    """Wait until no job is queued, generating, generated or replying and no error reply is
    pending; return the queue's stats."""

    async def idle() -> dict[str, int] | None:
        stats = await app.queue.stats()
        busy = sum(stats[s] for s in ("queued", "generating", "generated", "replying"))
        pending = [
            j
            for j in await app.queue.list_jobs(limit=1000)
            if j.reply_state in ("pending", "sending")
        ]
        return None if busy or pending else stats

    return await eventually(idle, timeout)
