"""The database: engine on its own thread, schema, Alembic migrations, cursors."""
