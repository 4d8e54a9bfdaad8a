"""Lemmy end to end: N mentions through a fake Lemmy and the whole App with the tiny model.

    python benchmarks/lemmy_bench.py [--mentions 200] [--api v3|v4] [--rate 10] [--poll 0.2]

* latency: mentions arrive at `--rate` per second. Per request, the time from the mention's
  creation on the fake to the bot's reply comment appearing there, minus that job's
  `generation_seconds` (stored on the job row), is the bot's own overhead: polling, ingest,
  queue, replier, pict-rs upload and HTTP. Lemmy has no push: the bot polls its inbox every
  `--poll` seconds, so about half a poll interval is part of the latency by design.
* throughput: all N mentions at once; replies/s from the first mention to the last reply.
* baseline (same process, same fake, same poll interval): a bare LemmyAdapter whose sink
  posts a ready image at once: the floor set by polling and HTTP alone. The ratio shows what
  the application (database, queue, generator hand-off, replier) adds on top.

The fake's rate limits are raised so they do not dominate. Last line: one JSON object.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image
from rich.console import Console
from rich.table import Table

from federation.base import MemoryCursorStore
from federation.lemmy import LemmyAdapter
from federation.lemmy_config import LemmyAccountConfig
from federation.types import MediaItem, Mention, OutgoingPost, Visibility
from fedibot.app import App
from fedibot.config.loader import FedibotConfig, parse_config
from tests.e2e_support import NO_QUOTAS
from tests.fakes.lemmy_server import FakeLemmy

PASSWORD = "bench password"
USERS = 25
HIGH_LIMITS = {"message": (10**7, 60), "comment": (10**6, 60), "image": (10**6, 60)}
REPLIER_POLL = 0.05
WORKER_POLL = 0.05


class TimedFake(FakeLemmy):
    """The fake Lemmy, noting when each comment appeared (the moment a reader could see it)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.appeared: dict[int, float] = {}

    def create_comment(self, author: Any, post_id: int, content: str, **kw: Any) -> Any:
        comment = super().create_comment(author, post_id, content, **kw)
        self.appeared[int(comment["id"])] = time.perf_counter()
        return comment

    def answered(self) -> dict[int, int]:
        """mention comment id → the bot's reply comment id."""
        bot = self.bot["id"]
        return {
            int(c["path"].split(".")[-2]): int(c["id"])
            for c in self.comments.values()
            if c["creator_id"] == bot and c["path"].count(".") >= 2
        }


def bench_config(data_dir: Path, fake: FakeLemmy, poll: float) -> FedibotConfig:
    return parse_config(
        {
            "data_dir": str(data_dir),
            "database": {"url": f"sqlite:///{data_dir / 'bench.db'}"},
            "server": {"enabled": False},
            "replies": {"poll_seconds": REPLIER_POLL},
            "quotas": NO_QUOTAS,
            "generator": {
                "device": "cpu",
                "cpu_threads": 1,
                "idle_poll_seconds": WORKER_POLL,
                "safety": {"classifier": "none"},
            },
            "accounts": [account(fake, poll)],
        }
    )


def account(fake: FakeLemmy, poll: float) -> dict[str, Any]:
    return {
        "platform": "lemmy",
        "name": "main",
        "base_url": fake.base_url,
        "username": fake.bot["name"],
        "password": PASSWORD,
        "poll_interval_seconds": poll,
        "max_poll_interval_seconds": poll,  # no idle back-off: steady polls for the run
        "request_timeout_seconds": 30,
    }


async def wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)


async def send_mentions(fake: TimedFake, n: int, rate: float, tag: str) -> list[int]:
    """Create n mentions (at `rate` per second; 0: all at once) spread over a few posts."""
    users = [fake.add_user(f"{tag}{i}", domain="remote.example") for i in range(USERS)]
    posts = [fake.add_post(users[i]) for i in range(5)]
    ids: list[int] = []
    start = time.perf_counter()
    for i in range(n):
        if rate > 0:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        comment = fake.mention(users[i % USERS], f"a lighthouse number {i}", post=posts[i % 5])
        ids.append(int(comment["id"]))
    return ids


