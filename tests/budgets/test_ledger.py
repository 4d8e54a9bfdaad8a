"""The durable, first-in-first-out posting-budget ledger on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.budgets import BudgetLimit, ServerHint, lowered, plan_slots
from fedibot.storage.budgets import BudgetLedger
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade

MEDIA = {"media": BudgetLimit(limit=30, per_seconds=1800)}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def open_ledger(path: Path, clock: Clock) -> BudgetLedger:
    db = Database(f"sqlite:///{path}")
    await upgrade(db)
    return BudgetLedger(db, clock)


def test_plan_slots_is_a_sliding_window_after_every_taken_slot() -> None:
    assert plan_slots([], 3, 60, 2, now=10) == [10, 10]
    # three taken at 0, 5, 9: the next frees when the first ages out, and so on
    assert plan_slots([0, 5, 9], 3, 60, 2, now=10) == [60, 65]
    # a reservation in the future: new slots never come before it (no overtaking)
    assert plan_slots([100], 3, 60, 1, now=10) == [100]
    assert plan_slots([], 3, 60, 1, now=10, not_before=50) == [50]
    assert lowered(BudgetLimit(limit=30, per_seconds=1800), 10).limit == 10
    assert lowered(BudgetLimit(limit=30, per_seconds=1800), 300).limit == 30  # never up


async def test_spent_slots_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    ledger = await open_ledger(tmp_path / "bot.db", clock)
    for job in range(1, 8):  # 7 jobs × 4 images = 28 uploads
        assert await ledger.acquire("main", job, {"media": 4}, MEDIA) == 0.0
    clock.now += 60
    await ledger.db.dispose()

    ledger = await open_ledger(tmp_path / "bot.db", clock)  # a restart: a new process
    assert await ledger.acquire("main", 8, {"media": 2}, MEDIA) == 0.0  # 30 of 30
    wait = await ledger.acquire("main", 9, {"media": 1}, MEDIA)
    assert wait == pytest.approx(1800 - 60)  # the first upload ages out
    [view] = await ledger.snapshot()
    assert (view.spent, view.reserved, view.held_jobs) == (30, 1, [9])
    assert view.frees_up_at == pytest.approx(clock.now + 1740)
    await ledger.db.dispose()


async def test_held_jobs_are_served_first_in_first_out(tmp_path: Path) -> None:
    clock = Clock()
    ledger = await open_ledger(tmp_path / "bot.db", clock)
    small = {"media": BudgetLimit(limit=4, per_seconds=600)}
    assert await ledger.acquire("main", 1, {"media": 3}, small) == 0.0
    clock.now += 10
    # job 2 needs 4: one is free now, three more when job 1's age out → held until 600
    held = await ledger.acquire("main", 2, {"media": 4}, small)
    assert held == pytest.approx(590)
    # job 3 needs 1 and one slot is free right now — but job 2 holds its place
    newer = await ledger.acquire("main", 3, {"media": 1}, small)
    assert newer > held
    # job 2 comes back a little early: still held; at its time it goes
    clock.now += 300
    assert await ledger.acquire("main", 2, {"media": 4}, small) == pytest.approx(290)
    clock.now += 290
    assert await ledger.acquire("main", 2, {"media": 4}, small) == 0.0
    assert await ledger.acquire("main", 3, {"media": 1}, small) > 0  # still after job 2
    await ledger.db.dispose()


async def test_an_older_job_goes_before_newer_reservations(tmp_path: Path) -> None:
    clock = Clock()
    ledger = await open_ledger(tmp_path / "bot.db", clock)
    one = {"media": BudgetLimit(limit=1, per_seconds=100)}
    assert await ledger.acquire("main", 10, {"media": 1}, one) == 0.0
    assert await ledger.acquire("main", 12, {"media": 1}, one) == pytest.approx(100)
    # job 11 (older than 12) reaches the budget later: it takes 12's turn, 12 moves on
    assert await ledger.acquire("main", 11, {"media": 1}, one) == pytest.approx(100)
    assert await ledger.acquire("main", 12, {"media": 1}, one) == pytest.approx(200)
    await ledger.db.dispose()


async def test_a_429_holds_the_budget_until_the_reset_even_after_a_restart(
    tmp_path: Path,
) -> None:
    clock = Clock()
    ledger = await open_ledger(tmp_path / "bot.db", clock)
    refused = {"media": ServerHint(remaining=0, reset_at=clock.now + 120)}
    assert await ledger.acquire("main", 1, {"media": 1}, MEDIA, refused) == pytest.approx(120)
    await ledger.db.dispose()
    ledger = await open_ledger(tmp_path / "bot.db", clock)
    # the new process knows nothing from headers yet; the stored word still holds
    assert await ledger.acquire("main", 2, {"media": 1}, MEDIA) == pytest.approx(120)
    [view] = await ledger.snapshot()
    assert view.server_blocked_until == pytest.approx(clock.now + 120)
    clock.now += 121
    assert await ledger.acquire("main", 1, {"media": 1}, MEDIA) == 0.0
    await ledger.db.dispose()


async def test_headers_saying_little_remains_hold_the_rest_until_the_reset(
    tmp_path: Path,
) -> None:
    clock = Clock()
    ledger = await open_ledger(tmp_path / "bot.db", clock)
    hint = {"media": ServerHint(limit=30, remaining=2, reset_at=clock.now + 300)}
    assert await ledger.acquire("main", 1, {"media": 2}, MEDIA, hint) == 0.0
    assert await ledger.acquire("main", 2, {"media": 3}, MEDIA, hint) == pytest.approx(300)
    await ledger.db.dispose()


async def test_released_and_dry_run(tmp_path: Path) -> None:
    clock = Clock()
    ledger = await open_ledger(tmp_path / "bot.db", clock)
    one = {"media": BudgetLimit(limit=1, per_seconds=100)}
    assert await ledger.acquire("main", 1, {"media": 1}, one) == 0.0
    assert await ledger.acquire("main", 2, {"media": 1}, one, dry_run=True) == 100
    assert (await ledger.snapshot())[0].reserved == 0  # a dry run reserves nothing
    assert await ledger.acquire("main", 2, {"media": 1}, one) == 100
    assert await ledger.release(2) == 1
    assert await ledger.acquire("main", 3, {"media": 1}, one) == 100
    await ledger.db.dispose()
