"""Several machines on one PostgreSQL database (issue 15): real `fedibot run --no-worker` and
`fedibot worker` processes, each with its own data directory and working directory, against
the fake Mastodon; and a worker killed with SIGKILL mid-batch six times."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from fedibot.queue.jobs import jobs, workers
from fedibot.storage.database import Database
from tests.dbutil import fresh_postgres_database
from tests.e2e_mastodon.conftest import (
    Apps,
    HoldingMastodon,
    bot_statuses,
    eventually,
    raw_config,
    settled,
    to_toml,
)
from tests.fixtures_path import REPO_ROOT

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_postgres_database() as url:
        yield url


def machine(root: Path, name: str, tiny: Path, fake: HoldingMastodon, url: str, **gen: Any) -> Path:
    """A 'machine': its own working directory with config.toml and a relative data dir."""
    home = root / name
    (home / "data" / "models").mkdir(parents=True)
    (home / "data" / "models" / "tiny").symlink_to(tiny / "models" / "tiny")
    raw = raw_config(
        Path("data"),  # relative on purpose: what broke replies on other machines
        fake,
        database={"url": url},
        generator={"lease_seconds": 60, "heartbeat_seconds": 2, "max_batch": 4, **gen},
    )
    (home / "config.toml").write_text(to_toml(raw))
    return home


def spawn(home: Path, *args: str, module: str = "fedibot") -> subprocess.Popen[bytes]:
    log = open(home / "process.log", "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=home,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 60)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)


def answered_once_with_images(fake: HoldingMastodon, request_ids: list[str]) -> None:
    statuses = bot_statuses(fake)
    answers = Counter(s["in_reply_to_id"] for s in statuses)
    assert set(answers) == set(request_ids)
    assert set(answers.values()) == {1}
    assert all(len(s["media_attachments"]) == 1 for s in statuses)  # no error replies


async def test_run_no_worker_and_two_workers_on_their_own_machines(
    fake: HoldingMastodon, pg_url: str, tiny_data_dir: Path, tmp_path: Path
) -> None:
    homes = [machine(tmp_path, n, tiny_data_dir, fake, pg_url) for n in ("bot", "gpu1", "gpu2")]
    procs = [spawn(homes[0], "--config", "config.toml", "run", "--no-worker")]
    procs += [spawn(home, "--config", "config.toml", "worker") for home in homes[1:]]
    try:
        requests = [
            fake.mention(f"user{i}@remote{i % 3}.example", f"a small house number {i}")["id"]
            for i in range(12)
        ]
        await eventually(lambda: len(bot_statuses(fake)) >= 12, timeout=120, interval=0.2)
        answered_once_with_images(fake, requests)
        db = Database(pg_url)
        try:
            seen = await db.run(
                lambda conn: (
                    conn.execute(select(workers.c.id).where(workers.c.kind == "local"))
                    .scalars()
                    .all()
                )
            )
            states = await db.run(lambda conn: conn.execute(select(jobs.c.state)).scalars().all())
        finally:
            await db.dispose()
        assert len(seen) == 2  # both GPU machines worked for the same queue
        await eventually(lambda: all(p.poll() is None for p in procs))
        # nothing was written to the working or data directories of the workers
        for home in homes[1:]:
            assert not list((home / "data").rglob("*.png"))
        assert set(states) <= {"done", "replying"}
    finally:
        for proc in procs:
            await stop(proc)
    assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]


async def _started_since(db: Database, since: float) -> list[Any]:
    """Jobs whose rendering began after `since` (this incarnation's, not a dead one's)."""

    def _q(conn: Any) -> list[Any]:
        return list(
            conn.execute(
                select(jobs.c.id, jobs.c.batch_size).where(
                    jobs.c.state == "generating", jobs.c.started_at >= since
                )
            ).all()
        )

    return await db.run(_q)


@pytest.mark.slow
async def test_six_kill9s_mid_batch_leave_every_job_answered_once_with_images(
    fake: HoldingMastodon, pg_url: str, apps: Apps, tiny_data_dir: Path, tmp_path: Path
) -> None:
    home = machine(tmp_path, "gpu", tiny_data_dir, fake, pg_url, max_batch=2)
    gate = tmp_path / "gate"
    gate.mkdir()
    await apps.start(with_worker=False, database={"url": pg_url})  # `fedibot run --no-worker`
    requests = [
        fake.mention(f"user{i}@remote{i % 5}.example", f"a lighthouse number {i}")["id"]
        for i in range(20)
    ]
    db = Database(pg_url)
    kills = 0
    try:
        while kills < 6:
            proc = spawn(
                home, str(gate), "--config", "config.toml", "worker",
                module="tests.e2e_mastodon.gated_worker",
            )  # fmt: skip
            restarted, spawned_at = time.monotonic(), time.time()
            first_start: list[float] = []

            async def batch_started(
                proc: subprocess.Popen[bytes] = proc,
                spawned_at: float = spawned_at,
                restarted: float = restarted,
                first_start: list[float] = first_start,
            ) -> bool:
                """A batch of several renders began (suspects alone are let through)."""
                assert proc.poll() is None, (home / "process.log").read_text()[-3000:]
                started = await _started_since(db, spawned_at)
                if started and not first_start:
                    first_start.append(time.monotonic())
                    assert first_start[0] - restarted < 60, "the queue did not move within 60 s"
                if any(r.batch_size >= 2 for r in started):
                    return True
                for r in started:
                    (gate / f"pass-{r.id}").touch()
                return False

            try:  # condition waits on the database, no sleeps raced against leases
                await eventually(batch_started, timeout=120)
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait, 30)
                kills += 1
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        # the seventh start runs to the end
        (gate / "open").touch()
        proc = spawn(home, str(gate), "--config", "config.toml", "worker",
                     module="tests.e2e_mastodon.gated_worker")  # fmt: skip
        try:
            await eventually(lambda: len(bot_statuses(fake)) >= 20, timeout=120, interval=0.2)
            answered_once_with_images(fake, requests)
        finally:
            await stop(proc)
        rows = await db.run(lambda conn: conn.execute(select(jobs)).all())
        assert {r.state for r in rows} == {"done"}
        assert sum(1 for r in rows if r.crashes) >= 6  # the kills really hit running batches
        # A batch killed mid-render costs its jobs no attempt (a job just rendered alone and
        # still being stored when the kill came may pay one): nobody came near max_attempts.
        assert sum(1 for r in rows if r.attempts <= 1) >= 18
        assert all(r.attempts < r.max_attempts for r in rows)
    finally:
        await db.dispose()
    await settled(apps._running[0], timeout=30)
