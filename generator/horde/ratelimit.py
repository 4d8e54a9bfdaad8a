"""Clocks and a keyed sliding-window rate limiter (the clock is injected so tests never sleep)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A virtual clock for tests: `sleep` moves time forward at once and yields to the loop.

    With several tasks each sleep adds to one shared time line, so time only ever grows and
    every wait a limiter asks for is honoured (never shortened).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


class ScaledClock:
    """Real time sped up `factor` times (benchmarks): simulated seconds in, real seconds out."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self._t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.factor

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.factor)


class RateLimiter:
    """At most `limit` acquisitions per `per` seconds for each key (a sliding window)."""

    def __init__(self, limit: int, per: float, clock: Clock) -> None:
        if limit < 1 or per <= 0:
            raise ValueError("limit must be >= 1 and per > 0")
        self.limit = limit
        self.per = per
        self.clock = clock
        self._calls: dict[str, deque[float]] = {}

    def delay(self, key: str = "") -> float:
        """Seconds until `key` may be used again (0 when free now)."""
        calls = self._calls.get(key)
        if not calls:
            return 0.0
        now = self.clock.now()
        while calls and calls[0] <= now - self.per:
            calls.popleft()
        if len(calls) < self.limit:
            return 0.0
        return calls[0] + self.per - now

    async def acquire(self, key: str = "") -> None:
        """Wait until `key` is free, then count one use (check and count are not split by an
        await, so concurrent callers cannot both slip through)."""
        while (wait := self.delay(key)) > 0:
            await self.clock.sleep(wait)
        self._calls.setdefault(key, deque()).append(self.clock.now())

    def defer(self, key: str, seconds: float) -> None:
        """The server said wait (Retry-After): block `key` for `seconds` from now."""
        until = self.clock.now() + seconds - self.per
        self._calls[key] = deque([until] * self.limit)

    def forget(self, key: str) -> None:
        self._calls.pop(key, None)
