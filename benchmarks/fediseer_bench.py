"""Benchmark: fetch + rules + plan of a 10,000-instance Fediseer trust graph over real HTTP.

The fake server runs in its own process (as a remote server would), with its query-string
cache off so every run pays for every answer. Prints the figures, the ratio against a baseline
client that reads with the server's default page size (100) instead of one large limit, and as
the last line one JSON object {"sync_seconds", "peak_mb", "lookup_ms"}. Target: sync ≤ 2 s.

    .venv/bin/python benchmarks/fediseer_bench.py [--instances 10000] [--trusted 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fediseer_sync.client import FediseerClient  # noqa: E402
from fediseer_sync.config import FediseerConfig  # noqa: E402
from fediseer_sync.models import TrustResult  # noqa: E402
from fediseer_sync.plan import SyncPlan, plan_sync  # noqa: E402
from fediseer_sync.sync import fetch_trust  # noqa: E402

TARGET_SECONDS = 2.0


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


async def timed(
    base_url: str,
    cfg: FediseerConfig,
    current: tuple[set[str], set[str]],
    page_size: int,
    runs: int,
) -> tuple[float, TrustResult, SyncPlan]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result, plan = await sync_once(base_url, cfg, current, page_size)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result, plan


def make_lookup(args: argparse.Namespace, result: TrustResult) -> Callable[[str], Any]:
    """What `allowlist show DOMAIN` does, minus printing. The database-backed lookup goes here
    (a `--database-url` option that builds it from the applied plan)."""

    def lookup(domain: str) -> Any:
        decision = result.lookup(domain)
        return None if decision is None else (decision.to_dict(), decision.explain())

    return lookup


def measure_lookup(lookup: Callable[[str], Any], domains: list[str], rounds: int = 2000) -> float:
    rng = random.Random(5)
    picks = [rng.choice(domains) for _ in range(rounds)]
    start = time.perf_counter()
    for domain in picks:
        lookup(domain)
    return (time.perf_counter() - start) / rounds * 1000


async def main_async(args: argparse.Namespace) -> dict[str, float]:
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
        current = (
            set(allow[: int(len(allow) * 0.97)]) | {f"old{i}.example" for i in range(100)},
            set(first.deny),
        )

        seconds, result, plan = await timed(base_url, cfg, current, 2000, args.runs)
        tracemalloc.start()
        await sync_once(base_url, cfg, current, 2000)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        baseline = None
        if not args.no_baseline:
            baseline, _, _ = await timed(base_url, cfg, current, 100, 1)
        lookup_ms = measure_lookup(make_lookup(args, result), allow + sorted(result.deny))
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    print(f"trust graph: {args.instances} instances, {len(trusted)} trusted sources")
    print(
        f"result: {len(result.allow)} allowed, {len(result.deny)} denied; "
        f"plan +{len(plan.added_allow)} -{len(plan.removed_allow)} allow, held={plan.held}"
    )
    print(
        f"sync (fetch + rules + plan), median of {args.runs}: {seconds:.3f} s "
        f"(target ≤ {TARGET_SECONDS} s: {'ok' if seconds <= TARGET_SECONDS else 'MISSED'})"
    )
    if baseline is not None:
        print(
            f"baseline (page size 100): {baseline:.3f} s; ratio baseline/ours = "
            f"{baseline / seconds:.1f}x"
        )
    print(f"peak traced memory during one sync: {peak / 2**20:.1f} MiB")
    print(f"provenance lookup: {lookup_ms:.4f} ms per domain (in-memory TrustResult)")
    return {
        "sync_seconds": round(seconds, 4),
        "peak_mb": round(peak / 2**20, 2),
        "lookup_ms": round(lookup_ms, 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--trusted", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(main_async(args))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
