"""Several processes starting at once on a fresh database migrate one at a time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect

from fedibot.storage.database import normalize_url
from tests.dbutil import fresh_postgres_database
from tests.e2e_support import eventually

REPO = Path(__file__).resolve().parents[2]


async def _race(url: str, tmp: Path, n: int = 5) -> None:
    go = tmp / "go"
    procs, ready = [], []
    for i in range(n):
        ready.append(tmp / f"ready{i}")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.storage.migrate_proc", url, str(ready[-1]), str(go)],
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    await eventually(  # all connected and waiting (generous: imports on a busy box)
        lambda: all(r.exists() for r in ready) or any(p.poll() is not None for p in procs),
        timeout=120,
    )
    go.touch()
    errors = []
    for proc in procs:
        _, err = await asyncio.to_thread(proc.communicate, None, 120)
        if proc.returncode != 0:
            errors.append(err[-2000:])
    assert not errors, errors
    engine = create_engine(normalize_url(url))
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"jobs", "job_image_data", "horde_jobs", "workers", "alembic_version"} <= tables


async def test_five_processes_migrating_one_postgres_database_at_once(tmp_path: Path) -> None:
    async with fresh_postgres_database() as url:
        await _race(url, tmp_path)


async def test_five_processes_migrating_one_sqlite_file_at_once(tmp_path: Path) -> None:
    await _race(f"sqlite:///{tmp_path / 'race.db'}", tmp_path)
