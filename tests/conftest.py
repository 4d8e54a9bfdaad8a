"""Shared fixtures: real databases (SQLite file and PostgreSQL), migrated with Alembic."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # tests never download; before huggingface_hub loads
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade
from tests.dbutil import fresh_postgres_database


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the built-in `tiny` model, built once per test session."""
    from generator.tiny import ensure_tiny

    data_dir = tmp_path_factory.mktemp("tiny-data")
    ensure_tiny(data_dir)
    return data_dir


@pytest.fixture
def data_dir(tmp_path: Path, tiny_data_dir: Path) -> Path:
    """A fresh data dir for one test (its own images and SQLite file) whose `models/tiny`
    links to the session's build, so nothing is rebuilt and tests never share images."""
    folder = tmp_path / "data"
    (folder / "models").mkdir(parents=True)
    (folder / "models" / "tiny").symlink_to(
        tiny_data_dir / "models" / "tiny", target_is_directory=True
    )
    return folder


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
