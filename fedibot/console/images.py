"""Image bytes for the console — the ONE place that reads a stored image.

Images live in the database behind `fedibot.storage.images.ImageStore` (looked up by the
integer (job id, index) pair only, never by a path from a URL); images made before the
image store are read from the file the database lists for that pair.

Thumbnails are made once (Pillow, JPEG) and cached under `<data_dir>/console/thumbs/`, named
by the integer ids only.
"""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.engine import Connection

from fedibot.storage.images import DatabaseImageStore, read_legacy_file, remove_legacy_files
from fedibot.storage.models import JobImage

if TYPE_CHECKING:
    from fedibot.console.context import ConsoleContext

images_t = cast(Table, JobImage.__table__)


class ImageMissing(LookupError):
    """No such image for that job (or its bytes are gone)."""


def _path_of(conn: Connection, job_id: int, index: int) -> str | None:
    return conn.execute(
        select(images_t.c.path).where(images_t.c.job_id == job_id, images_t.c.index == index)
    ).scalar()


async def image_bytes(ctx: ConsoleContext, job_id: int, index: int) -> bytes:
    """The stored PNG of image `index` of job `job_id`; ImageMissing when there is none."""
    job_id, index = int(job_id), int(index)

    def body(conn: Connection) -> tuple[str | None, bytes | None]:
        path = _path_of(conn, job_id, index)
        if path is None:
            return None, None
        return path, DatabaseImageStore().get(conn, job_id, [index]).get(index)

    path, data = await ctx.db.run(body)
    if path is None:
        raise ImageMissing(f"job {job_id} has no image {index}")
    if data is None:
        data = await asyncio.to_thread(read_legacy_file, path)
    if data is None:
        raise ImageMissing(f"image {index} of job {job_id} is gone")
    return data


async def delete_job_images(ctx: ConsoleContext, job_id: int) -> int:
    """Remove a job's images (a discarded result) and their thumbnails; returns how many."""
    job_id = int(job_id)

    def body(conn: Connection) -> list[str]:
        paths = list(
            conn.execute(select(images_t.c.path).where(images_t.c.job_id == job_id)).scalars()
        )
        DatabaseImageStore().delete(conn, [job_id])
        conn.execute(delete(images_t).where(images_t.c.job_id == job_id))
        return paths

    paths = await ctx.db.run(body)
    await asyncio.to_thread(remove_legacy_files, paths)
    for thumb in ctx.thumbs_dir.glob(f"{job_id}-*.jpg"):
        thumb.unlink(missing_ok=True)
    return len(paths)


def thumbnail_path(ctx: ConsoleContext, job_id: int, index: int) -> Path:
    return ctx.thumbs_dir / f"{int(job_id)}-{int(index)}.jpg"


def make_thumbnail(data: bytes, size: int) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        img.thumbnail((size, size))
        out = io.BytesIO()
        img.convert("RGB").save(out, format="JPEG", quality=80)
    return out.getvalue()


async def thumbnail_bytes(ctx: ConsoleContext, job_id: int, index: int) -> bytes:
    """The cached thumbnail, made on first use."""
    target = thumbnail_path(ctx, job_id, index)
    try:
        return await asyncio.to_thread(target.read_bytes)
    except FileNotFoundError:
        pass
    data = await image_bytes(ctx, job_id, index)
    size = ctx.config.console.thumbnail_size

    def write() -> bytes:
        thumb = make_thumbnail(data, size)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(thumb)
        os.replace(tmp, target)
        return thumb

    return await asyncio.to_thread(write)


def png_parameters(data: bytes) -> str | None:
    """The A1111 `parameters` text chunk of a PNG (None when it has none or is no PNG)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            text = getattr(img, "text", {}).get("parameters")
    except Exception:  # not an image we can read: show nothing
        return None
    return text if isinstance(text, str) else None
