"""Rate-limit header parsing, budgets and jittered backoff (federation/pacing.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from federation.pacing import (
    Backoff,
    Budget,
    RateLimitInfo,
    backoff_delay,
    parse_ratelimit_headers,
    retry_after_seconds,
)

NOW = datetime(2026, 8, 1, 13, 51, 43, tzinfo=UTC).timestamp()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_recorded_iso_reset_is_read_against_the_server_date() -> None:
    # From notifications_mentions_only.yaml; the Date header is the server's clock.
    headers = {
        "x-ratelimit-limit": "300",
        "x-ratelimit-remaining": "299",
        "x-ratelimit-reset": "2026-08-01T13:55:00.940463Z",
        "Date": "Sat, 01 Aug 2026 13:51:43 GMT",
    }
    info = parse_ratelimit_headers(headers, now=NOW + 3600)  # local clock an hour off
    assert info is not None
    assert (info.limit, info.remaining) == (300, 299)
    assert abs(info.reset_in - 197.940463) < 1e-3


def test_reset_as_epoch_or_delta_and_missing_headers() -> None:
    assert parse_ratelimit_headers(
        {"X-RateLimit-Reset": str(int(NOW) + 30)}, now=NOW
    ) == RateLimitInfo(None, None, 30.0)
    assert parse_ratelimit_headers({"X-RateLimit-Reset": "12"}, now=NOW).reset_in == 12.0
    assert parse_ratelimit_headers({"Content-Type": "application/json"}, now=NOW) is None
    assert parse_ratelimit_headers({"x-ratelimit-reset": "garbage"}, now=NOW) is None


def test_retry_after_prefers_retry_after_then_reset() -> None:
    assert retry_after_seconds({"Retry-After": "7", "x-ratelimit-reset": "99"}, now=NOW) == 7.0
    http_date = {"Retry-After": "Sat, 01 Aug 2026 13:52:13 GMT"}
    assert retry_after_seconds(http_date, now=NOW) == 30.0
    iso = {"x-ratelimit-reset": "2026-08-01T13:52:03Z"}
    assert retry_after_seconds(iso, now=NOW) == 20.0
    assert retry_after_seconds({}, now=NOW) is None


def test_budget_follows_server_headers_until_reset() -> None:
    clock = FakeClock()
    budget = Budget("statuses", None, None, clock=clock)
    assert budget.wait_for(1) == 0.0
    budget.observe(RateLimitInfo(300, 1, 50.0))
    assert budget.wait_for(1) == 0.0
    budget.record_call()
    assert budget.wait_for(1) == 50.0
    clock.now += 20
    assert budget.wait_for(1) == 30.0
    clock.now += 30
    assert budget.wait_for(1) == 0.0 and budget.remaining is None


def test_sliding_window_counts_own_calls() -> None:
    clock = FakeClock()
    media = Budget("media", 30, 1800, clock=clock)
    for _ in range(28):
        media.record_call()
        clock.now += 1
    assert media.wait_for(2) == 0.0
    # 4 more do not fit: the first two calls must age out (made at t=1000 and 1001).
    assert media.wait_for(4) == 1001 + 1800 - clock.now
    assert media.wait_for(31) == 1800


def test_exhausted_for_blocks_everything_until_then() -> None:
    clock = FakeClock()
    budget = Budget("api", None, None, clock=clock)
    budget.exhausted_for(12.5)
    assert budget.wait_for(1) == 12.5


def test_backoff_is_jittered_exponential_and_capped() -> None:
    rng = random.Random(4)
    delays = [backoff_delay(n, base=1.0, cap=60.0, rng=rng) for n in range(10)]
    for n, delay in enumerate(delays):
        ceiling = min(60.0, 2.0**n)
        assert ceiling / 2 <= delay <= ceiling
    assert len({round(d, 6) for d in delays}) == len(delays)  # jitter: no two alike
    backoff = Backoff(base=1.0, cap=8.0, rng=random.Random(1))
    first = [backoff.next_delay() for _ in range(6)]
    assert first[-1] <= 8.0 and first[-1] >= 4.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0
