"""Queue throughput and claim latency with a 100,000-job backlog, on SQLite and PostgreSQL.

    python benchmarks/queue_bench.py [--backlog 100000] [--ops 3000] [--no-postgres]

The backlog is bulk-loaded (setup, not measured); then single enqueues, claim+complete
(batches of 8, one transaction per completion, as the worker does) and per-claim latency are
measured. Claim p99 is also measured on a 1,000-job backlog in the same process, so the ratio
shows whether claiming grows with the backlog. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.table import Table
from sqlalchemy import insert

from fedibot.queue.jobs import JobQueue, NewJob, QueueSettings, batch_key, jobs
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade

REQUESTERS = 1000


def new_job(i: int, prefix: str) -> NewJob:
    return NewJob(
        platform="mastodon",
        bot_account="main",
        remote_id=f"{prefix}{i}",
        requester=f"user{i % REQUESTERS}@example.social",
        requester_domain="example.social",
        prompt=f"a lighthouse at dusk number {i}",
        model="tiny",
        width=64,
        height=64,
        steps=2,
        guidance=5.0,
    )


async def bulk_backlog(db: Database, size: int) -> None:
    key = batch_key("tiny", 64, 64, 2, 5.0)
    now = time.time()
    rows = [
        {
            "kind": "mention",
            "platform": "mastodon",
            "bot_account": "main",
            "remote_id": f"backlog{i}",
            "requester": f"user{i % REQUESTERS}@example.social",
            "requester_domain": "example.social",
            "state": "queued",
            "priority": 0,
            "fair_seq": i // REQUESTERS,
            "batch_key": key,
            "prompt": f"backlog prompt {i}",
            "negative_prompt": "",
            "model": "tiny",
            "width": 64,
            "height": 64,
            "steps": 2,
            "guidance": 5.0,
            "n": 1,
            "seed": i,
            "params": {},
            "request": {},
            "visibility": "unlisted",
            "attempts": 0,
            "max_attempts": 3,
            "not_before": 0.0,
            "reply_attempts": 0,
            "reply_state": "none",
            "safety": {},
            "created_at": now,
            "updated_at": now,
        }
        for i in range(size)
    ]

    def _load(conn) -> None:  # type: ignore[no-untyped-def]
        for start in range(0, size, 5000):
            conn.execute(insert(jobs), rows[start : start + 5000])

    await db.run(_load)


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] * 1000 if len(samples) > 1 else 0.0


async def measure(queue: JobQueue, ops: int, prefix: str) -> dict[str, float]:
    start = time.perf_counter()
    for i in range(ops):
        await queue.enqueue(new_job(i, prefix))
    enqueue_per_s = ops / (time.perf_counter() - start)

    latencies: list[float] = []
    done = 0
    start = time.perf_counter()
    while done < ops:
        t0 = time.perf_counter()
        batch = await queue.claim("bench", max_batch=8)
        latencies.append(time.perf_counter() - t0)
        for row in batch:
            await queue.complete("bench", row.id, [])
        done += len(batch)
    claim_complete_per_s = done / (time.perf_counter() - start)
    return {
        "enqueue_per_s": round(enqueue_per_s, 1),
        "claim_complete_per_s": round(claim_complete_per_s, 1),
        "claim_p99_ms": round(p99(latencies), 3),
    }


async def claim_p99_only(queue: JobQueue, claims: int, warmup: int = 10) -> float:
    for _ in range(warmup):  # first claims compile statements and fill caches
        for row in await queue.claim("probe", max_batch=8):
            await queue.complete("probe", row.id, [])
    latencies = []
    for _ in range(claims):
        t0 = time.perf_counter()
        batch = await queue.claim("probe", max_batch=8)
        latencies.append(time.perf_counter() - t0)
        for row in batch:
            await queue.complete("probe", row.id, [])
    return p99(latencies)


async def run_backend(url: str, backlog: int, ops: int) -> dict[str, float]:
    db = Database(url)
    await upgrade(db)
    queue = JobQueue(db, QueueSettings(per_requester_in_flight=1_000_000))
    await bulk_backlog(db, 1200)  # ~1,000 left while the 1k-backlog probe runs
    small_p99 = await claim_p99_only(queue, 100)
    await replace_backlog(db, backlog)
    figures = await measure(queue, ops, "m")
    figures["claim_p99_ms_small_backlog"] = round(small_p99, 3)
    await db.dispose()
    return figures


async def replace_backlog(db: Database, size: int) -> None:
    from sqlalchemy import delete

    await db.run(lambda conn: conn.execute(delete(jobs)))
    await bulk_backlog(db, size)


async def postgres_url() -> tuple[str, object]:
    from tests.dbutil import fresh_postgres_database

    ctx = fresh_postgres_database()
    url = await ctx.__aenter__()
    return url, ctx


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--ops", type=int, default=3000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["sqlite"] = await run_backend(f"sqlite:///{tmp}/bench.db", args.backlog, args.ops)
    if not args.no_postgres:
        url, ctx = await postgres_url()
        try:
            results["postgresql"] = await run_backend(url, args.backlog, args.ops)
        finally:
            await ctx.__aexit__(None, None, None)

    table = Table(title=f"queue with a {args.backlog:,}-job backlog ({args.ops:,} ops)")
    for col in (
        "database",
        "enqueue/s",
        "claim+complete/s",
        "claim p99 ms",
        "claim p99 ms (1k backlog)",
        "p99 ratio 100k/1k",
    ):
        table.add_column(col, justify="right")
    for name, fig in results.items():
        ratio = fig["claim_p99_ms"] / max(fig["claim_p99_ms_small_backlog"], 1e-9)
        table.add_row(
            name,
            f"{fig['enqueue_per_s']:,.0f}",
            f"{fig['claim_complete_per_s']:,.0f}",
            f"{fig['claim_p99_ms']:.2f}",
            f"{fig['claim_p99_ms_small_backlog']:.2f}",
            f"{ratio:.2f}",
        )
    Console().print(table)
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
