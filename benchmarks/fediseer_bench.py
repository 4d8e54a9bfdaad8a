"""Benchmark: a whole Fediseer sync of a 10,000-instance trust graph over real HTTP — fetch +
rules + plan + apply to the database (`fedibot.moderation.fediseer_apply.sync_fediseer`) — and the
database-backed `allowlist show DOMAIN` lookup.

The fake server runs in its own process (as a remote server would), with its query-string
cache off so every run pays for every answer. Before each timed sync the database is reset to
a realistic "current" list (97 % of the result plus 100 stale domains), so every run applies a
real diff. Prints the figures, the ratio against a baseline client that reads with the
server's default page size (100) instead of one large limit, the in-memory lookup for
comparison, and as the last line one JSON object {"sync_seconds", "peak_mb", "lookup_ms"}.
Targets: sync ≤ 2 s, lookup ≤ 5 ms.

    .venv/bin/python benchmarks/fediseer_bench.py [--instances 10000] [--trusted 5]
        [--database-url sqlite:///PATH | postgresql://USER@HOST/DB]

The database must be a throw-away one (default: a temporary SQLite file): the benchmark
replaces its Fediseer entries and refuses a database that holds jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, func, insert, select  # noqa: E402

from fedibot.moderation.allowlist import Allowlist, audit_t, fediseer_t  # noqa: E402
from fedibot.moderation.fediseer_apply import runs_t, sync_fediseer  # noqa: E402
from fedibot.storage.database import Database  # noqa: E402
from fedibot.storage.migrate import upgrade  # noqa: E402
from fedibot.storage.models import Job  # noqa: E402
from fediseer_sync.client import FediseerClient  # noqa: E402
from fediseer_sync.config import FediseerConfig  # noqa: E402
from fediseer_sync.models import TrustResult  # noqa: E402
from fediseer_sync.plan import SyncPlan, plan_sync  # noqa: E402
from fediseer_sync.sync import fetch_trust  # noqa: E402

TARGET_SECONDS = 2.0
TARGET_LOOKUP_MS = 5.0


def start_server(instances: int, trusted: int) -> tuple[subprocess.Popen[str], str, list[str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.fediseer_server",
            "--generate",
            str(instances),
            "--trusted",
            str(trusted),
            "--cache-ttl",
            "0",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    if not line or line[0] != "READY":
        proc.kill()
        raise SystemExit("the fake Fediseer did not start")
    return proc, line[1], line[2].split(",")


async def sync_once(
    base_url: str, cfg: FediseerConfig, current: tuple[set[str], set[str]], page_size: int
) -> tuple[TrustResult, SyncPlan]:
    async with FediseerClient.from_config(cfg, page_size=page_size) as client:
        result = await fetch_trust(client, cfg)
    plan = plan_sync(*current, result, max_removal_fraction=cfg.max_removal_fraction)
    return result, plan


def reset_database(db: Database, current: dict[str, tuple[str, dict[str, Any]]]) -> None:
    """Put the "current" Fediseer lists in place (untimed), like the last good sync left them."""

    def body(conn: Any) -> None:
        conn.execute(delete(fediseer_t))
        conn.execute(delete(runs_t))
        conn.execute(delete(audit_t))
        rows = [
            {"domain": d, "list": lst, "provenance": prov, "since": 1.0}
            for d, (lst, prov) in current.items()
        ]
        for i in range(0, len(rows), 2000):
            conn.execute(insert(fediseer_t), rows[i : i + 2000])

    db.run_blocking(body)


async def full_sync(db: Database, cfg: FediseerConfig, page_size: int) -> Any:
    """fetch + rules + plan + apply, as `fedibot fediseer sync` does it."""
    async with FediseerClient.from_config(cfg, page_size=page_size) as client:
        outcome = await sync_fediseer(db, cfg, client=client, actor="bench")
    if outcome.status != "applied":
        raise SystemExit(f"the benchmark sync was {outcome.status}: {outcome.error}")
    return outcome


async def timed(
    db: Database,
    cfg: FediseerConfig,
    current: dict[str, tuple[str, dict[str, Any]]],
    page_size: int,
    runs: int,
) -> tuple[float, Any]:
    times = []
    outcome = None
    for _ in range(runs):
        reset_database(db, current)
        start = time.perf_counter()
        outcome = await full_sync(db, cfg, page_size)
        times.append(time.perf_counter() - start)
    return statistics.median(times), outcome


def make_memory_lookup(result: TrustResult) -> Callable[[str], Any]:
    """The in-memory provenance lookup (what the sync itself holds), for comparison."""

    def lookup(domain: str) -> Any:
        decision = result.lookup(domain)
        return None if decision is None else (decision.to_dict(), decision.explain())

    return lookup


async def measure_db_lookup(db: Database, domains: list[str], rounds: int = 2000) -> float:
    """`allowlist show DOMAIN` minus printing: normalise, two primary-key reads in one
    transaction on the database thread, the verdict and the provenance sentence."""
    show = Allowlist(db, mode="allowlist").show
    rng = random.Random(5)
    picks = [rng.choice(domains) for _ in range(rounds)]
    for domain in picks[:50]:  # warm the connection pool and statement caches
        await show(domain)
    start = time.perf_counter()
    for domain in picks:
        status = await show(domain)
        assert status.fediseer is not None
    return (time.perf_counter() - start) / rounds * 1000


def measure_lookup(lookup: Callable[[str], Any], domains: list[str], rounds: int = 2000) -> float:
    rng = random.Random(5)
    picks = [rng.choice(domains) for _ in range(rounds)]
    start = time.perf_counter()
    for domain in picks:
        lookup(domain)
    return (time.perf_counter() - start) / rounds * 1000


def open_database(url: str | None) -> Database:
    if url is None:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='fediseer-bench-')}/bench.db"
    db = Database(url)
    asyncio.run(upgrade(db))
    jobs = db.run_blocking(lambda conn: conn.execute(select(func.count()).select_from(Job)))
    if jobs.scalar_one():
        raise SystemExit(f"{db.display_url} holds jobs: use a throw-away database")
    return db


async def main_async(args: argparse.Namespace, db: Database) -> dict[str, float]:
    proc, base_url, trusted = start_server(args.instances, args.trusted)
    try:
        cfg = FediseerConfig(
            enabled=True,
            base_url=base_url,
            trusted=trusted,
            min_endorsements=2,
            deny_censured_by=2,
            include_hesitations=True,
            client_agent="fedibot:bench:none",
        )
        # warm-up; its result also gives a realistic "current" list: 3 % gone, 100 stale added
        first, _ = await sync_once(base_url, cfg, (set(), set()), 2000)
        allow = sorted(first.allow)
        current = {d: ("allow", first.allow[d].to_dict()) for d in allow[: int(len(allow) * 0.97)]}
        current.update({f"old{i}.example": ("allow", {}) for i in range(100)})
        current.update({d: ("deny", p.to_dict()) for d, p in first.deny.items()})

        fetch_seconds, result, _ = await timed_fetch(base_url, cfg, current, args.runs)
        seconds, outcome = await timed(db, cfg, current, 2000, args.runs)
        reset_database(db, current)
        tracemalloc.start()
        await full_sync(db, cfg, 2000)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        baseline = None
        if not args.no_baseline:
            baseline, _ = await timed(db, cfg, current, 100, 1)
        domains = allow + sorted(result.deny)
        lookup_ms = await measure_db_lookup(db, domains)
        memory_ms = measure_lookup(make_memory_lookup(result), domains)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        await db.dispose()

    summary = outcome.summary
    print(f"trust graph: {args.instances} instances, {len(trusted)} trusted sources")
    print(f"database: {db.display_url}")
    print(
        f"result: {len(result.allow)} allowed, {len(result.deny)} denied; applied "
        f"+{len(summary['added_allow'])} -{len(summary['removed_allow'])} allow, "
        f"+{len(summary['added_deny'])} -{len(summary['removed_deny'])} deny"
    )
    print(f"fetch + rules + plan alone, median of {args.runs}: {fetch_seconds:.3f} s")
    print(
        f"sync (fetch + rules + plan + apply), median of {args.runs}: {seconds:.3f} s "
        f"(target ≤ {TARGET_SECONDS} s: {'ok' if seconds <= TARGET_SECONDS else 'MISSED'})"
    )
    if baseline is not None:
        print(
            f"baseline (page size 100): {baseline:.3f} s; ratio baseline/ours = "
            f"{baseline / seconds:.1f}x"
        )
    print(f"peak traced memory during one sync: {peak / 2**20:.1f} MiB")
    print(
        f"allowlist show lookup (database): {lookup_ms:.4f} ms per domain "
        f"(target ≤ {TARGET_LOOKUP_MS} ms: {'ok' if lookup_ms <= TARGET_LOOKUP_MS else 'MISSED'}); "
        f"in-memory TrustResult: {memory_ms:.4f} ms"
    )
    return {
        "sync_seconds": round(seconds, 4),
        "peak_mb": round(peak / 2**20, 2),
        "lookup_ms": round(lookup_ms, 5),
    }


async def timed_fetch(
    base_url: str, cfg: FediseerConfig, current: dict[str, tuple[str, Any]], runs: int
) -> tuple[float, TrustResult, SyncPlan]:
    """fetch + rules + plan without the database, for the breakdown."""
    allow = {d for d, (lst, _) in current.items() if lst == "allow"}
    deny = set(current) - allow
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result, plan = await sync_once(base_url, cfg, (allow, deny), 2000)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--trusted", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a throw-away database (default: a temporary SQLite file)",
    )
    args = parser.parse_args()
    db = open_database(args.database_url)
    figures = asyncio.run(main_async(args, db))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
