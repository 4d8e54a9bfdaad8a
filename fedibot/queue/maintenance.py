"""Admin work and reads: cancel, retry, edits, notices, lookups, images, statistics,
listings and the retention purge."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import (
    Table,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row

from federation.errors import DeliveryUnconfirmed
from fedibot.queue.core import (
    IS_QUEUED,
    QueueCore,
    horde_jobs,
    images,
    inputs,
    jobs,
    log,
)
from fedibot.storage.images import (
    read_legacy_file,
    remove_legacy_files,
)
from fedibot.storage.models import (
    JobState,
    OutboundPost,
    ReplyState,
)

outbound = cast(Table, OutboundPost.__table__)


class Maintenance(QueueCore):
    """Admin work and reads: cancel, retry, edits, notices, lookups, images, statistics,"""

    # ------------------------------------------------------------------ admin
    async def cancel(self, job_id: int, reason: str = "cancelled") -> bool:
        """Stop a job that has not finished; a worker holding it finds its lease gone."""
        now = self._now()

        def _cancel(conn: Connection) -> str | None:
            row = conn.execute(select(jobs.c.state).where(jobs.c.id == job_id)).first()
            if row is None or row.state in JobState.TERMINAL:
                return None
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == row.state)
                .values(
                    state=JobState.CANCELLED,
                    error_code="cancelled",
                    error_message=reason,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=now,
                    updated_at=now,
                )
            )
            return row.state

        old = await self.db.run(_cancel)
        if old is None:
            return False
        self._transition(job_id, old, JobState.CANCELLED, reason)
        return True

    async def retry(self, job_id: int) -> bool:
        """Put a failed or cancelled job back in the queue with fresh attempts. A reply that
        may have gone out already (`delivery_unconfirmed`) is sent again with its images: the
        operator decided that a second copy is better than none."""
        now = self._now()

        def _retry(conn: Connection) -> str | None:
            row = conn.execute(
                select(jobs.c.state, jobs.c.kind, jobs.c.error_code).where(jobs.c.id == job_id)
            ).first()
            if row is None or row.state not in (JobState.FAILED, JobState.CANCELLED):
                return None
            if row.error_code == DeliveryUnconfirmed.code:
                return self._send_again(conn, job_id, now)
            if row.kind not in ("mention", "campaign"):
                return None  # help/delete notices are not generated
            old_paths.extend(
                conn.execute(select(images.c.path).where(images.c.job_id == job_id)).scalars()
            )
            conn.execute(delete(images).where(images.c.job_id == job_id))
            self.image_store.delete(conn, [job_id])
            conn.execute(delete(horde_jobs).where(horde_jobs.c.job_id == job_id))
            clock = conn.execute(
                select(func.coalesce(func.min(jobs.c.fair_seq), 0)).where(IS_QUEUED)
            ).scalar_one()
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    state=JobState.QUEUED,
                    attempts=0,
                    crashes=0,
                    started_at=None,
                    reply_attempts=0,
                    fair_seq=clock,
                    not_before=0.0,
                    error_code=None,
                    error_message=None,
                    reply_state=ReplyState.NONE,
                    finished_at=None,
                    updated_at=now,
                )
            )
            return row.state

        old_paths: list[str] = []
        old = await self.db.run(_retry)
        if old is None:
            return False
        await asyncio.to_thread(remove_legacy_files, old_paths)
        if old == JobState.GENERATED:
            self._transition(job_id, JobState.FAILED, JobState.GENERATED, "send again")
        else:
            self._transition(job_id, old, JobState.QUEUED, "retry")
        return True

    @staticmethod
    def _send_again(conn: Connection, job_id: int, now: float) -> str:
        """failed (`delivery_unconfirmed`) → generated, images kept; the unanswered post call
        is forgotten, so the next attempt posts with a new request token."""
        conn.execute(
            update(outbound)
            .where(outbound.c.job_id == job_id, outbound.c.state != "posted")
            .values(send_token=None, send_started_at=None, updated_at=now)
        )
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(
                state=JobState.GENERATED,
                reply_attempts=0,
                not_before=0.0,
                error_code=None,
                error_message=None,
                finished_at=None,
                updated_at=now,
            )
        )
        return str(JobState.GENERATED)

    async def update_queued(self, job_id: int, **values: Any) -> bool:
        """Change a job that is still queued (a request edited before it was handled)."""
        now = self._now()

        def _update(conn: Connection) -> int:
            return conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED)
                .values(**values, updated_at=now)
            ).rowcount

        return bool(await self.db.run(_update))

    async def update_params(self, job_id: int, values: dict[str, Any]) -> None:
        """Merge `values` into a job's params (small notes such as 'wait notice sent')."""

        def _update(conn: Connection) -> None:
            current = conn.execute(select(jobs.c.params).where(jobs.c.id == job_id)).scalar()
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(params={**(current or {}), **values}, updated_at=self._now())
            )

        await self.db.run(_update)

    async def add_notice(self, job_id: int, code: str, text: str) -> None:
        """A sentence for the job's reply (e.g. the Horde censored some of its images): kept
        in params["notices"], which compose_result appends to the reply text."""

        def _add(conn: Connection) -> None:
            current = conn.execute(select(jobs.c.params).where(jobs.c.id == job_id)).scalar()
            params = dict(current or {})
            notices = [n for n in params.get("notices", []) if n.get("code") != code]
            params["notices"] = [*notices, {"code": code, "text": text}]
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(params=params, updated_at=self._now())
            )

        await self.db.run(_add)

    async def get(self, job_id: int) -> Row[Any] | None:
        return await self.db.run(
            lambda conn: conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        )

    async def find(self, platform: str, bot_account: str, remote_id: str) -> Row[Any] | None:
        query = select(jobs).where(
            jobs.c.platform == platform,
            jobs.c.bot_account == bot_account,
            jobs.c.remote_id == remote_id,
        )
        return await self.db.run(lambda conn: conn.execute(query).first())

    async def find_by_reply(
        self, platform: str, bot_account: str, reply_id: str
    ) -> Row[Any] | None:
        """The job whose reply (the bot's post) has this remote id — for `again`/`delete`."""
        query = select(jobs).where(
            jobs.c.platform == platform,
            jobs.c.bot_account == bot_account,
            jobs.c.reply_remote_id == reply_id,
        )
        return await self.db.run(lambda conn: conn.execute(query).first())

    async def images(self, job_id: int) -> list[Row[Any]]:
        query = select(images).where(images.c.job_id == job_id).order_by(images.c.index)
        return await self.db.run(lambda conn: list(conn.execute(query).all()))

    async def image_bytes(self, job_id: int, rows: Sequence[Any]) -> dict[int, bytes]:
        """The PNG bytes of these image rows of a job, by index, from the image store (or,
        for images made before the store, from their file when this process can read it)."""
        indexes = [int(r.index) for r in rows]
        found = await self.db.run(lambda conn: self.image_store.get(conn, job_id, indexes))
        for r in rows:
            if int(r.index) not in found:
                legacy = await asyncio.to_thread(read_legacy_file, str(r.path))
                if legacy is not None:
                    found[int(r.index)] = legacy
        return found

    async def stats(self) -> dict[str, int]:
        def _stats(conn: Connection) -> dict[str, int]:
            result = conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state))
            counts = {state: 0 for state in JobState.ALL}
            counts.update({state: int(n) for state, n in result.all()})
            return counts

        return await self.db.run(_stats)

    async def list_jobs(
        self, state: str | None = None, limit: int = 50, requester: str | None = None
    ) -> list[Row[Any]]:
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if state:
            query = query.where(jobs.c.state == state)
        if requester:
            query = query.where(jobs.c.requester == requester)
        return await self.db.run(lambda conn: list(conn.execute(query).all()))

    async def purge(self, older_than_seconds: float) -> tuple[int, int]:
        """Delete finished jobs older than the retention and their image files. Withheld jobs
        stay until an operator decided (discarded ones are purged later; evidence never)."""
        cutoff = self._now() - older_than_seconds
        old = and_(
            jobs.c.finished_at.is_not(None),
            jobs.c.finished_at < cutoff,
            jobs.c.state.in_(JobState.PURGEABLE),
        )

        def _purge(conn: Connection) -> tuple[list[int], list[str], int]:
            ids = list(conn.execute(select(jobs.c.id).where(old)).scalars())
            if not ids:
                return [], [], 0
            paths = list(
                conn.execute(select(images.c.path).where(images.c.job_id.in_(ids))).scalars()
            )
            stored = self.image_store.delete(conn, ids)
            conn.execute(delete(images).where(images.c.job_id.in_(ids)))
            conn.execute(delete(horde_jobs).where(horde_jobs.c.job_id.in_(ids)))
            conn.execute(delete(inputs).where(inputs.c.job_id.in_(ids)))
            conn.execute(delete(jobs).where(jobs.c.id.in_(ids)))
            return ids, paths, stored

        ids, paths, stored = await self.db.run(_purge)
        removed = stored + await asyncio.to_thread(remove_legacy_files, paths)
        if ids:
            log.info(
                "purged %d jobs and %d images older than %.0fs",
                len(ids),
                removed,
                older_than_seconds,
            )
        return len(ids), removed
