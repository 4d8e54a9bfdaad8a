"""Where the PNGs of jobs live: behind `ImageStore`, so any process on any machine reads what
any worker made (see docs/images.md).

The store is transactional: `put`, `get` and `delete` take the connection of the queue's
transaction, so a job becomes `generated` in the same commit that stores its images, and a
purge removes both together. `DatabaseImageStore` keeps the bytes in the `job_image_data`
table (PostgreSQL `bytea`, SQLite BLOB). An object store (S3 and friends) would implement the
same four calls: `put` uploads before the commit and returns its key as the location, and
`delete` queues the keys for removal after the commit.

Images made before this store existed have a file path in `job_images.path`; `read_image`
still reads those from disk when this process can see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import Table, delete, insert, select, tuple_
from sqlalchemy.engine import Connection

from fedibot.storage.models import JobImageData

image_data: Table = JobImageData.__table__  # type: ignore[assignment]

DB_PREFIX = "db:"


def db_location(job_id: int, index: int) -> str:
    """The `job_images.path` of an image kept in the database."""
    return f"{DB_PREFIX}{job_id}/{index}"


class ImageStore(Protocol):
    """PNG bytes of job images, by (job id, image index)."""

    def put(self, conn: Connection, job_id: int, index: int, data: bytes) -> str:
        """Store one image in the caller's transaction; returns its location string."""
        ...

    def get(self, conn: Connection, job_id: int, indexes: Iterable[int]) -> dict[int, bytes]:
        """The bytes of these images of a job (missing ones are left out)."""
        ...

    def delete(self, conn: Connection, job_ids: Sequence[int]) -> int:
        """Remove every image of these jobs; returns how many were removed."""
        ...


class DatabaseImageStore:
    """Images as BLOB/bytea rows next to their jobs."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock

    def put(self, conn: Connection, job_id: int, index: int, data: bytes) -> str:
        conn.execute(
            delete(image_data).where(image_data.c.job_id == job_id, image_data.c.index == index)
        )
        conn.execute(
            insert(image_data).values(
                job_id=job_id, index=index, data=data, size=len(data), created_at=self.clock()
            )
        )
        return db_location(job_id, index)

    def get(self, conn: Connection, job_id: int, indexes: Iterable[int]) -> dict[int, bytes]:
        wanted = list(indexes)
        if not wanted:
            return {}
        rows = conn.execute(
            select(image_data.c.index, image_data.c.data).where(
                tuple_(image_data.c.job_id, image_data.c.index).in_([(job_id, i) for i in wanted])
            )
        ).all()
        return {int(r._mapping["index"]): bytes(r._mapping["data"]) for r in rows}

    def delete(self, conn: Connection, job_ids: Sequence[int]) -> int:
        if not job_ids:
            return 0
        return conn.execute(
            delete(image_data).where(image_data.c.job_id.in_(list(job_ids)))
        ).rowcount


def read_legacy_file(path: str) -> bytes | None:
    """An image stored as a file before images moved into the database (None if unreadable)."""
    if not path or path.startswith(DB_PREFIX):
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def remove_legacy_files(paths: Iterable[str]) -> int:
    """Delete old image files (and their emptied job folders); returns how many went."""
    removed = 0
    for path in paths:
        if not path or path.startswith(DB_PREFIX):
            continue
        file = Path(path)
        if file.exists():
            file.unlink()
            removed += 1
        parent = file.parent
        with contextlib.suppress(OSError):
            if parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
    return removed


class MissingImage(Exception):
    """An image row whose bytes are nowhere this process can read."""


@contextlib.asynccontextmanager
async def materialized(
    queue: Any, job_id: int, rows: Sequence[Any], cache_dir: str | Path
) -> AsyncIterator[list[Any]]:
    """The job's image rows with `.path` pointing at PNG files under `cache_dir/<job id>/`
    (adapters upload files; blurring writes a copy beside them). The folder is removed when
    the block succeeds and kept when it raises, so a retried post finds the same files (the
    Lemmy adapter remembers uploads by path, size and mtime). Raises MissingImage when an
    image cannot be read."""
    if not rows:
        yield []
        return
    data = await queue.image_bytes(job_id, rows)
    folder = Path(cache_dir) / str(job_id)
    out: list[Any] = []
    for row in rows:
        blob = data.get(int(row.index))
        if blob is None:
            raise MissingImage(f"job {job_id}: image {row.index} is not in the image store")
        target = folder / f"fedibot-{job_id}-{row.index}.png"
        await asyncio.to_thread(_write_once, target, blob)
        out.append(SimpleNamespace(**{**dict(row._mapping), "path": str(target)}))
    yield out
    await asyncio.to_thread(shutil.rmtree, folder, True)


def _write_once(target: Path, blob: bytes) -> None:
    """Write unless the same bytes are there already (keeps the file's mtime stable)."""
    try:
        if target.stat().st_size == len(blob) and target.read_bytes() == blob:
            return
    except OSError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(blob)
    tmp.replace(target)


def prune_cache(cache_dir: str | Path, older_than_seconds: float = 86400.0) -> None:
    """Remove job folders of the media cache nobody touched for a day (replies that ended
    while their files were kept for a retry)."""
    root = Path(cache_dir)
    if not root.is_dir():
        return
    cutoff = time.time() - older_than_seconds
    for folder in root.iterdir():
        with contextlib.suppress(OSError):
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
