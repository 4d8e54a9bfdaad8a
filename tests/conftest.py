"""Shared fixtures: real databases (SQLite file and PostgreSQL), migrated with Alembic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from fedibot.db import create_engine
from fedibot.migrate import upgrade
from tests.dbutil import fresh_postgres_database


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'fedibot.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request, tmp_path) -> AsyncIterator[str]:
    """Both supported databases: the same test runs on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fedibot.db'}"
    else:
        async with fresh_postgres_database() as url:
            yield url


@pytest.fixture
async def engine(db_url) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(db_url)
    await upgrade(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
async def sqlite_engine(sqlite_url) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(sqlite_url)
    await upgrade(eng)
    yield eng
    await eng.dispose()
