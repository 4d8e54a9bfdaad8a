"""Apply Alembic migrations from code (at start-up and for `fedibot db upgrade`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from fedibot.storage.database import Database

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# pg_advisory_xact_lock key of schema upgrades ("fedibot" in ASCII, as a bigint).
MIGRATION_LOCK_KEY = 0x6665646962_6F74


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade_blocking(db: Database, revision: str = "head") -> None:
    """One transaction under a lock, so processes starting together migrate one at a time
    (the others then find the schema at head and do nothing): PostgreSQL takes a transaction
    advisory lock first; SQLite's transactions here begin with `BEGIN IMMEDIATE`, its write
    lock (see fedibot.storage.database), held until the migration commits."""
    cfg = alembic_config()
    with db.engine.begin() as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent; safe to run at every start)."""
    import asyncio

    await asyncio.to_thread(upgrade_blocking, db, revision)


def current_revision(db: Database) -> str | None:
    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()
