"""Apply Alembic migrations from code (at start-up and for `fedibot db upgrade`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fedibot.storage.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_REVISION = re.compile(
    r"^(down_revision|revision)\s*(?::[^=]*)?=\s*['\"]?([\w-]+|None)['\"]?", re.MULTILINE
)
# pg_advisory_xact_lock key of schema upgrades ("fedibot" in ASCII, as a bigint).
MIGRATION_LOCK_KEY = 0x6665646962_6F74


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade_blocking(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision`, in one transaction under a lock, so processes
    starting together migrate one at a time (the others then find the schema at head and do
    nothing): PostgreSQL takes a transaction advisory lock first; SQLite's transactions here
    begin with `BEGIN IMMEDIATE`, its write lock (see fedibot.storage.database), held until
    the migration commits. Alembic (slow to import) is loaded only when the database is not
    at the head already: admin commands stay quick."""
    if revision == "head":
        head = script_head()
        if head is not None and stored_revision(db) == head:
            return
    from alembic import command

    cfg = alembic_config()
    with db.engine.begin() as conn:
        if not db.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def script_head() -> str | None:
    """The head revision, read from the migration files without Alembic (None when the
    files do not make one linear history: then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict((k, v) for k, v in _REVISION.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found:
            return None
        revisions.add(found["revision"])
        if found.get("down_revision", "None") != "None":
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def stored_revision(db: Database) -> str | None:
    """The revision recorded in the database (None: no schema yet or unreadable)."""
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except DBAPIError:
        return None
    return str(rows[0][0]) if len(rows) == 1 else None


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent; safe to run at every start)."""
    import asyncio

    await asyncio.to_thread(upgrade_blocking, db, revision)


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()
