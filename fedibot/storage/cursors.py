"""Adapters' catch-up cursors, stored in the database (federation.base.CursorStore)."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from fedibot.storage.database import Database
from fedibot.storage.models import Cursor, table_of

cursors = table_of(Cursor)


class DbCursorStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_cursor(self, key: str) -> str | None:
        query = select(cursors.c.value).where(cursors.c.key == key)
        return await self.db.run(lambda conn: conn.execute(query).scalar())

    async def set_cursor(self, key: str, value: str) -> None:
        insert = postgresql.insert if not self.db.is_sqlite else sqlite.insert
        stmt = insert(cursors).values(key=key, value=value, updated_at=time.time())
        stmt = stmt.on_conflict_do_update(
            index_elements=["key"], set_={"value": value, "updated_at": time.time()}
        )
        await self.db.run(lambda conn: conn.execute(stmt))
