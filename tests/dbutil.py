"""Real databases for tests: a SQLite file per test, a fresh PostgreSQL database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

PG_URL = os.environ.get(
    "FEDIBOT_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def postgres_wanted() -> bool:
    """PostgreSQL tests run unless explicitly switched off (they must not skip silently)."""
    return os.environ.get("FEDIBOT_SKIP_POSTGRES", "") not in ("1", "true", "yes")


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """CREATE a throw-away database on the real server; DROP it afterwards."""
    if not postgres_wanted():
        pytest.skip("FEDIBOT_SKIP_POSTGRES is set")
    name = f"fedibot_t_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()
