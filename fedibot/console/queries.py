"""Read-side queries of the console, each one transaction (`await db.run(fn, ...)`).

Every page must render in well under 100 ms with 100,000 jobs (benchmarks/console_bench.py):
counts use the partial indexes (`state = '<literal>'` so SQLite can match them), time windows
use `ix_jobs_finished`, lists walk the primary key newest first with keyset pagination.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, func, literal_column, or_, select
from sqlalchemy.engine import Connection

from fedibot.moderation.allowlist import (
    AuditRecord,
    DomainVerdict,
    ListEntry,
    Override,
    audit_t,
    bans_t,
    decide_domain,
    fediseer_t,
    overrides_t,
)
from fedibot.queue.jobs import images, jobs
from fedibot.queue.jobs import workers as workers_t
from fedibot.queue.review import WITHHELD
from fedibot.storage.models import JobState, SyncRun

runs_t = SyncRun.__table__
HOUR = 3600.0
DAY = 86400.0

# Active states: each has a partial index (or the lease index) so counting is cheap.
DEPTH_STATES = (
    JobState.QUEUED,
    JobState.GENERATING,
    JobState.GENERATED,
    JobState.REPLYING,
    WITHHELD,
    JobState.FAILED,
)
GALLERY_STATES = (*JobState.ALL, WITHHELD)
# Everything but the big JSON documents (the Mention): enough for cards and filters.
CARD_COLUMNS = [c for c in jobs.c if c.name not in ("request",)]


def _is(state: str) -> Any:
    return jobs.c.state == literal_column(f"'{state}'")


# -- overview ---------------------------------------------------------------------------------


@dataclass
class Overview:
    depth: dict[str, int]
    finished_24h: dict[str, int]
    images_per_hour: list[int]  # 24 buckets, oldest first
    reply_p50_per_hour: list[float | None]
    reply_p95_per_hour: list[float | None]
    reply_p50: float | None
    reply_p95: float | None
    hour_starts: list[float]
    held: list[Any]
    last_sync: Any | None
    last_applied_sync: Any | None
    workers: list[dict[str, Any]]


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def overview(conn: Connection, now: float) -> Overview:
    depth: dict[str, int] = {}
    for state in DEPTH_STATES:
        where = _is(state)
        if state == JobState.REPLYING:  # always leased: walk the lease index
            where = and_(jobs.c.lease_expires_at.is_not(None), where)
        depth[state] = int(conn.execute(select(func.count()).where(where)).scalar_one())

    since = now - DAY
    recent = and_(jobs.c.finished_at.is_not(None), jobs.c.finished_at > since)
    finished = {
        state: int(n)
        for state, n in conn.execute(
            select(jobs.c.state, func.count()).where(recent).group_by(jobs.c.state)
        ).all()
    }
    start = math.floor(now / HOUR) * HOUR - 23 * HOUR
    hour_starts = [start + i * HOUR for i in range(24)]
    per_hour = [0] * 24
    waits: list[list[float]] = [[] for _ in range(24)]
    # Answered from `ix_console_done_charts` alone (covering); fetched in one go.
    rows = conn.execute(
        select(jobs.c.finished_at, jobs.c.created_at, jobs.c.n, jobs.c.kind).where(
            recent, jobs.c.state == literal_column("'done'")
        )
    ).all()
    for finished_at, created_at, n, kind in rows:
        bucket = int((finished_at - start) // HOUR)
        if 0 <= bucket < 24:
            if kind == "mention":
                per_hour[bucket] += n or 0
                wait = finished_at - created_at
                waits[bucket].append(wait if wait > 0.0 else 0.0)
            elif kind == "campaign":
                per_hour[bucket] += n or 0
    all_waits = [w for bucket in waits for w in bucket]
    held = list(
        conn.execute(
            select(*CARD_COLUMNS).where(_is(WITHHELD)).order_by(jobs.c.id.desc()).limit(5)
        ).all()
    )
    last_sync = conn.execute(select(runs_t).order_by(runs_t.c.id.desc()).limit(1)).first()
    last_applied = conn.execute(
        select(runs_t)
        .where(runs_t.c.status.in_(("applied", "unchanged")))
        .order_by(runs_t.c.id.desc())
        .limit(1)
    ).first()
    leases = {
        owner: {"jobs": int(count), "lease_until": until, "states": states}
        for owner, count, until, states in conn.execute(
            select(
                jobs.c.lease_owner,
                func.count(),
                func.max(jobs.c.lease_expires_at),
                func.group_concat(func.distinct(jobs.c.state))
                if conn.dialect.name == "sqlite"
                else func.string_agg(func.distinct(jobs.c.state), literal_column("','")),
            )
            .where(jobs.c.lease_expires_at.is_not(None))
            .group_by(jobs.c.lease_owner)
        ).all()
    }
    return Overview(
        depth=depth,
        finished_24h=finished,
        images_per_hour=per_hour,
        reply_p50_per_hour=[percentile(w, 50) for w in waits],
        reply_p95_per_hour=[percentile(w, 95) for w in waits],
        reply_p50=percentile(all_waits, 50),
        reply_p95=percentile(all_waits, 95),
        hour_starts=hour_starts,
        held=held,
        last_sync=last_sync,
        last_applied_sync=last_applied,
        workers=_workers(conn, leases, since),
    )


def _workers(
    conn: Connection, leases: dict[str, dict[str, Any]], since: float
) -> list[dict[str, Any]]:
    """Generator workers seen since `since` (the `workers` table: every claim and heartbeat),
    newest first, with the jobs they hold now; then other lease holders (the replier)."""
    out: list[dict[str, Any]] = []
    seen = conn.execute(
        select(workers_t)
        .where(workers_t.c.last_seen_at >= since)
        .order_by(workers_t.c.last_seen_at.desc())
    ).all()
    for row in seen:
        held = leases.pop(row.id, {"jobs": 0, "lease_until": None, "states": ""})
        out.append(
            {"name": row.id, "kind": row.kind, "host": row.host, "last_seen": row.last_seen_at}
            | held
        )
    for owner in sorted(leases, key=str):
        out.append({"name": owner, "kind": "", "host": "", "last_seen": None} | leases[owner])
    return out


# -- gallery ----------------------------------------------------------------------------------


@dataclass
class GalleryFilter:
    state: str = ""
    account: str = ""
    requester: str = ""
    instance: str = ""
    flagged: bool = False
    before: int | None = None

    def query_args(self, **changes: Any) -> dict[str, str]:
        values = {
            "state": self.state,
            "account": self.account,
            "requester": self.requester,
            "instance": self.instance,
            "flagged": "1" if self.flagged else "",
            "before": str(self.before) if self.before else "",
        }
        values.update({k: str(v) if v is not None else "" for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}


@dataclass
class Card:
    job: Any
    images: list[Any] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return any(i.flagged for i in self.images)


def gallery(conn: Connection, f: GalleryFilter, limit: int) -> tuple[list[Card], int | None]:
    """Newest first; returns the cards and the `before` id of the next page (or None)."""
    query = select(*CARD_COLUMNS).order_by(jobs.c.id.desc()).limit(limit + 1)
    has_images = exists().where(images.c.job_id == jobs.c.id)
    if f.state:
        query = query.where(_is(f.state) if f.state in GALLERY_STATES else jobs.c.state == f.state)
    else:
        query = query.where(has_images)
    if f.account:
        query = query.where(jobs.c.bot_account == f.account)
    if f.requester:
        query = query.where(jobs.c.requester == f.requester.strip().lstrip("@").lower())
    if f.instance:
        query = query.where(jobs.c.requester_domain == f.instance.strip().lower())
    if f.flagged:
        query = query.where(
            exists().where(images.c.job_id == jobs.c.id, images.c.flagged.is_(True))
        )
    if f.before:
        query = query.where(jobs.c.id < f.before)
    rows = list(conn.execute(query).all())
    more = len(rows) > limit
    rows = rows[:limit]
    cards = [Card(r) for r in rows]
    by_id = {c.job.id: c for c in cards}
    if by_id:
        for image in conn.execute(
            select(images).where(images.c.job_id.in_(list(by_id))).order_by(images.c.index)
        ):
            by_id[image.job_id].images.append(image)
    return cards, (rows[-1].id if more and rows else None)


# -- one job ----------------------------------------------------------------------------------


@dataclass
class JobDetail:
    job: Any
    images: list[Any]
    audit: list[AuditRecord]


def job_detail(conn: Connection, job_id: int) -> JobDetail | None:
    job = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
    if job is None:
        return None
    rows = list(
        conn.execute(select(images).where(images.c.job_id == job_id).order_by(images.c.index))
    )
    audit = [
        AuditRecord(**r._mapping)
        for r in conn.execute(
            select(audit_t).where(audit_t.c.target == f"job:{job_id}").order_by(audit_t.c.id)
        )
    ]
    return JobDetail(job, rows, audit)


def job_visibility(conn: Connection, job_id: int) -> str | None:
    return conn.execute(select(jobs.c.visibility).where(jobs.c.id == job_id)).scalar()


# -- review -----------------------------------------------------------------------------------


def review_items(conn: Connection, tab: str, limit: int = 40) -> list[Card]:
    """`withheld` (to decide), `evidence` (kept) or `failed` (not yet dismissed), newest
    first, at most `limit` (the operator decides one at a time; decided ones leave)."""
    state = JobState.FAILED if tab == "failed" else WITHHELD
    rows = conn.execute(
        select(*CARD_COLUMNS).where(_is(state)).order_by(jobs.c.id.desc()).limit(limit * 3)
    ).all()
    picked = []
    for row in rows:
        params = row.params or {}
        if tab == "withheld" and params.get("evidence"):
            continue
        if tab == "evidence" and not params.get("evidence"):
            continue
        if tab == "failed" and params.get("reviewed_by"):
            continue
        picked.append(Card(row))
        if len(picked) == limit:
            break
    by_id = {c.job.id: c for c in picked}
    if by_id:
        for image in conn.execute(
            select(images).where(images.c.job_id.in_(list(by_id))).order_by(images.c.index)
        ):
            by_id[image.job_id].images.append(image)
    return picked


# -- allow-list -------------------------------------------------------------------------------


def overrides(conn: Connection) -> list[Override]:
    rows = conn.execute(select(overrides_t).order_by(overrides_t.c.domain))
    return [Override(**r._mapping) for r in rows]


def fediseer_entries(
    conn: Connection, q: str, which: str, offset: int, limit: int
) -> tuple[list[ListEntry], int]:
    query = select(fediseer_t)
    count = select(func.count()).select_from(fediseer_t)
    conditions = []
    if q:
        conditions.append(fediseer_t.c.domain.contains(q.strip().lower(), autoescape=True))
    if which in ("allow", "deny"):
        conditions.append(fediseer_t.c.list == which)
    if conditions:
        query = query.where(*conditions)
        count = count.where(*conditions)
    total = int(conn.execute(count).scalar_one())
    rows = conn.execute(query.order_by(fediseer_t.c.domain).offset(offset).limit(limit))
    return [ListEntry(r.domain, r.list, "fediseer", r.since, "", r.provenance) for r in rows], total


@dataclass
class AllowlistPage:
    overrides: list[Override]
    override_by: dict[str, Override]
    verdicts: dict[str, DomainVerdict]  # each override's decision
    entries: list[ListEntry]  # one page of Fediseer entries
    total: int
    runs: list[Any]


def allowlist_page(
    conn: Connection,
    q: str,
    which: str,
    offset: int,
    limit: int,
    mode: str,
    own_domains: Iterable[str],
) -> AllowlistPage:
    """Everything the allow-list page reads, in one transaction: the overrides with their
    decisions (one query for the Fediseer lists of all of them, not two reads per domain),
    one page of Fediseer entries and the last sync runs."""
    found = overrides(conn)
    by_domain = {o.domain: o for o in found}
    lists: dict[str, str] = {}
    if by_domain:
        lists = {
            domain: list_
            for domain, list_ in conn.execute(
                select(fediseer_t.c.domain, fediseer_t.c.list).where(
                    fediseer_t.c.domain.in_(list(by_domain))
                )
            ).all()
        }
    verdicts = {
        o.domain: decide_domain(o.domain, mode, own_domains, o.action, lists.get(o.domain))
        for o in found
    }
    entries, total = fediseer_entries(conn, q, which, offset, limit)
    return AllowlistPage(found, by_domain, verdicts, entries, total, sync_runs(conn, 10))


def sync_runs(conn: Connection, limit: int = 10) -> list[Any]:
    return list(conn.execute(select(runs_t).order_by(runs_t.c.id.desc()).limit(limit)).all())


# -- users ------------------------------------------------------------------------------------


def bans(conn: Connection) -> list[Any]:
    return list(conn.execute(select(bans_t).order_by(bans_t.c.created_at.desc())).all())


def opted_out(conn: Connection, limit: int = 200) -> list[Any]:
    opted = jobs.c.error_code == literal_column("'opted_out'")
    return list(
        conn.execute(
            select(jobs.c.requester, func.count().label("refused"), func.max(jobs.c.created_at))
            .where(opted)
            .group_by(jobs.c.requester)
            .order_by(func.max(jobs.c.created_at).desc())
            .limit(limit)
        ).all()
    )


# -- audit ------------------------------------------------------------------------------------


@dataclass
class AuditFilter:
    actor: str = ""
    action: str = ""
    target: str = ""
    since: float | None = None
    before: int | None = None

    def query_args(self, **changes: Any) -> dict[str, str]:
        values = {
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "before": str(self.before) if self.before else "",
        }
        values.update({k: str(v) if v is not None else "" for k, v in changes.items()})
        return {k: v for k, v in values.items() if v}


def audit_page(
    conn: Connection, f: AuditFilter, limit: int = 100
) -> tuple[list[AuditRecord], int | None]:
    query = select(audit_t).order_by(audit_t.c.id.desc()).limit(limit + 1)
    if f.actor:
        query = query.where(audit_t.c.actor.contains(f.actor, autoescape=True))
    if f.action:
        query = query.where(audit_t.c.action.startswith(f.action, autoescape=True))
    if f.target:
        query = query.where(
            or_(audit_t.c.target == f.target, audit_t.c.target.contains(f.target, autoescape=True))
        )
    if f.since is not None:
        query = query.where(audit_t.c.at >= f.since)
    if f.before:
        query = query.where(audit_t.c.id < f.before)
    rows = [AuditRecord(**r._mapping) for r in conn.execute(query)]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
