"""Rate-limit budgets and backoff with jitter, for any adapter.

A `Budget` is one server-side bucket (e.g. Mastodon's 300 statuses per 3 hours, 30 media
uploads per 30 minutes). It learns from the `X-RateLimit-*` headers the server sends and, for
buckets the server does not announce reliably, also counts our own calls in a sliding
window. When a budget is spent, callers get the seconds until it resets instead of sleeping:
the job queue holds the work meanwhile.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

Clock = Callable[[], float]


@dataclass(frozen=True)
class RateLimitInfo:
    """What one response said about its bucket. `reset_in` is seconds from now."""

    limit: int | None
    remaining: int | None
    reset_in: float | None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case sensitive; requests' headers are not
        lowered = name.lower()
        for key, val in headers.items():
            if key.lower() == lowered:
                return val
    return value


def _parse_int(value: str | None) -> int | None:
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


def _parse_instant(value: str) -> datetime | None:
    """An ISO-8601 instant (Mastodon) or an HTTP date; naive values are taken as UTC."""
    value = value.strip()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _server_now(headers: Mapping[str, str], now: float) -> float:
    """The server's clock from its `Date` header, so a skewed local clock does not matter."""
    date = _header(headers, "Date")
    if date:
        parsed = _parse_instant(date)
        if parsed is not None:
            return parsed.timestamp()
    return now


def seconds_until_reset(value: str, headers: Mapping[str, str], now: float) -> float | None:
    """Seconds until an `X-RateLimit-Reset` value: ISO-8601 instant, epoch, or a delta."""
    value = value.strip()
    number: float | None
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None:
        if number > 1_000_000_000:  # an epoch timestamp (GoToSocial)
            return max(0.0, number - _server_now(headers, now))
        return max(0.0, number)  # already a delta in seconds
    instant = _parse_instant(value)
    if instant is None:
        return None
    return max(0.0, instant.timestamp() - _server_now(headers, now))


def parse_ratelimit_headers(
    headers: Mapping[str, str], now: float | None = None
) -> RateLimitInfo | None:
    """`X-RateLimit-Limit/Remaining/Reset` of one response, or None when absent."""
    now = time.time() if now is None else now
    limit = _parse_int(_header(headers, "X-RateLimit-Limit"))
    remaining = _parse_int(_header(headers, "X-RateLimit-Remaining"))
    reset_raw = _header(headers, "X-RateLimit-Reset")
    reset_in = seconds_until_reset(reset_raw, headers, now) if reset_raw else None
    if limit is None and remaining is None and reset_in is None:
        return None
    return RateLimitInfo(limit, remaining, reset_in)


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """How long a 429 asks us to wait: `Retry-After` first, then `X-RateLimit-Reset`."""
    now = time.time() if now is None else now
    retry_after = _header(headers, "Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after.strip()))
        except ValueError:
            instant = _parse_instant(retry_after)
            if instant is not None:
                return max(0.0, instant.timestamp() - _server_now(headers, now))
    reset = _header(headers, "X-RateLimit-Reset")
    if reset:
        return seconds_until_reset(reset, headers, now)
    return None


def backoff_delay(
    attempt: int,
    *,
    base: float = 1.0,
    cap: float = 300.0,
    rng: random.Random | None = None,
) -> float:
    """Exponential backoff with "equal jitter": between half and all of base·2^attempt."""
    ceiling = min(cap, base * (2 ** max(0, min(attempt, 30))))
    r = (rng or random).random()
    return ceiling / 2 + r * ceiling / 2


class Backoff:
    """Consecutive-failure counter that yields jittered delays; `reset()` after a success."""

    def __init__(self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rng = rng

    def next_delay(self) -> float:
        delay = backoff_delay(self.failures, base=self.base, cap=self.cap, rng=self._rng)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


class Budget:
    """One rate-limit bucket: what the server last told us, plus our own count of calls.

    `wait_for(n)` says how many seconds until `n` more calls fit (0 when they fit now).
    The local sliding window (`limit` calls per `period` seconds) covers buckets whose
    headers we may not see (or that other clients share); server headers, when they say
    less remains, win.
    """

    def __init__(
        self,
        name: str,
        limit: int | None,
        period: float | None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self.limit = limit
        self.period = period
        self._clock = clock
        self._calls: deque[float] = deque()
        self._server_remaining: int | None = None
        self._server_reset_at: float | None = None  # on our clock
        self.server_limit: int | None = None  # the last `X-RateLimit-Limit` seen

    # -- learning ------------------------------------------------------------------------

    def record_call(self) -> None:
        """Count one call we made (for the local sliding window)."""
        self._calls.append(self._clock())
        if self._server_remaining is not None:
            self._server_remaining = max(0, self._server_remaining - 1)

    def observe(self, info: RateLimitInfo | None) -> None:
        """Take in what the server said about this bucket in a response."""
        if info is None:
            return
        if info.limit is not None:
            self.server_limit = info.limit
        if info.remaining is not None:
            self._server_remaining = info.remaining
        if info.reset_in is not None:
            self._server_reset_at = self._clock() + info.reset_in
        elif info.remaining is not None:
            self._server_reset_at = None

    def exhausted_for(self, seconds: float) -> None:
        """The server refused (429): nothing fits for `seconds`."""
        self._server_remaining = 0
        self._server_reset_at = self._clock() + max(0.0, seconds)

    # -- asking --------------------------------------------------------------------------

    def wait_for(self, n: int = 1) -> float:
        """Seconds until `n` more calls fit in this budget (0.0 when they fit now)."""
        now = self._clock()
        waits = [0.0]
        if self._server_reset_at is not None:
            if now >= self._server_reset_at:
                self._server_remaining = None
                self._server_reset_at = None
            elif self._server_remaining is not None and self._server_remaining < n:
                waits.append(self._server_reset_at - now)
        if self.limit is not None and self.period is not None:
            while self._calls and self._calls[0] <= now - self.period:
                self._calls.popleft()
            if n > self.limit:
                waits.append(self.period)
            else:
                overflow = len(self._calls) + n - self.limit
                if overflow > 0:
                    # The calls that must age out first; the last of them decides.
                    waits.append(self._calls[overflow - 1] + self.period - now)
        return max(waits)

    def server_view(self) -> tuple[int | None, int | None, float | None]:
        """(limit, remaining, seconds until reset) as the server last said (None: unknown)."""
        self.wait_for(0)
        reset_at = self._server_reset_at
        reset_in = None if reset_at is None else max(0.0, reset_at - self._clock())
        return self.server_limit, self._server_remaining, reset_in

    @property
    def remaining(self) -> int | None:
        """The server's last word on what remains (None when unknown or reset)."""
        self.wait_for(0)
        return self._server_remaining
