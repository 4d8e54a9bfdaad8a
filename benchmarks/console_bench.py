"""Console page render times with 100,000 jobs in a SQLite database.

    python benchmarks/console_bench.py [--jobs 100000] [--runs 30]

Fills a fresh SQLite file (bulk inserts: jobs with a realistic Mention document, one image
row per finished job, audit rows, Fediseer entries, bans), signs in through aiohttp's test
client and renders every page `--runs` times in-process. Prints p50/p95 per page; the last
line is one JSON object. Timings are not asserted anywhere (shared CI machines vary).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert

from fedibot.config.loader import parse_config
from fedibot.console.context import ConsoleContext
from fedibot.console.web import build_app
from fedibot.moderation.allowlist import audit_t, bans_t, fediseer_t, overrides_t
from fedibot.queue.jobs import JobQueue, batch_key, images, jobs
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade

PASSWORD = "benchmark password"
STATES = (
    ["done"] * 80 + ["rejected"] * 10 + ["cancelled"] * 3 + ["failed"] * 2
    + ["withheld"] * 1 + ["queued"] * 3 + ["generated"] * 1
)  # fmt: skip
REQUEST = {
    "platform": "mastodon",
    "bot_account": "main",
    "author": {"platform": "mastodon", "id": "1", "acct": "", "display_name": "Someone",
               "note_text": "Photographer and hiker. Opinions my own." * 3, "bot": False},
    "text": "", "visibility": "public", "language": "en", "sensitive": False,
    "spoiler_text": "", "url": "https://remote.example/@someone/1", "context": {},
}  # fmt: skip


def fill(db: Database, n_jobs: int, now: float) -> None:
    rnd = random.Random(42)

    def body(conn: Any) -> None:
        batch: list[dict[str, Any]] = []
        image_rows: list[dict[str, Any]] = []
        for i in range(1, n_jobs + 1):
            state = rnd.choice(STATES)
            user = f"user{rnd.randrange(3000)}"
            domain = f"inst{rnd.randrange(300)}.example"
            created = now - (n_jobs - i) * (30 * 86400 / n_jobs)  # 30 days, oldest first
            ended = state in ("done", "rejected", "cancelled", "failed")
            finished = created + rnd.uniform(5, 120) if ended else None
            request = {**REQUEST, "remote_id": str(i), "text": f"a lighthouse number {i}",
                       "author": {**REQUEST["author"], "acct": f"{user}@{domain}"}}  # fmt: skip
            batch.append(
                {
                    "id": i, "kind": "mention", "platform": "mastodon", "bot_account": "main",
                    "remote_id": str(i), "requester": f"{user}@{domain}",
                    "requester_domain": domain, "state": state, "priority": 0, "fair_seq": 0,
                    "batch_key": batch_key("tiny", 512, 512, 20, 5.0),
                    "prompt": f"a lighthouse at dusk, oil painting, number {i}",
                    "negative_prompt": "blurry", "model": "tiny", "width": 512,
                    "height": 512, "steps": 20, "guidance": 5.0, "n": 1, "seed": i,
                    "params": {}, "request": request,
                    "visibility": "direct" if i % 17 == 0 else "unlisted", "attempts": 1,
                    "max_attempts": 3, "not_before": 0.0, "reply_attempts": 1,
                    "reply_state": "none",
                    "error_code": "prompt_blocked" if state == "rejected" else None,
                    "safety": {}, "created_at": created, "updated_at": finished or created,
                    "finished_at": finished,
                }
            )  # fmt: skip
            if state in ("done", "withheld", "failed", "generated"):
                flagged = rnd.random() < 0.05 or state == "withheld"
                image_rows.append(
                    {
                        "job_id": i, "index": 0, "seed": i, "width": 512, "height": 512,
                        "path": f"/nonexistent/images/{i}/0.png", "flagged": flagged,
                        "safety": {"classifier": "nudenet", "flagged": flagged,
                                   "labels": {"FACE_FEMALE": 0.4,
                                              "BUTTOCKS_EXPOSED": 0.7 if flagged else 0.0}},
                    }
                )  # fmt: skip
            if len(batch) == 5000:
                conn.execute(insert(jobs), batch)
                conn.execute(insert(images), image_rows)
                batch, image_rows = [], []
        if batch:
            conn.execute(insert(jobs), batch)
        if image_rows:
            conn.execute(insert(images), image_rows)
        conn.execute(
            insert(audit_t),
            [
                {"at": now - i * 60, "actor": f"console:op{i % 3}", "action": "users.ban"
                 if i % 2 else "allowlist.deny", "target": f"t{i}.example", "detail": {"note": "x"}}
                for i in range(5000)
            ],
        )  # fmt: skip
        conn.execute(
            insert(fediseer_t),
            [
                {"domain": f"inst{i}.example", "list": "allow" if i % 10 else "deny",
                 "provenance": {"domain": f"inst{i}.example", "allowed": bool(i % 10),
                                "endorsed_by": {"alpha.example": ["ok"]}, "censured_by": {},
                                "hesitated_by": {}, "guaranteed": False, "guarantor": None,
                                "decided_by": ["alpha.example"]}, "since": now - 86400}
                for i in range(5000)
            ],
        )  # fmt: skip
        conn.execute(
            insert(overrides_t),
            [{"domain": f"manual{i}.example", "action": "deny", "note": "spam",
              "created_at": now, "created_by": "cli"} for i in range(50)],
        )  # fmt: skip
        conn.execute(
            insert(bans_t),
            [{"acct": f"troll{i}@bad.example", "note": "", "created_at": now} for i in range(100)],
        )
        conn.exec_driver_sql("ANALYZE")

    db.run_blocking(body)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    from argon2 import PasswordHasher

    hashed = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(
            {
                "data_dir": tmp,
                "database": {"url": f"sqlite:///{tmp}/bench.db"},
                "console": {"enabled": True, "port": 0,
                            "operators": [{"name": "bench", "password_hash": hashed}]},
            }
        )  # fmt: skip
        db = Database(config.database.url)
        await upgrade(db)
        now = time.time()
        started = time.perf_counter()
        await asyncio.to_thread(fill, db, args.jobs, now)
        fill_s = time.perf_counter() - started
        client = TestClient(TestServer(build_app(ConsoleContext(config, db, JobQueue(db)))))
        await client.start_server()
        page = await client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert token
        signed = await client.post(
            "/login", data={"csrf": token.group(1), "name": "bench", "password": PASSWORD},
            allow_redirects=False,
        )  # fmt: skip
        assert signed.status == 303, signed.status
        pages = [
            "/", "/gallery", "/gallery?flagged=1", "/gallery?state=withheld",
            "/gallery?requester=user7@inst7.example", "/gallery?instance=inst3.example",
            f"/gallery?before={args.jobs // 2}", f"/jobs/{args.jobs - 3}", "/review",
            "/review?tab=failed", "/allowlist", "/allowlist?q=inst12", "/users",
            "/users?acct=user7@inst7.example", "/audit", "/audit?action=users.",
        ]  # fmt: skip
        results: dict[str, dict[str, float]] = {}
        for path in pages:
            times = []
            for _ in range(args.runs):
                t0 = time.perf_counter()
                response = await client.get(path)
                await response.read()
                times.append((time.perf_counter() - t0) * 1000)
                assert response.status == 200, (path, response.status)
            times.sort()
            p95 = times[min(len(times) - 1, max(0, round(0.95 * len(times)) - 1))]
            results[path] = {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(p95, 2)}
            print(f"{path:45s} p50 {results[path]['p50_ms']:7.2f} ms   p95 {p95:7.2f} ms")
        await client.close()
        await db.dispose()
    worst = max(r["p95_ms"] for r in results.values())
    print(json.dumps({"jobs": args.jobs, "runs": args.runs, "fill_seconds": round(fill_s, 1),
                      "worst_p95_ms": worst, "pages": results}))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
