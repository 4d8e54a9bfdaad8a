"""The reply state machine: claiming finished jobs for the replier, recording a sent or
failed reply, withholding a result for the operator."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import (
    and_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row

from fedibot.ops import metrics
from fedibot.queue.core import (
    IS_GENERATED,
    REPLY_PENDING,
    QueueCore,
    jobs,
)
from fedibot.storage.models import (
    JobState,
    ReplyState,
)


class ReplySide(QueueCore):
    """The reply state machine: claiming finished jobs for the replier, recording a sent or"""

    # ------------------------------------------------------------------ reply side
    async def claim_replies(
        self, worker_id: str, limit: int = 10, lease_seconds: float = 120.0
    ) -> list[Row[Any]]:
        """Take generated jobs (→ replying) and pending error replies (→ sending)."""
        out = await self.db.run(self._claim_replies, worker_id, limit, lease_seconds, self._now())
        for row in out:
            if row.state == JobState.REPLYING:
                self._transition(row.id, JobState.GENERATED, JobState.REPLYING, worker=worker_id)
        return out

    def _claim_replies(
        self, conn: Connection, worker_id: str, limit: int, lease_seconds: float, now: float
    ) -> list[Row[Any]]:
        lease = {"lease_owner": worker_id, "lease_expires_at": now + lease_seconds}
        error_reply_due = and_(
            REPLY_PENDING,
            jobs.c.state.in_((JobState.REJECTED, JobState.FAILED, JobState.WITHHELD)),
        )
        out: list[Row[Any]] = []
        for where, values in (
            (IS_GENERATED, {"state": JobState.REPLYING}),
            (error_reply_due, {"reply_state": ReplyState.SENDING}),
        ):
            picked = select(jobs.c.id).where(where, jobs.c.not_before <= now)
            picked = picked.order_by(jobs.c.id).limit(limit - len(out))
            if self._pg:
                picked = picked.with_for_update(skip_locked=True)
            ids = list(conn.execute(picked).scalars())
            if ids:
                rows = conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(ids), where)
                    .values(
                        **values, **lease, reply_attempts=jobs.c.reply_attempts + 1, updated_at=now
                    )
                    .returning(*jobs.c)
                )
                out.extend(rows.all())
            if len(out) >= limit:
                break
        return out

    async def reply_sent(
        self, worker_id: str, job_id: int, remote_id: str | None, url: str | None = None
    ) -> bool:
        """The reply is on the server: replying → done, or an error reply sending → sent."""
        now = self._now()

        def _sent(conn: Connection) -> Row[Any, Any] | None:
            row = conn.execute(
                select(jobs.c.state, jobs.c.created_at).where(
                    jobs.c.id == job_id, jobs.c.lease_owner == worker_id
                )
            ).first()
            if row is None:
                return None
            if row.state == JobState.REPLYING:
                values: dict[str, Any] = {"state": JobState.DONE, "finished_at": now}
            else:
                values = {"reply_state": ReplyState.SENT}
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    **values,
                    reply_remote_id=remote_id,
                    reply_url=url,
                    lease_owner=None,
                    lease_expires_at=None,
                    updated_at=now,
                )
            )
            return row

        row = await self.db.run(_sent)
        if row is None:
            return False
        if row.state == JobState.REPLYING:
            metrics.REPLY_LATENCY.observe(max(0.0, now - row.created_at))
            self._transition(job_id, JobState.REPLYING, JobState.DONE, remote=remote_id)
        return True

    async def reply_failed(
        self,
        worker_id: str,
        job_id: int,
        code: str,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        gone: bool = False,
        retry_within: float | None = None,
    ) -> str | None:
        """A post attempt failed. Transient → try again later (never dropped), within
        `retry_within` seconds when given (a repeat the server must still recognise);
        permanent → failed without reply; the request deleted → cancelled."""
        now = self._now()

        def _failed(conn: Connection) -> tuple[str, str] | None:
            row = conn.execute(
                select(jobs.c.state, jobs.c.reply_attempts).where(
                    jobs.c.id == job_id, jobs.c.lease_owner == worker_id
                )
            ).first()
            if row is None:
                return None
            sending_images = row.state == JobState.REPLYING
            values: dict[str, Any]
            give_up = row.reply_attempts >= self.settings.max_reply_attempts
            if retryable and not gone and not give_up:
                cap = self.settings.reply_retry_max_seconds
                delay = self._backoff(row.reply_attempts, cap)
                server_wait = retry_after if retry_after and math.isfinite(retry_after) else 0.0
                wait = min(max(delay, server_wait), cap)
                if retry_within is not None:
                    wait = min(wait, max(0.0, retry_within))
                values = {"not_before": now + wait}
                if sending_images:
                    values["state"] = JobState.GENERATED
                else:
                    values["reply_state"] = ReplyState.PENDING
            elif sending_images:
                values = {
                    "state": JobState.CANCELLED if gone else JobState.FAILED,
                    "finished_at": now,
                    "error_code": code,
                    "error_message": message,
                }
            else:
                values = {"reply_state": ReplyState.GAVE_UP}
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(**values, lease_owner=None, lease_expires_at=None, updated_at=now)
            )
            return row.state, values.get("state", row.state)

        moved = await self.db.run(_failed)
        if moved is None:
            return None
        self._transition(job_id, moved[0], moved[1], code)
        return moved[1]

    async def withhold(
        self, worker_id: str, job_id: int, code: str, reason: str, *, reply: bool
    ) -> bool:
        """replying → withheld: the output check keeps the images back for the operator;
        `code` says why (`minor_exposure` is never postable). With `reply`, a neutral error
        reply is queued."""
        now = self._now()

        def _withhold(conn: Connection) -> int:
            return conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.state == JobState.REPLYING,
                    jobs.c.lease_owner == worker_id,
                )
                .values(
                    state=JobState.WITHHELD,
                    error_code=code,
                    error_message=reason,
                    reply_state=ReplyState.PENDING if reply else ReplyState.NONE,
                    reply_attempts=0,
                    not_before=0.0,
                    lease_owner=None,
                    lease_expires_at=None,
                    finished_at=now,
                    updated_at=now,
                )
            ).rowcount

        moved = bool(await self.db.run(_withhold))
        if moved:
            self._transition(job_id, JobState.REPLYING, JobState.WITHHELD, reason)
        return moved
