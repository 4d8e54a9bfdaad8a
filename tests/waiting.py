"""Blocking condition waits for threads and helper processes (the asyncio side uses
`tests.e2e_support.eventually`): poll `condition` until it holds, fail after `timeout`.
Never a fixed sleep raced against a lease or a clock."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_SECONDS = 0.005


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    """Return once `condition()` is truthy; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(POLL_SECONDS)
