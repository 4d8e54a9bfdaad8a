"""Real databases for tests: a SQLite file per test, a fresh PostgreSQL database per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("FEDIBOT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_wanted() -> bool:
    """PostgreSQL tests run unless explicitly switched off (they must not skip silently)."""
    return os.environ.get("FEDIBOT_SKIP_POSTGRES", "") not in ("1", "true", "yes")


def _admin(sql: str) -> None:
    engine = create_engine(
        make_url(PG_URL).set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """CREATE a throw-away database on the real server; DROP it afterwards."""
    if not postgres_wanted():
        pytest.skip("FEDIBOT_SKIP_POSTGRES is set")
    name = f"fedibot_t_{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(_admin, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await asyncio.to_thread(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
