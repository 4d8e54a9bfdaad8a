"""The campaign tables: `campaign_state` (paused, thread position, prompt index) and
`campaign_runs` (one row per scheduled run, unique by (campaign, scheduled time)).

Every public method is one transaction (`Database.run`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from fedibot.storage.database import Database
from fedibot.storage.models import CampaignRun, CampaignState, Job, JobState, table_of

runs = table_of(CampaignRun)
states = table_of(CampaignState)
jobs = table_of(Job)

MANUAL = "manual"
"""Note prefix of runs started by `fedibot campaigns run`: they are not scheduled times."""


class RunStatus:
    ENQUEUED = "enqueued"
    SKIPPED = "skipped"
    POSTED = "posted"
    FAILED = "failed"


@dataclass(frozen=True)
class RunRecord:
    """A run as `history` shows it, with its job's state when it still exists. The note of a
    posted run is `<status id> <url>`; of a skipped or failed one, the reason."""

    campaign: str
    scheduled_at: float
    status: str
    job_id: int | None
    note: str
    created_at: float
    job_state: str | None = None
    attempts: int | None = None

    @property
    def manual(self) -> bool:
        return self.note.startswith(MANUAL)

    def to_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "scheduled_at": self.scheduled_at,
            "status": self.status,
            "job_id": self.job_id,
            "job_state": self.job_state,
            "attempts": self.attempts,
            "manual": self.manual,
            "note": self.note,
        }


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def _note(manual: bool, text: str) -> str:
    return f"{MANUAL}: {text}" if manual else text


class CampaignStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ------------------------------------------------------------------ state
    @staticmethod
    def _ensure_state(conn: Connection, name: str, now: float) -> Any:
        conn.execute(
            _insert(conn, states)
            .values(name=name, paused=False, prompt_index=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["name"])
        )
        return conn.execute(select(states).where(states.c.name == name)).one()

    async def state(self, name: str) -> Any:
        """The campaign's state row, None before its first run or pause."""
        return await self.db.run(
            lambda conn: conn.execute(select(states).where(states.c.name == name)).first()
        )

    async def states(self) -> dict[str, Any]:
        rows = await self.db.run(lambda conn: conn.execute(select(states)).all())
        return {row.name: row for row in rows}

    async def set_paused(self, name: str, paused: bool, now: float) -> bool:
        """Pause or resume; returns whether it changed anything."""

        def _set(conn: Connection) -> bool:
            row = self._ensure_state(conn, name, now)
            if bool(row.paused) == paused:
                return False
            conn.execute(
                update(states).where(states.c.name == name).values(paused=paused, updated_at=now)
            )
            return True

        return await self.db.run(_set)

    # ------------------------------------------------------------------ runs
    async def frontier(self, name: str) -> float | None:
        """The newest scheduled (not manual) run time recorded for the campaign."""
        query = select(func.max(runs.c.scheduled_at)).where(
            runs.c.campaign == name, runs.c.note.not_like(f"{MANUAL}%")
        )
        return await self.db.run(lambda conn: conn.execute(query).scalar())

    async def run(self, name: str, scheduled_at: float) -> Any:
        query = select(runs).where(runs.c.campaign == name, runs.c.scheduled_at == scheduled_at)
        return await self.db.run(lambda conn: conn.execute(query).first())

    async def record_skipped(self, name: str, times: list[float], note: str, now: float) -> int:
        """Runs that will not be posted (missed beyond grace, paused); returns how many are new."""
        if not times:
            return 0

        def _skip(conn: Connection) -> int:
            self._ensure_state(conn, name, now)
            added = 0
            for at in times:
                result = conn.execute(
                    _insert(conn, runs)
                    .values(
                        campaign=name,
                        scheduled_at=at,
                        status=RunStatus.SKIPPED,
                        job_id=None,
                        note=note,
                        created_at=now,
                    )
                    .on_conflict_do_nothing(index_elements=["campaign", "scheduled_at"])
                )
                added += result.rowcount or 0
            return added

        return await self.db.run(_skip)

    async def record_enqueued(
        self,
        name: str,
        scheduled_at: float,
        job_id: int,
        now: float,
        *,
        manual: bool = False,
        advance_index: bool = False,
    ) -> bool:
        """The run's job is in the queue; advances the sequential prompt index once per run.
        False when the run was recorded already (a restart or a second scheduler)."""

        def _record(conn: Connection) -> bool:
            self._ensure_state(conn, name, now)
            result = conn.execute(
                _insert(conn, runs)
                .values(
                    campaign=name,
                    scheduled_at=scheduled_at,
                    status=RunStatus.ENQUEUED,
                    job_id=job_id,
                    note=_note(manual, "queued") if manual else "",
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["campaign", "scheduled_at"])
            )
            created = bool(result.rowcount)
            if created and advance_index:
                conn.execute(
                    update(states)
                    .where(states.c.name == name)
                    .values(prompt_index=states.c.prompt_index + 1, updated_at=now)
                )
            return created

        return await self.db.run(_record)

    async def replace_job(self, name: str, scheduled_at: float, job_id: int, note: str) -> None:
        """A run generated again (its images were all withheld) points at its new job."""
        await self.db.run(
            lambda conn: conn.execute(
                update(runs)
                .where(runs.c.campaign == name, runs.c.scheduled_at == scheduled_at)
                .values(job_id=job_id, note=note)
            )
        )

    async def mark_posted(
        self,
        name: str,
        scheduled_at: float,
        job_id: int,
        remote_id: str,
        url: str | None,
        now: float,
        *,
        manual: bool = False,
    ) -> None:
        """The run is on the server: remember its status id (the next thread reply's parent)."""

        def _posted(conn: Connection) -> None:
            self._ensure_state(conn, name, now)
            self._upsert_run(
                conn,
                name,
                scheduled_at,
                RunStatus.POSTED,
                job_id,
                _note(manual, f"{remote_id} {url}" if url else remote_id),
                now,
            )
            conn.execute(
                update(states)
                .where(states.c.name == name)
                .values(last_status_id=remote_id, updated_at=now)
            )

        await self.db.run(_posted)

    async def mark_failed(
        self,
        name: str,
        scheduled_at: float,
        job_id: int | None,
        note: str,
        now: float,
        *,
        manual: bool = False,
    ) -> None:
        def _failed(conn: Connection) -> None:
            self._ensure_state(conn, name, now)
            self._upsert_run(
                conn, name, scheduled_at, RunStatus.FAILED, job_id, _note(manual, note), now
            )

        await self.db.run(_failed)

    @staticmethod
    def _upsert_run(
        conn: Connection,
        name: str,
        at: float,
        status: str,
        job_id: int | None,
        note: str,
        now: float,
    ) -> None:
        conn.execute(
            _insert(conn, runs)
            .values(
                campaign=name,
                scheduled_at=at,
                status=status,
                job_id=job_id,
                note=note,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["campaign", "scheduled_at"])
        )
        conn.execute(
            update(runs)
            .where(runs.c.campaign == name, runs.c.scheduled_at == at)
            .values(status=status, job_id=job_id, note=note)
        )

    async def earlier_pending(self, name: str, scheduled_at: float) -> Any:
        """The oldest earlier run of the campaign whose job has not finished (thread order)."""
        query = (
            select(runs.c.scheduled_at, jobs.c.id, jobs.c.state, jobs.c.lease_owner)
            .join(jobs, jobs.c.id == runs.c.job_id)
            .where(
                runs.c.campaign == name,
                runs.c.scheduled_at < scheduled_at,
                runs.c.status == RunStatus.ENQUEUED,
                jobs.c.state.not_in(JobState.TERMINAL),
            )
            .order_by(runs.c.scheduled_at)
            .limit(1)
        )
        return await self.db.run(lambda conn: conn.execute(query).first())

    async def history(self, name: str | None = None, limit: int = 50) -> list[RunRecord]:
        """Runs newest first, with their job's state."""
        query = (
            select(runs, jobs.c.state.label("job_state"), jobs.c.attempts.label("attempts"))
            .select_from(runs.outerjoin(jobs, jobs.c.id == runs.c.job_id))
            .order_by(runs.c.scheduled_at.desc(), runs.c.id.desc())
            .limit(limit)
        )
        if name is not None:
            query = query.where(runs.c.campaign == name)
        rows = await self.db.run(lambda conn: conn.execute(query).all())
        return [
            RunRecord(
                campaign=r.campaign,
                scheduled_at=float(r.scheduled_at),
                status=r.status,
                job_id=r.job_id,
                note=r.note,
                created_at=float(r.created_at),
                job_state=r.job_state,
                attempts=r.attempts,
            )
            for r in rows
        ]

    async def last_runs(self) -> dict[str, RunRecord]:
        """The newest run of every campaign."""
        newest = (
            select(runs.c.campaign, func.max(runs.c.scheduled_at).label("at"))
            .group_by(runs.c.campaign)
            .subquery()
        )
        query = select(runs).join(
            newest, and_(runs.c.campaign == newest.c.campaign, runs.c.scheduled_at == newest.c.at)
        )
        rows = await self.db.run(lambda conn: conn.execute(query).all())
        return {
            r.campaign: RunRecord(
                r.campaign, float(r.scheduled_at), r.status, r.job_id, r.note, float(r.created_at)
            )
            for r in rows
        }

    async def reconcile(self, now: float) -> int:
        """Runs still `enqueued` whose job ended without the poster seeing it (cancelled by an
        admin, failed while campaigns were not running) get the job's outcome."""

        def _reconcile(conn: Connection) -> int:
            stale = conn.execute(
                select(
                    runs.c.id,
                    runs.c.note,
                    jobs.c.state,
                    jobs.c.error_code,
                    jobs.c.error_message,
                    jobs.c.reply_url,
                    jobs.c.reply_remote_id,
                )
                .join(jobs, jobs.c.id == runs.c.job_id)
                .where(
                    runs.c.status == RunStatus.ENQUEUED,
                    jobs.c.state.in_((JobState.FAILED, JobState.CANCELLED, JobState.DONE)),
                )
            ).all()
            for row in stale:
                manual = row.note.startswith(MANUAL)
                if row.state == JobState.DONE and row.reply_remote_id:
                    status = RunStatus.POSTED
                    note = f"{row.reply_remote_id} {row.reply_url or ''}".strip()
                else:
                    status = RunStatus.FAILED
                    note = f"{row.error_code or row.state}: {row.error_message or ''}".strip()
                conn.execute(
                    update(runs)
                    .where(runs.c.id == row.id)
                    .values(status=status, note=_note(manual, note))
                )
            return len(stale)

        return await self.db.run(_reconcile)
