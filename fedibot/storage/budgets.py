"""The durable posting-budget ledger: spent and reserved slots per account and kind.

Every request a post takes (a status, an upload, a comment, a private message) is one slot.
A slot is *spent* when the post goes out and *reserved* (at a future instant) for a job the
budget holds back. Slots live in the database, so a restart neither resets the budget nor
forgets who was waiting. Reservations are handed out first in first out, in job order: a
held job keeps its place, a newer job is planned after it, and an older job that arrives
later goes before newer jobs whose turn has not come yet.

The limits are data (`federation/budgets.py`): the adapter's effective limits, stored here
with the server's last word (a 429 or `X-RateLimit-Remaining: 0` until a reset), which
also survives a restart.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, delete, insert, or_, select, update

from federation.budgets import BudgetLimit, ServerHint, plan_slots
from fedibot.storage.database import Database
from fedibot.storage.models import BudgetSlot, BudgetState, Job, JobState, ReplyState

slots = cast(Table, BudgetSlot.__table__)
states = cast(Table, BudgetState.__table__)
jobs = cast(Table, Job.__table__)

# A reservation nobody came back for within a whole period is dropped (the job is gone).
_ENDED = (JobState.DONE, JobState.CANCELLED)
_ERROR_REPLY_ACTIVE = (ReplyState.PENDING, ReplyState.SENDING)


@dataclass
class BudgetView:
    """One budget as an operator sees it (`queue stats`, `/metrics`, `doctor`)."""

    account: str
    kind: str
    limit: int
    per_seconds: float
    spent: int  # slots spent in the current window
    reserved: int  # slots reserved for held jobs
    held_jobs: list[int] = field(default_factory=list)
    next_free_at: float = 0.0  # when one more request could go (now when free)
    frees_up_at: float = 0.0  # when every held job has its slots (0: none held)
    server_blocked_until: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BudgetLedger:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    # ------------------------------------------------------------------ posting side
    async def acquire(
        self,
        account: str,
        job_id: int | None,
        cost: Mapping[str, int],
        limits: Mapping[str, BudgetLimit],
        hints: Mapping[str, ServerHint] | None = None,
        *,
        dry_run: bool = False,
    ) -> float:
        """Take `cost` slots for a job: 0.0 when it may post now (the slots are spent), else
        the seconds until its reserved slots are due (they stay reserved for it).

        `dry_run` only says how long the job would wait and changes nothing.
        """
        now = self.clock()
        return await self.db.run(
            self._acquire,
            account,
            job_id,
            dict(cost),
            dict(limits),
            dict(hints or {}),
            now,
            dry_run,
        )

    def _acquire(
        self,
        conn: Connection,
        account: str,
        job_id: int | None,
        cost: dict[str, int],
        limits: dict[str, BudgetLimit],
        hints: dict[str, ServerHint],
        now: float,
        dry_run: bool,
    ) -> float:
        plans: dict[str, tuple[list[int], list[float]]] = {}
        due = now
        for kind, count in sorted(cost.items()):
            limit = limits.get(kind)
            if limit is None or count <= 0:
                continue
            state = self._state(conn, account, kind, limit, hints.get(kind), now, dry_run)
            own, times = self._plan(conn, account, kind, job_id, count, state, now, dry_run)
            plans[kind] = (own, times)
            if times:
                due = max(due, max(times))
        if dry_run:
            return max(0.0, due - now)
        go = due <= now
        for kind, (own, times) in plans.items():
            fresh = times[len(own) :]
            if go:
                if own:
                    conn.execute(
                        update(slots).where(slots.c.id.in_(own)).values(at=now, spent=True)
                    )
                if fresh:
                    conn.execute(
                        insert(slots),
                        [
                            {
                                "account": account,
                                "kind": kind,
                                "at": now,
                                "job_id": job_id,
                                "spent": True,
                            }
                            for _ in fresh
                        ],
                    )
            elif fresh:
                conn.execute(
                    insert(slots),
                    [
                        {
                            "account": account,
                            "kind": kind,
                            "at": at,
                            "job_id": job_id,
                            "spent": False,
                        }
                        for at in fresh
                    ],
                )
        return 0.0 if go else due - now

    def _state(
        self,
        conn: Connection,
        account: str,
        kind: str,
        limit: BudgetLimit,
        hint: ServerHint | None,
        now: float,
        dry_run: bool,
    ) -> dict[str, Any]:
        """Store the effective limit and merge the server's word with what was stored."""
        where = and_(states.c.account == account, states.c.kind == kind)
        stored = conn.execute(select(states).where(where)).first()
        remaining = reset_at = None
        if stored is not None and stored.server_reset_at and stored.server_reset_at > now:
            remaining, reset_at = stored.server_remaining, stored.server_reset_at
        if (
            hint is not None
            and hint.reset_at is not None
            and hint.reset_at > now
            and hint.remaining is not None
        ):
            remaining, reset_at = hint.remaining, hint.reset_at
        values = {
            "limit": limit.limit,
            "per_seconds": limit.per_seconds,
            "server_remaining": remaining,
            "server_reset_at": reset_at,
            "updated_at": now,
        }
        if not dry_run:
            if stored is None:
                conn.execute(insert(states).values(account=account, kind=kind, **values))
            else:
                conn.execute(update(states).where(where).values(**values))
        return values

    def _plan(
        self,
        conn: Connection,
        account: str,
        kind: str,
        job_id: int | None,
        count: int,
        state: dict[str, Any],
        now: float,
        dry_run: bool,
    ) -> tuple[list[int], list[float]]:
        """(ids of this job's reservations used, the times of all its `count` slots)."""
        limit, period = int(state["limit"]), float(state["per_seconds"])
        if not dry_run:
            self._prune(conn, account, kind, period, now)
        rows = conn.execute(
            select(slots.c.id, slots.c.at, slots.c.job_id, slots.c.spent)
            .where(
                slots.c.account == account,
                slots.c.kind == kind,
                or_(slots.c.at > now - period, slots.c.spent.is_(False)),
            )
            .order_by(slots.c.at, slots.c.id)
        ).all()
        mine = [r for r in rows if not r.spent and job_id is not None and r.job_id == job_id]
        extra_mine = [r.id for r in mine[count:]]
        mine = mine[:count]
        if extra_mine and not dry_run:  # e.g. the images became one grid: give the rest back
            conn.execute(delete(slots).where(slots.c.id.in_(extra_mine)))
        need = count - len(mine)
        own_times = [r.at for r in mine]
        if need <= 0:
            return [r.id for r in mine], own_times
        # Newer jobs' reservations that are not due yet make way for this (older) job.
        later = [
            r
            for r in rows
            if not r.spent
            and r.at > now
            and job_id is not None
            and r.job_id is not None
            and r.job_id > job_id
        ]
        later_ids = {r.id for r in later}
        taken = [r.at for r in rows if r.id not in later_ids and r.id not in extra_mine]
        not_before = 0.0
        remaining, reset_at = state["server_remaining"], state["server_reset_at"]
        if reset_at is not None and reset_at > now and remaining is not None:
            pending = sum(1 for r in rows if not r.spent and r.at < reset_at and r.job_id != job_id)
            if remaining < pending + need:
                not_before = reset_at
        fresh = plan_slots(taken, limit, period, need, now, not_before)
        if later and not dry_run:
            # Re-plan the newer jobs after this one, in job order (their times only move on).
            after = taken + fresh
            by_job: dict[int, list[Any]] = defaultdict(list)
            for r in later:
                by_job[int(r.job_id)].append(r)
            for jid in sorted(by_job):
                times = plan_slots(after, limit, period, len(by_job[jid]), now, not_before)
                for r, at in zip(by_job[jid], times, strict=False):
                    conn.execute(update(slots).where(slots.c.id == r.id).values(at=at))
                after += times
        return [r.id for r in mine], own_times + fresh

    def _prune(self, conn: Connection, account: str, kind: str, period: float, now: float) -> None:
        """Forget spent slots older than a period and reservations nobody will use."""
        base = and_(slots.c.account == account, slots.c.kind == kind)
        conn.execute(delete(slots).where(base, slots.c.spent.is_(True), slots.c.at <= now - period))
        conn.execute(
            delete(slots).where(base, slots.c.spent.is_(False), slots.c.at <= now - period)
        )
        ended = select(jobs.c.id).where(
            or_(
                jobs.c.state.in_(_ENDED),
                and_(
                    jobs.c.state.in_((JobState.FAILED, JobState.REJECTED)),
                    jobs.c.reply_state.not_in(_ERROR_REPLY_ACTIVE),
                ),
            )
        )
        conn.execute(delete(slots).where(base, slots.c.spent.is_(False), slots.c.job_id.in_(ended)))

    async def settle(self, account: str, job_id: int | None, since: float) -> None:
        """The post went out: date its slots at the moment it finished (never earlier than
        the adapter's own count of the same requests)."""
        if job_id is None:
            return
        now = self.clock()
        await self.db.run(
            lambda conn: conn.execute(
                update(slots)
                .where(
                    slots.c.account == account,
                    slots.c.job_id == job_id,
                    slots.c.spent.is_(True),
                    slots.c.at >= since,
                )
                .values(at=now)
            )
        )

    async def record(self, account: str, job_id: int | None, cost: Mapping[str, int]) -> None:
        """Requests that went out without asking (a courtesy notice): spent now."""
        now = self.clock()
        rows = [
            {"account": account, "kind": kind, "at": now, "job_id": job_id, "spent": True}
            for kind, count in cost.items()
            for _ in range(max(0, count))
        ]
        if rows:
            await self.db.run(lambda conn: conn.execute(insert(slots), rows))

    async def release(self, job_id: int) -> int:
        """Give back a job's reservations (it will not post)."""
        result = await self.db.run(
            lambda conn: conn.execute(
                delete(slots).where(slots.c.job_id == job_id, slots.c.spent.is_(False))
            )
        )
        return int(result.rowcount or 0)

    # ------------------------------------------------------------------ operator side
    async def snapshot(
        self, defaults: Mapping[tuple[str, str], BudgetLimit] | None = None
    ) -> list[BudgetView]:
        """Every known budget: limit, spent, held jobs and when it frees up. `defaults` adds
        budgets the running bot has not used yet (from the config)."""
        now = self.clock()
        return await self.db.run(self._snapshot, dict(defaults or {}), now)

    def _snapshot(
        self, conn: Connection, defaults: dict[tuple[str, str], BudgetLimit], now: float
    ) -> list[BudgetView]:
        known: dict[tuple[str, str], dict[str, Any]] = {
            key: {
                "limit": lim.limit,
                "per_seconds": lim.per_seconds,
                "server_remaining": None,
                "server_reset_at": None,
            }
            for key, lim in defaults.items()
        }
        for row in conn.execute(select(states)).all():
            known[(row.account, row.kind)] = dict(row._mapping)
        out = []
        for (account, kind), state in sorted(known.items()):
            limit, period = int(state["limit"]), float(state["per_seconds"])
            rows = conn.execute(
                select(slots.c.at, slots.c.job_id, slots.c.spent).where(
                    slots.c.account == account,
                    slots.c.kind == kind,
                    or_(slots.c.at > now - period, slots.c.spent.is_(False)),
                )
            ).all()
            reserved = [r for r in rows if not r.spent]
            blocked = state.get("server_reset_at")
            blocked_until = (
                blocked
                if blocked and blocked > now and state.get("server_remaining") == 0
                else None
            )
            next_free = plan_slots(
                [r.at for r in rows], limit, period, 1, now, blocked_until or 0.0
            )
            out.append(
                BudgetView(
                    account=account,
                    kind=kind,
                    limit=limit,
                    per_seconds=period,
                    spent=sum(1 for r in rows if r.spent),
                    reserved=len(reserved),
                    held_jobs=sorted({int(r.job_id) for r in reserved if r.job_id is not None}),
                    next_free_at=next_free[0] if next_free else now,
                    frees_up_at=max((r.at for r in reserved), default=0.0),
                    server_blocked_until=blocked_until,
                )
            )
        return out
