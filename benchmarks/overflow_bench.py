"""Overflow to the AI Horde: a burst of requests, one local worker, `local` vs `local+horde`.

    .venv/bin/python benchmarks/overflow_bench.py [--requests 200] [--local-s 2.0] [--speedup 20]

A burst of N one-image requests (64x64, model tiny) lands at t=0. One simulated local worker
renders one image per `--local-s` seconds. In `local+horde` mode the real HordeWorker (client,
flow, store, overflow rule, classifier + PNG writer) sends overflow to the fake Horde over real
HTTP on 127.0.0.1; each fake Horde request finishes `--horde-min`..`--horde-max` seconds after
submission (seeded random) and every API call takes `--api-latency` seconds. All times are
simulated seconds on a clock `--speedup` times faster than real (the Horde limits — 1 check/s,
10 status/min, a submission every 0.5 s — hold in simulated time). Prints p50/p95 time to
reply (enqueue → result), images per simulated second, where the jobs ran; last line JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generator.config import GeneratorConfig, SafetyConfig
from generator.horde.client import HordeClient
from generator.horde.flow import HordeFlow
from generator.horde.overflow import OverflowSignals
from generator.horde.ratelimit import ScaledClock
from generator.horde.store import MemoryHordeJobStore
from generator.horde.worker import HordeWorker
from generator.service import GeneratorService
from generator.types import GenerationRequest, JobResult
from tests.fakes.horde_server import Behaviour, FakeHorde
from tests.memory_source import MemoryHordeWorkSource


class TimedSource(MemoryHordeWorkSource):
    """Records when each job got its result, and by whom."""

    def __init__(self, *a: Any, clock: ScaledClock, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.vclock = clock
        self.done_at: dict[int, float] = {}
        self.by: dict[int, str] = {}

    async def complete(self, worker_id: str, result: JobResult) -> None:
        await super().complete(worker_id, result)
        if result.job_id in self.results:
            self.done_at.setdefault(result.job_id, self.vclock.now())
            self.by.setdefault(result.job_id, worker_id)


async def local_worker(
    source: TimedSource, clock: ScaledClock, seconds: float, beat: list[float], total: int
) -> None:
    """One image per `seconds` (simulated), one job at a time."""
    while len(source.done_at) + len(source.errors) < total:
        beat[0] = clock.now()
        batch = await source.claim("local", 1, 3600)
        if not batch:
            await clock.sleep(0.5)
            continue
        for req in batch:
            await clock.sleep(seconds * req.n_images)
            await source.complete("local", JobResult(req.job_id, [], req.model, seconds))


async def run(mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    clock = ScaledClock(args.speedup)
    rng = random.Random(7)
    async with FakeHorde(clock) as fake:
        fake.latency_s = args.api_latency
        fake.default = Behaviour(done_after_checks=None, done_after_s=args.horde_max, wait_time=20)
        fake.will(
            *[
                Behaviour(
                    done_after_checks=None,
                    done_after_s=rng.uniform(args.horde_min, args.horde_max),
                    wait_time=int(args.horde_min),
                )
                for _ in range(args.requests)
            ]
        )
        config = GeneratorConfig(
            data_dir=str(tmp / mode),
            safety=SafetyConfig(classifier="none"),
            backend="local+horde",
            horde={  # type: ignore[arg-type]
                "base_url": fake.url,
                "contact": "https://bench.example",
                "models": {"tiny": "stable_diffusion"},
                "max_in_flight": args.in_flight,
                "submit_interval_s": 0.5,
                "overflow_when_expected_wait_s": args.overflow_wait,
            },
            idle_poll_seconds=0.02,
            lease_seconds=3600,
            heartbeat_seconds=60,
        )
        store = MemoryHordeJobStore()
        source = TimedSource(config, store, clock=clock)
        reqs = [
            GenerationRequest(job_id=i, prompt=f"burst {i}", seeds=[i])
            for i in range(args.requests)
        ]
        for r in reqs:
            source.put(r)
        beat = [clock.now()]
        started = clock.now()
        wall = time.perf_counter()
        tasks = [
            asyncio.create_task(local_worker(source, clock, args.local_s, beat, args.requests))
        ]
        client = HordeClient(config.horde, clock=clock)
        if mode == "local+horde":

            async def signals() -> OverflowSignals:
                return OverflowSignals(
                    source.queued_images, 1.0 / args.local_s, clock.now() - beat[0]
                )

            flow = HordeFlow(client, store, config)
            service = GeneratorService(config)
            worker = HordeWorker(source, flow, service, config, signals=signals)
            tasks.append(asyncio.create_task(worker.run()))
        await tasks[0]
        if mode == "local+horde":
            worker.request_stop()
            await tasks[1]
        await client.close()
        elapsed = clock.now() - started
        latencies = sorted(source.done_at[j] - started for j in source.done_at)
        horde = sum(1 for w in source.by.values() if w == "horde")
        return {
            "mode": mode,
            "jobs": len(latencies),
            "errors": len(source.errors),
            "on_horde": horde,
            "p50_s": round(statistics.median(latencies), 1),
            "p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
            "images_per_s": round(len(latencies) / elapsed, 3),
            "horde_submissions": len(fake.submissions),
            "horde_429": fake.rate_limited,
            "real_s": round(time.perf_counter() - wall, 1),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--local-s", type=float, default=2.0, help="simulated seconds per local image")
    p.add_argument("--horde-min", type=float, default=15.0)
    p.add_argument("--horde-max", type=float, default=45.0)
    p.add_argument("--api-latency", type=float, default=0.3)
    p.add_argument("--in-flight", type=int, default=20)
    p.add_argument("--overflow-wait", type=float, default=120.0)
    p.add_argument("--speedup", type=float, default=20.0)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [asyncio.run(run(mode, args, Path(tmp))) for mode in ("local", "local+horde")]
    for r in results:
        print(
            f"{r['mode']:12} jobs {r['jobs']:4}  p50 {r['p50_s']:7.1f}s  p95 {r['p95_s']:7.1f}s  "
            f"{r['images_per_s']:.3f} img/s  on Horde {r['on_horde']:3}  errors {r['errors']}  "
            f"({r['real_s']} s real)"
        )
    print(json.dumps({"benchmark": "overflow", "config": vars(args), "results": results}))


if __name__ == "__main__":
    main()
