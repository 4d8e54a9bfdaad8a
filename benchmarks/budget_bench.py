"""Requests served per 30 minutes on Mastodon's default budgets (30 uploads per 30 minutes,
300 statuses per 3 hours), with and without the grid option, for n = 1, 2, 4 images.

Simulated clock, the real durable ledger (`fedibot/storage/budgets.py`) on a SQLite file: a
backlog of requests is posted first in first out; a held request waits exactly until its
reserved slots are due. Served requests are counted over a 2-hour horizon and reported per
30 minutes. The last line is JSON.

    python benchmarks/budget_bench.py
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from federation.budgets import MASTODON_DEFAULTS
from fedibot.storage.budgets import BudgetLedger
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade

HORIZON = 4 * 1800.0  # two hours


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def served(n: int, grid: bool, workdir: Path) -> float:
    clock = Clock()
    db = Database(f"sqlite:///{workdir / f'bench-{n}-{grid}.db'}")
    await upgrade(db)
    ledger = BudgetLedger(db, clock)
    start = clock.now
    uploads = 1 if grid and n > 1 else n
    cost = {"statuses": 1, "media": uploads}
    count, job = 0, 1
    while True:
        wait = await ledger.acquire("bench", job, cost, MASTODON_DEFAULTS)
        if wait > 0:
            clock.now += wait  # the held job comes back when its slots are due
            continue
        if clock.now - start >= HORIZON:
            break
        count += 1
        job += 1
    await db.dispose()
    return count / (HORIZON / 1800.0)


async def main() -> dict[str, object]:
    results: dict[str, object] = {"budget": "30 uploads / 30 min, 300 statuses / 3 h"}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (1, 2, 4):
            without = await served(n, False, Path(tmp))
            with_grid = await served(n, True, Path(tmp))
            print(f"n={n}: {without:.1f} requests per 30 min separately, {with_grid:.1f} as a grid")
            results[f"n{n}"] = {"separate": without, "grid": with_grid}
    return results


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
