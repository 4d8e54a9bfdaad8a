"""Operator decisions on results the output check held back (`withheld`) and on `failed` jobs.

Each function is one transaction that changes the job and writes its audit row with the
operator's name, so the audit log and the queue never disagree.

- approve: withheld → generated with `params.operator_decision` = "sensitive" | "blur"; the
  replier then posts it and `outbound.compose` honours the decision (CW + sensitive, or a
  blurred copy). Refused for anything withheld under the minors rule (a reason code that
  starts with `minor`): such images are never posted, whoever asks.
- discard: withheld → rejected with an error reply (reason from `DISCARD_REASONS`).
- keep_as_evidence: stays withheld (never purged, never posted), marked in params.
- dismiss (failed jobs): marks the job reviewed; `JobQueue.retry` queues it again.
"""

from __future__ import annotations

from typing import Any, Literal, cast

from sqlalchemy import Table, select, update
from sqlalchemy.engine import Connection

from fedibot.moderation.allowlist import write_audit
from fedibot.queue.jobs import JobQueue, images, jobs
from fedibot.storage.models import Job, JobState, ReplyState

jobs_t = cast(Table, Job.__table__)  # typed for update()

WITHHELD = JobState.WITHHELD
"""The job state of results the output check held back (added to JobState by its branch)."""

Decision = Literal["sensitive", "blur"]
DECISIONS: tuple[str, ...] = ("sensitive", "blur")

DISCARD_REASONS: dict[str, str] = {
    "rules": "Sorry, the image made for your request breaks this bot's rules, so it was not "
    "posted.",
    "not_safe": "Sorry, the image made for your request was not safe to post here, so it was "
    "not sent.",
    "real_person": "Sorry, the image made for your request looked like a real person, so it "
    "was not posted.",
    "quality": "Sorry, the image for your request did not come out right, so it was not "
    "posted. Please try again.",
}
"""Reason key → the sentence the requester is told. Only these can be sent."""

DISCARD_CODE = "discarded_by_operator"


