"""The database: SQLAlchemy 2 Core/ORM on a synchronous engine, driven from asyncio.

Every transaction runs as one function in a database thread (`await db.run(fn)`): one hop
between the event loop and the driver per transaction instead of one per statement. Measured
with `benchmarks/queue_bench.py`, this is what lets SQLite take thousands of enqueues per
second on two cores, where an async driver (aiosqlite) spent most of its time hopping threads.

SQLite (default) gets WAL, a busy timeout, foreign keys and `BEGIN IMMEDIATE` for every
transaction, and a single database thread per process (writers never wait on each other
inside one process). PostgreSQL (psycopg2) gets a small pool of threads and connections.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

T = TypeVar("T")

# Async driver names operators may know from other projects; the same database, our driver.
_DRIVER_ALIASES = {
    "sqlite+aiosqlite": "sqlite+pysqlite",
    "sqlite": "sqlite+pysqlite",
    "postgresql+asyncpg": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "postgres": "postgresql+psycopg2",
}
SUPPORTED = ("sqlite:///PATH", "postgresql://USER@HOST:PORT/DB")


_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s]*:|^[^@/\s]*:)[^@\s]*@")
_URL_PASSWORD_ANYWHERE = re.compile(r"(?P<head>://[^:/@\s]*:)[^@\s]*@")


def mask_url(url: str) -> str:
    """A database URL with its password as `***`, also for URLs that do not parse: the one
    function every log line, error, `doctor` and CLI output uses to show a database URL."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: mask whatever sits between `user:` and `@`
        return _URL_PASSWORD.sub(lambda m: m.group("head") + "***@", url)


def mask_url_passwords(text: str) -> str:
    """`text` with the password of every URL in it masked (for error messages)."""
    return _URL_PASSWORD_ANYWHERE.sub(lambda m: m.group("head") + "***@", text)


def normalize_url(url: str) -> URL:
    """The URL with our driver; ValueError (naming no password) when it is not one we take."""
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 (a port that is not a number fails here)
    except Exception:
        raise ValueError(f"is not a valid database URL: use {' or '.join(SUPPORTED)}") from None
    driver = _DRIVER_ALIASES.get(parsed.drivername, parsed.drivername)
    if driver not in ("sqlite+pysqlite", "postgresql+psycopg2"):
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: use {' or '.join(SUPPORTED)}"
        )
    return parsed.set(drivername=driver)


class Database:
    """One database for the whole process: `await db.run(fn, ...)` runs `fn(conn, ...)` in a
    transaction (committed when fn returns, rolled back when it raises)."""

    def __init__(self, url: str, *, echo: bool = False, busy_timeout_ms: int = 30_000) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.dialect = "sqlite" if self.is_sqlite else "postgresql"
        if self.is_sqlite:
            _ensure_sqlite_dir(self.url)
            self.engine = create_engine(
                self.url,
                echo=echo,
                connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
            )
            _configure_sqlite(self.engine, busy_timeout_ms)
            self._checkpointer: SqliteCheckpointer | None = SqliteCheckpointer(
                self.url.database or ""
            )
            threads = 1
        else:
            self.engine = create_engine(
                self.url, echo=echo, pool_size=8, max_overflow=4, pool_pre_ping=True
            )
            self._checkpointer = None
            threads = 8
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fedibot-db")

    @property
    def display_url(self) -> str:
        """The URL without its password, for logs and `doctor`."""
        return mask_url(self.url.render_as_string(hide_password=False))

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(self.run_blocking, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The same transaction, from synchronous code (CLI commands, migrations)."""
        with self.engine.begin() as conn:
            return fn(conn, *args, **kwargs)

    async def dispose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._executor.shutdown(wait=True)
        self.engine.dispose()


def _ensure_sqlite_dir(url: URL) -> None:
    """Create the folder of a SQLite file so a fresh checkout just works."""
    if url.database not in (None, "", ":memory:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin event, not the driver, start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Checkpoints run in a background thread (see SqliteCheckpointer); this is only the
        # safety net if that thread is not running.
        cursor.execute("PRAGMA wal_autocheckpoint=20000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE: a claim's read and its UPDATE happen under one write lock, so two
        # processes never take the same job and never deadlock upgrading a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class SqliteCheckpointer:
    """Copies the WAL back into the database file every second from its own thread and
    connection (PASSIVE: never blocks writers), so no claim or enqueue pays for a checkpoint
    — with SQLite's automatic checkpoints, those made up the claim latency's p99."""

    def __init__(self, path: str, interval: float = 1.0) -> None:
        self.path, self.interval = path, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if path and path != ":memory:":
            self._thread = threading.Thread(
                target=self._run, name="fedibot-sqlite-checkpoint", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while not self._stop.wait(self.interval):
            try:
                if conn is None:
                    conn = sqlite3.connect(self.path, timeout=1, check_same_thread=False)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                pass  # busy or not created yet: next second
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
