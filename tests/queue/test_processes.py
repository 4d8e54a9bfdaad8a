"""Claimers in separate OS processes against one database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from fedibot.queue.jobs import JobQueue, QueueSettings
from fedibot.storage.models import JobState
from tests.queue.test_queue import job

REPO = Path(__file__).resolve().parents[2]


def spawn(url: str, worker: str, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.queue.claimer_proc", url, worker, str(out), *extra],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


async def test_two_processes_complete_each_job_exactly_once(db, db_url, tmp_path):
    queue = JobQueue(db)
    for i in range(400):
        await queue.enqueue(job(str(i), requester=f"user{i % 11}@example.social"))
    outs = [tmp_path / f"p{i}.txt" for i in range(3)]
    go = tmp_path / "go"
    procs = [spawn(db_url, f"proc{i}", out, "--go", str(go)) for i, out in enumerate(outs)]
    deadline = time.monotonic() + 120
    while not all(Path(f"{out}.ready").exists() for out in outs):  # all three at the barrier
        assert all(p.poll() is None for p in procs), "a claimer process died at start"
        assert time.monotonic() < deadline, "the claimer processes never got ready"
        await asyncio.sleep(0.05)
    go.touch()
    for proc in procs:
        assert await asyncio.to_thread(proc.wait, 120) == 0
    done = Counter(int(x) for out in outs for x in out.read_text().split())
    assert len(done) == 400 and set(done.values()) == {1}
    assert sum(1 for out in outs if out.read_text().strip()) >= 2  # really shared the work
    assert (await queue.stats())[JobState.GENERATED] == 400


async def test_killed_claimer_process_jobs_come_back_after_lease_expiry(db, db_url, tmp_path):
    # The survivor's clock is moved on by hand past the dead claimer's (long) lease, so no
    # sleep races the lease on a slow machine.
    offset = [0.0]
    settings = QueueSettings(
        retry_base_seconds=0.01,
        per_requester_in_flight=100,
        clock=lambda: time.time() + offset[0],
    )
    queue = JobQueue(db, settings)
    for i in range(5):
        await queue.enqueue(job(str(i)))
    held = tmp_path / "held.txt"
    proc = spawn(db_url, "doomed", held, "--hold", "--lease", "600")
    deadline = time.monotonic() + 120
    while not (held.exists() and held.read_text().endswith("\n")):
        assert proc.poll() is None, "the claimer process died before claiming"
        assert time.monotonic() < deadline, "the claimer process never claimed"
        await asyncio.sleep(0.05)
    claimed = {int(x) for x in held.read_text().split()}
    assert len(claimed) == 5
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert await queue.claim("survivor", max_batch=8) == []
    assert await queue.requeue_expired() == 0  # the lease still runs
    offset[0] = 601  # the claimer's 600 s lease runs out
    assert await queue.requeue_expired() == 5
    offset[0] = 700  # and the retry backoff passes
    again = await queue.claim("survivor", max_batch=8)
    assert {r.id for r in again} == claimed
    for row in again:
        assert await queue.complete("survivor", row.id, [])
    assert (await queue.stats())[JobState.GENERATED] == 5
