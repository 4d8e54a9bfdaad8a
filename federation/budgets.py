"""Posting budgets as data: how many posts of each kind an account may send per period.

A budget is one server-side bucket, per account and per kind:

- `statuses` — Mastodon statuses (replies, notices, DMs): 300 per 3 hours. Mastodon's
  `RateLimiter::FAMILIES[:statuses]` (`app/lib/rate_limiter.rb`), announced in
  `X-RateLimit-*` headers by `app/controllers/concerns/rate_limit_headers.rb`.
- `media` — image uploads: Mastodon 30 per 30 minutes, `throttle('throttle_api_media',
  limit: 30, period: 30.minutes)` in `config/initializers/rack_attack.rb` (per user, on
  `POST /api/v*/media`); Lemmy the site's `local_site_rate_limit.image`.
- `comments` — Lemmy comments: the site's `local_site_rate_limit.comment`.
- `messages` — Lemmy private messages: the site's `local_site_rate_limit.message`.

The configured value (`[accounts.budgets]`) replaces the platform default; what the server
says (its site limits at start, `X-RateLimit-*` headers, a 429) can only lower it.

This module is pure: the durable ledger that remembers spent slots across restarts and hands
them out first-in-first-out lives in the application (`fedibot/storage/budgets.py`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from federation.types import OutgoingPost

KINDS = ("statuses", "media", "comments", "messages")


class BudgetLimit(BaseModel):
    """`{ limit = 30, per_seconds = 1800 }`: at most `limit` requests in any `per_seconds`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(..., ge=1, le=1_000_000, description="requests allowed per period")
    per_seconds: float = Field(..., gt=0, le=7 * 86400, description="the period in seconds")


class BudgetsConfig(BaseModel):
    """`[accounts.budgets]`: per-kind overrides of the server's documented defaults."""

    model_config = ConfigDict(extra="forbid")

    statuses: BudgetLimit | None = Field(
        None, description="statuses (Mastodon replies, notices, DMs); default 300 per 3 h"
    )
    media: BudgetLimit | None = Field(
        None, description="image uploads; Mastodon default 30 per 30 min, Lemmy the site's"
    )
    comments: BudgetLimit | None = Field(None, description="Lemmy comments; default the site's")
    messages: BudgetLimit | None = Field(
        None, description="Lemmy private messages; default the site's"
    )

    def overrides(self) -> dict[str, BudgetLimit]:
        return {kind: value for kind in KINDS if (value := getattr(self, kind)) is not None}


# Mastodon's documented defaults (see the module docstring for the source lines).
MASTODON_DEFAULTS: dict[str, BudgetLimit] = {
    "statuses": BudgetLimit(limit=300, per_seconds=3 * 3600),
    "media": BudgetLimit(limit=30, per_seconds=30 * 60),
}


def configured_limits(platform: str, config: BudgetsConfig | None) -> dict[str, BudgetLimit]:
    """What an account's budgets are before it has talked to its server: Mastodon's
    documented defaults with the configured kinds replaced; for Lemmy only what is configured
    (the site's own limits are read at start)."""
    if platform == "mastodon":
        return effective_limits(MASTODON_DEFAULTS, config)
    return config.overrides() if config else {}


def effective_limits(
    defaults: dict[str, BudgetLimit], config: BudgetsConfig | None
) -> dict[str, BudgetLimit]:
    """The defaults with the configured kinds replaced (kinds the platform has not stay out)."""
    out = dict(defaults)
    for kind, value in (config.overrides() if config else {}).items():
        if kind in out:
            out[kind] = value
    return out


def lowered(limit: BudgetLimit, server_limit: int | None) -> BudgetLimit:
    """A budget adjusted down to what the server announces (never up)."""
    if server_limit is None or server_limit <= 0 or server_limit >= limit.limit:
        return limit
    return BudgetLimit(limit=server_limit, per_seconds=limit.per_seconds)


def slower(site: BudgetLimit, configured: BudgetLimit | None) -> BudgetLimit:
    """The configured budget when it allows fewer requests per second than the site's."""
    if configured is None:
        return site
    if configured.limit / configured.per_seconds <= site.limit / site.per_seconds:
        return configured
    return site


@dataclass(frozen=True)
class ServerHint:
    """The server's last word on one bucket: `remaining` requests until `reset_at` (epoch)."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None


@runtime_checkable
class Budgeted(Protocol):
    """An adapter that tells the application what a post costs and what it may spend."""

    def budget_limits(self) -> dict[str, BudgetLimit]:
        """Effective limits per kind (config over defaults, lowered by the server)."""
        ...

    def budget_cost(self, post: OutgoingPost) -> dict[str, int]:
        """Requests of each kind that posting `post` takes."""
        ...

    def budget_hints(self) -> dict[str, ServerHint]:
        """What the server last said per kind (headers, 429s); wall-clock instants."""
        ...


def plan_slots(
    taken: Sequence[float],
    limit: int,
    period: float,
    count: int,
    now: float,
    not_before: float = 0.0,
) -> list[float]:
    """Times for `count` more requests after everything in `taken`, first in first out.

    `taken` are the instants of spent and reserved slots (any order). A sliding window: no
    period-long interval holds more than `limit` of them. New slots never come before the
    latest taken slot (so a later job never overtakes an earlier reservation), nor before
    `now` or `not_before`. A `count` above `limit` is planned as `limit` (it can never fit
    otherwise; the server decides).
    """
    events = sorted(taken)
    out: list[float] = []
    start = max(now, not_before, events[-1] if events else 0.0)
    for _ in range(max(0, min(count, limit))):
        at = start
        if len(events) >= limit:
            at = max(at, events[-limit] + period)
        events.append(at)
        out.append(at)
        start = at
    return out