class ReviewError(ValueError):
    """The decision cannot be taken (wrong state, minors rule, unknown reason)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def reason_codes(job: Any, image_rows: list[Any]) -> list[str]:
    """Every reason code recorded for a withholding: the job's error code, `safety.reason(s)`
    of the job and of each image, `params.withheld_reason`."""
    found: list[str] = []

    def add(value: Any) -> None:
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, list | tuple):
            for item in value:
                add(item)

    add(getattr(job, "error_code", None))
    for doc in (getattr(job, "safety", None), *(getattr(i, "safety", None) for i in image_rows)):
        if isinstance(doc, dict):
            add(doc.get("reason"))
            add(doc.get("reasons"))
            add(doc.get("reason_code"))
    params = getattr(job, "params", None)
    if isinstance(params, dict):
        add(params.get("withheld_reason"))
    return list(dict.fromkeys(found))


def is_minor_rule(codes: list[str]) -> bool:
    return any(code.lower().startswith("minor") for code in codes)


def _load(conn: Connection, job_id: int) -> tuple[Any, list[Any]]:
    row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    if row is None:
        raise ReviewError("not_found", f"no job {job_id}")
    rows = list(conn.execute(select(images).where(images.c.job_id == job_id)).all())
    return row, rows


def _approve(conn: Connection, job_id: int, decision: str, actor: str, now: float) -> None:
    if decision not in DECISIONS:
        raise ReviewError("bad_decision", f"decision must be one of {', '.join(DECISIONS)}")
    row, rows = _load(conn, job_id)
    if row.state != WITHHELD:
        raise ReviewError("not_withheld", f"job {job_id} is {row.state}, not withheld")
    codes = reason_codes(row, rows)
    if is_minor_rule(codes):
        raise ReviewError(
            "minor_rule", f"job {job_id} was withheld under the minors rule: it is never posted"
        )
    if (row.params or {}).get("evidence"):
        raise ReviewError("evidence", f"job {job_id} is kept as evidence")
    if not rows:
        raise ReviewError("no_images", f"job {job_id} has no images to post")
    params = {
        **(row.params or {}),
        "operator_decision": decision,
        "reviewed_by": actor,
        "reviewed_at": now,
    }
    changed = conn.execute(
        update(jobs_t)
        .where(jobs.c.id == job_id, jobs.c.state == WITHHELD)
        .values(
            state=JobState.GENERATED,
            params=params,
            not_before=0.0,
            reply_attempts=0,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    ).rowcount
    if changed != 1:
        raise ReviewError("raced", f"job {job_id} changed meanwhile")
    write_audit(
        conn,
        now,
        actor,
        "review.approve",
        f"job:{job_id}",
        {"decision": decision, "requester": row.requester, "reasons": codes},
    )


def _discard(conn: Connection, job_id: int, reason: str, actor: str, now: float) -> None:
    if reason not in DISCARD_REASONS:
        raise ReviewError("bad_reason", f"reason must be one of {', '.join(DISCARD_REASONS)}")
    row, rows = _load(conn, job_id)
    if row.state != WITHHELD:
        raise ReviewError("not_withheld", f"job {job_id} is {row.state}, not withheld")
    params = {**(row.params or {}), "discarded_by": actor, "discard_reason": reason}
    changed = conn.execute(
        update(jobs_t)
        .where(jobs.c.id == job_id, jobs.c.state == WITHHELD)
        .values(
            state=JobState.REJECTED,
            error_code=DISCARD_CODE,
            error_message=DISCARD_REASONS[reason],
            reply_state=ReplyState.PENDING,
            reply_attempts=0,
            not_before=0.0,
            params=params,
            lease_owner=None,
            lease_expires_at=None,
            finished_at=now,
            updated_at=now,
        )
    ).rowcount
    if changed != 1:
        raise ReviewError("raced", f"job {job_id} changed meanwhile")
    write_audit(
        conn,
        now,
        actor,
        "review.discard",
        f"job:{job_id}",
        {"reason": reason, "requester": row.requester, "reasons": reason_codes(row, rows)},
    )


def _evidence(conn: Connection, job_id: int, note: str, actor: str, now: float) -> None:
    row, rows = _load(conn, job_id)
    if row.state != WITHHELD:
        raise ReviewError("not_withheld", f"job {job_id} is {row.state}, not withheld")
    params = {**(row.params or {}), "evidence": {"by": actor, "at": now, "note": note}}
    conn.execute(update(jobs_t).where(jobs.c.id == job_id).values(params=params, updated_at=now))
    write_audit(
        conn,
        now,
        actor,
        "review.evidence",
        f"job:{job_id}",
        {"note": note, "requester": row.requester, "reasons": reason_codes(row, rows)},
    )


def _dismiss(conn: Connection, job_id: int, actor: str, now: float) -> None:
    row, _rows = _load(conn, job_id)
    if row.state != JobState.FAILED:
        raise ReviewError("not_failed", f"job {job_id} is {row.state}, not failed")
    params = {**(row.params or {}), "reviewed_by": actor, "reviewed_at": now}
    conn.execute(update(jobs_t).where(jobs.c.id == job_id).values(params=params, updated_at=now))
    write_audit(conn, now, actor, "review.dismiss", f"job:{job_id}", {"code": row.error_code})


async def approve(queue: JobQueue, job_id: int, decision: str, actor: str) -> None:
    """Post a withheld result after all, marked sensitive or blurred."""
    await queue.db.run(_approve, job_id, decision, actor, queue.settings.clock())
    queue._transition(job_id, WITHHELD, JobState.GENERATED, f"approved ({decision}) by {actor}")


async def discard(queue: JobQueue, job_id: int, reason: str, actor: str) -> None:
    """Drop a withheld result and tell the requester why (a fixed sentence)."""
    await queue.db.run(_discard, job_id, reason, actor, queue.settings.clock())
    queue._transition(job_id, WITHHELD, JobState.REJECTED, f"discarded ({reason}) by {actor}")


async def keep_as_evidence(queue: JobQueue, job_id: int, actor: str, note: str = "") -> None:
    """Keep a withheld result, unposted, out of the review queue and out of purges."""
    await queue.db.run(_evidence, job_id, note, actor, queue.settings.clock())


async def dismiss_failed(queue: JobQueue, job_id: int, actor: str) -> None:
    await queue.db.run(_dismiss, job_id, actor, queue.settings.clock())
