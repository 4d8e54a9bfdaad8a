"""The replier's side of posting budgets: ask the durable ledger before every post, hold the
job (first in first out) when its slots are not due yet, and turn a multi-image result into
one grid image when that gets it out sooner (`[replies] grid`)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from federation.base import Adapter
from federation.budgets import Budgeted, BudgetLimit, configured_limits
from federation.errors import TransientError
from federation.types import OutgoingPost
from fedibot.outbound.grid import compose_grid
from fedibot.storage.budgets import BudgetLedger, BudgetView

log = logging.getLogger("fedibot.outbound.budgets")


class BudgetHeld(TransientError):
    """The account's posting budget holds this job until its reserved slots are due."""

    code = "budget_held"


class BudgetGate:
    def __init__(self, ledger: BudgetLedger | None, grid: str = "never") -> None:
        self.ledger = ledger
        self.grid = grid

    def _budgeted(self, adapter: Adapter) -> Budgeted | None:
        if self.ledger is None or not isinstance(adapter, Budgeted):
            return None
        return adapter

    async def acquire(self, row: Any, adapter: Adapter, post: OutgoingPost) -> float | None:
        """Spend the post's slots, or raise `BudgetHeld(retry_after=…)`. Returns the moment
        the slots were taken (for `settle`), None when the adapter has no budgets."""
        budgeted = self._budgeted(adapter)
        if budgeted is None or self.ledger is None:
            return None
        since = self.ledger.clock()
        cost = budgeted.budget_cost(post)
        wait = await self.ledger.acquire(
            row.bot_account, row.id, cost, budgeted.budget_limits(), budgeted.budget_hints()
        )
        if wait > 0:
            kinds = ", ".join(sorted(cost))
            raise BudgetHeld(
                f"{row.bot_account}: posting budget ({kinds}) holds job {row.id} for {wait:.0f} s",
                retry_after=wait,
            )
        return since

    async def settle(self, row: Any, since: float | None) -> None:
        if since is not None and self.ledger is not None:
            await self.ledger.settle(row.bot_account, row.id, since)

    async def record(self, row: Any, adapter: Adapter, post: OutgoingPost) -> None:
        """A post that went out without asking (a courtesy notice) still spends its slots."""
        budgeted = self._budgeted(adapter)
        if budgeted is not None and self.ledger is not None:
            await self.ledger.record(row.bot_account, None, budgeted.budget_cost(post))

    async def release(self, row: Any) -> None:
        if self.ledger is not None:
            await self.ledger.release(row.id)

    async def maybe_grid(self, row: Any, adapter: Adapter, post: OutgoingPost) -> OutgoingPost:
        """`always`: several images become one grid; `when_short`: only when the separate
        uploads would have to wait and the grid would not (or less)."""
        if self.grid == "never" or len(post.media) < 2:
            return post
        if (row.params or {}).get("grid") is False:
            return post
        gridded = (row.params or {}).get("grid") is True or self.grid == "always"
        if not gridded:
            budgeted = self._budgeted(adapter)
            if budgeted is None or self.ledger is None:
                return post
            limits, hints = budgeted.budget_limits(), budgeted.budget_hints()
            single = dataclasses.replace(post, media=post.media[:1])
            as_is = await self.ledger.acquire(
                row.bot_account, row.id, budgeted.budget_cost(post), limits, hints, dry_run=True
            )
            as_grid = await self.ledger.acquire(
                row.bot_account, row.id, budgeted.budget_cost(single), limits, hints, dry_run=True
            )
            gridded = as_is > 0 and as_grid < as_is
        if not gridded:
            return post
        out = Path(post.media[0].path).parent / f"job-{row.id}-grid.png"
        try:
            item = compose_grid(post.media, out)
        except Exception:  # a grid is an optimisation: post the images as they are
            log.exception("job %s: could not compose the grid image", row.id)
            return post
        log.info("job %s: %d images posted as one grid (%s)", row.id, len(post.media), self.grid)
        return dataclasses.replace(post, media=(item,))


def config_budgets(config: Any) -> dict[tuple[str, str], BudgetLimit]:
    """The budgets the config implies before the bot has posted (Mastodon's defaults or the
    configured values; a Lemmy site's own limits are known only once the bot started)."""
    out: dict[tuple[str, str], BudgetLimit] = {}
    for acc in config.accounts:
        for kind, limit in configured_limits(acc.platform, acc.budgets).items():
            out[(acc.name, kind)] = limit
    return out


def _in(seconds: float) -> str:
    if seconds <= 0:
        return "now"
    if seconds < 120:
        return f"in {seconds:.0f} s"
    return f"in {seconds / 60:.0f} min"


def budget_report(views: list[BudgetView], now: float) -> list[dict[str, Any]]:
    """One dict per budget for `queue stats --json` and `doctor`, with relative times."""
    out = []
    for v in views:
        d = v.as_dict()
        d["next_free_in_seconds"] = round(max(0.0, v.next_free_at - now), 1)
        d["frees_up_in_seconds"] = round(max(0.0, v.frees_up_at - now), 1) if v.frees_up_at else 0
        d["summary"] = (
            f"{v.spent}/{v.limit} per {v.per_seconds / 60:g} min spent, "
            f"{len(v.held_jobs)} job(s) held ({v.reserved} slot(s) reserved), "
            f"next slot {_in(v.next_free_at - now)}"
            + (f", all held jobs served {_in(v.frees_up_at - now)}" if v.frees_up_at else "")
            + (
                f"; the server refuses until {_in(v.server_blocked_until - now)}"
                if v.server_blocked_until
                else ""
            )
        )
        out.append(d)
    return out