async def run_app(
    tiny_dir: Path, api: str, n: int, rate: float, poll: float, timeout: float
) -> dict[str, Any]:
    """One App against a fresh fake: a warm-up mention, then n measured ones."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        (data_dir / "models").mkdir()
        (data_dir / "models" / "tiny").symlink_to(tiny_dir, target_is_directory=True)
        async with TimedFake(api, bot_password=PASSWORD, rate_limits=HIGH_LIMITS) as fake:
            app = App(bench_config(data_dir, fake, poll))
            await app.start()
            try:
                warm = await send_mentions(fake, 1, 0, "warm")
                await wait_for(lambda: warm[0] in fake.answered(), 120, "the warm-up reply")
                ids = await send_mentions(fake, n, rate, "user")
                await wait_for(
                    lambda: all(i in fake.answered() for i in ids), timeout, f"{n} replies"
                )
                rows = {int(j.remote_id): j for j in await app.queue.list_jobs(limit=n + 10)}
            finally:
                await app.stop()
            answered = fake.answered()
            latencies, overheads, gens = [], [], []
            for mention_id in ids:
                reply_id = answered[mention_id]
                latency = fake.appeared[reply_id] - fake.appeared[mention_id]
                gen = float(rows[mention_id].generation_seconds or 0.0)
                latencies.append(latency)
                gens.append(gen)
                overheads.append(latency - gen)
            duplicates = len(fake.comments_by(fake.bot)) - len(ids) - len(warm)
            span = max(fake.appeared[answered[i]] for i in ids) - fake.appeared[ids[0]]
            return {
                "latency": latencies,
                "overhead": overheads,
                "generation": gens,
                "replies_per_s": n / span,
                "done": sum(1 for i in ids if rows[i].state == "done"),
                "duplicates": duplicates,
            }


async def run_baseline(api: str, n: int, rate: float, poll: float, timeout: float) -> list[float]:
    """A bare adapter: poll, and post a ready (distinct) image at once for each mention."""
    with tempfile.TemporaryDirectory() as tmp:
        async with TimedFake(api, bot_password=PASSWORD, rate_limits=HIGH_LIMITS) as fake:
            config = LemmyAccountConfig.model_validate(account(fake, poll))
            adapter = LemmyAdapter(config, MemoryCursorStore())
            counter = iter(range(10**9))

            async def sink(mention: Mention) -> None:
                path = Path(tmp) / f"{next(counter)}.png"
                Image.new("RGB", (64, 64), (len(mention.remote_id) * 20 % 256, 90, 160)).save(path)
                await adapter.post(
                    OutgoingPost(
                        text="Here you go!",
                        visibility=Visibility.PUBLIC,
                        in_reply_to_id=mention.remote_id,
                        media=(MediaItem(path=path, alt_text="an image"),),
                        context=dict(mention.context),
                        recipient=mention.author,
                    )
                )

            await adapter.start()
            listener = asyncio.create_task(adapter.listen(sink))
            try:
                ids = await send_mentions(fake, n, rate, "user")
                await wait_for(
                    lambda: all(i in fake.answered() for i in ids), timeout, "baseline replies"
                )
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
                await adapter.close()
            answered = fake.answered()
            return [fake.appeared[answered[i]] - fake.appeared[i] for i in ids]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def ms(value: float) -> str:
    return f"{value * 1000:,.1f}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mentions", type=int, default=200)
    parser.add_argument("--api", choices=["v3", "v4"], default="v3")
    parser.add_argument("--rate", type=float, default=10.0, help="mentions/s in the latency run")
    parser.add_argument("--poll", type=float, default=0.2, help="inbox poll interval, seconds")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    from generator.tiny import ensure_tiny

    console = Console(width=120)
    with tempfile.TemporaryDirectory() as tmp:
        tiny_dir = ensure_tiny(tmp)
        latency = await run_app(tiny_dir, args.api, args.mentions, args.rate, args.poll, 600)
        burst = await run_app(tiny_dir, args.api, args.mentions, 0, args.poll, args.timeout)
    baseline = await run_baseline(args.api, args.mentions, args.rate, args.poll, args.timeout)

    over, base = latency["overhead"], baseline
    table = Table(
        title=f"Lemmy {args.api} end to end: {args.mentions} mentions, tiny model, "
        f"inbox polled every {args.poll:g} s (replier {REPLIER_POLL:g} s, worker {WORKER_POLL:g} s)"
    )
    for col in ("run", "p50 ms", "p95 ms", "max ms", "note"):
        table.add_column(col, justify="right")
    table.add_row(
        "latency (mention → reply)",
        ms(pct(latency["latency"], 50)),
        ms(pct(latency["latency"], 95)),
        ms(max(latency["latency"])),
        f"{args.rate:g} mentions/s",
    )
    table.add_row(
        "generation (job row)",
        ms(pct(latency["generation"], 50)),
        ms(pct(latency["generation"], 95)),
        ms(max(latency["generation"])),
        "generation_seconds",
    )
    table.add_row(
        "bot overhead (latency − gen.)",
        ms(pct(over, 50)),
        ms(pct(over, 95)),
        ms(max(over)),
        "includes ~poll/2 by design",
    )
    table.add_row(
        "baseline: bare adapter",
        ms(pct(base, 50)),
        ms(pct(base, 95)),
        ms(max(base)),
        "poll + HTTP only",
    )
    table.add_row(
        "ratio overhead / baseline",
        f"{pct(over, 50) / max(pct(base, 50), 1e-9):.2f}",
        f"{pct(over, 95) / max(pct(base, 95), 1e-9):.2f}",
        "",
        "",
    )
    console.print(table)
    console.print(
        f"burst of {args.mentions}: {burst['replies_per_s']:.1f} replies/s "
        f"(burst p50 latency {ms(pct(burst['latency'], 50))} ms); "
        f"done {latency['done']}/{args.mentions} and {burst['done']}/{args.mentions}, "
        f"duplicate replies {latency['duplicates'] + burst['duplicates']}"
    )
    print(
        json.dumps(
            {
                "overhead_p50_ms": round(pct(over, 50) * 1000, 1),
                "overhead_p95_ms": round(pct(over, 95) * 1000, 1),
                "replies_per_s": round(burst["replies_per_s"], 2),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
