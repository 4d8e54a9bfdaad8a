"""The install id: random, made once per database, part of every idempotency key.

Two installs (or one install whose database was reset, so that job ids start at 1 again)
must never send the same key: servers cache a key's response for hours, and Akkoma does so
in one key space for all users.
"""

from __future__ import annotations

import secrets
import time
from typing import cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from fedibot.storage.database import Database
from fedibot.storage.models import Setting

settings = cast(Table, Setting.__table__)
INSTALL_ID_KEY = "install_id"


def _install_id(conn: Connection, dialect: str) -> str:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    conn.execute(
        insert(settings)
        .values(key=INSTALL_ID_KEY, value=secrets.token_hex(6), created_at=time.time())
        .on_conflict_do_nothing(index_elements=["key"])
    )
    value = conn.execute(select(settings.c.value).where(settings.c.key == INSTALL_ID_KEY))
    return str(value.scalar_one())


async def install_id(db: Database) -> str:
    """This database's install id (12 hex digits), made on first use; the same in every
    process on the database (the first writer wins)."""
    return await db.run(_install_id, db.dialect)
