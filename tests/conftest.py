"""Shared fixtures: real databases (SQLite file and PostgreSQL), migrated with Alembic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fedibot.db import Database
from fedibot.migrate import upgrade
from tests.dbutil import fresh_postgres_database


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'fedibot.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request, tmp_path) -> AsyncIterator[str]:
    """Both supported databases: the same test runs on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fedibot.db'}"
    else:
        async with fresh_postgres_database() as url:
            yield url


@pytest.fixture
async def db(db_url) -> AsyncIterator[Database]:
    database = Database(db_url)
    await upgrade(database)
    yield database
    await database.dispose()


@pytest.fixture
async def sqlite_db(sqlite_url) -> AsyncIterator[Database]:
    database = Database(sqlite_url)
    await upgrade(database)
    yield database
    await database.dispose()
