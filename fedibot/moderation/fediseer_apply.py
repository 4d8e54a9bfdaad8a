"""Apply the Fediseer sync to the database, safely.

fetch (all sources or nothing) → plan against the current `fediseer_entries` → apply in ONE
transaction that also writes its `sync_runs` row and an audit row. Any failure leaves the
last good list as it is and is recorded; a plan that would remove more than
`max_removal_fraction` of the allow list or of the deny list (or that would empty either
because the source returned none) is recorded as `held` and changes nothing until it is run
again with `force=True`; `fedibot doctor` shows a held last sync. Manual overrides live in
their own table: syncs never touch them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Text, bindparam, cast, delete, insert, select, text, update
from sqlalchemy.engine import Connection

from fedibot.moderation import allowlist
from fedibot.storage.database import Database
from fedibot.storage.models import SyncRun, table_of
from fediseer_sync.config import FediseerConfig
from fediseer_sync.models import TrustResult
from fediseer_sync.plan import plan_sync

if TYPE_CHECKING:  # the HTTP client (aiohttp) is loaded only by a sync, not by doctor
    from fediseer_sync.client import FediseerClient

log = logging.getLogger("fedibot.fediseer")

entries_t = allowlist.fediseer_t
runs_t = table_of(SyncRun)
Status = Literal["applied", "held", "failed", "dry_run", "unchanged"]
STORED_DIFF_LIMIT = 1000
"""Domains kept per list in a `sync_runs.diff` (the counts are always complete)."""
_PG_LOCK_KEY = 0x6665_6469_7365  # serialises concurrent syncs on PostgreSQL


@dataclass(frozen=True)
class SyncOutcome:
    status: Status
    summary: dict[str, Any] | None  # SyncPlan.summary() (None when the fetch failed)
    error: str | None = None
    run_id: int | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    provenance_updated: int = 0

    @property
    def ok(self) -> bool:
        return self.status not in ("failed", "held")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SyncRunRecord:
    id: int
    started_at: float
    finished_at: float | None
    status: str
    added: int
    removed: int
    sources: list[Any]
    diff: dict[str, Any]
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stored_diff(summary: dict[str, Any]) -> dict[str, Any]:
    diff = dict(summary)
    for key in ("added_allow", "removed_allow", "added_deny", "removed_deny"):
        items = summary.get(key) or []
        diff[f"{key}_count"] = len(items)
        if len(items) > STORED_DIFF_LIMIT:
            diff[key] = items[:STORED_DIFF_LIMIT]
            diff["truncated"] = True
    return diff


def _record_run(
    conn: Connection,
    started: float,
    finished: float,
    status: str,
    summary: dict[str, Any] | None,
    sources: list[str],
    error: str | None,
) -> int:
    added = removed = 0
    if summary is not None:
        added = len(summary["added_allow"]) + len(summary["added_deny"])
        removed = len(summary["removed_allow"]) + len(summary["removed_deny"])
    return int(
        conn.execute(
            insert(runs_t)
            .values(
                started_at=started,
                finished_at=finished,
                status=status,
                added=added,
                removed=removed,
                sources=sources,
                diff=_stored_diff(summary) if summary else {},
                error=error,
            )
            .returning(runs_t.c.id)
        ).scalar_one()
    )


def _apply(
    conn: Connection,
    result: TrustResult,
    max_removal_fraction: float,
    *,
    dry_run: bool,
    force: bool,
    started: float,
    now: float,
    actor: str,
) -> tuple[Status, dict[str, Any], int, int]:
    """Read current lists, plan, and apply (unless dry run / held), in the caller's transaction.
    Returns (status, plan summary, sync run id, provenance rows refreshed)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    # Provenance is read as its stored JSON text and compared with the new text: decoding
    # 10,000 documents only to compare them was a third of the apply time.
    raw = cast(entries_t.c.provenance, Text)
    current: dict[str, tuple[str, str]] = {
        row[0]: (row[1], row[2])
        for row in conn.execute(select(entries_t.c.domain, entries_t.c.list, raw))
    }
    # One normal form (the IDNA A-label) on both sides: a name stored by an older sync in
    # its Unicode spelling counts as its A-label (and is rewritten below).
    result = _normalized(result)
    allow_now = {_normal(d) for d, (lst, _) in current.items() if lst == "allow"}
    deny_now = {_normal(d) for d, (lst, _) in current.items() if lst == "deny"}
    plan = plan_sync(
        allow_now, deny_now, result, max_removal_fraction=max_removal_fraction, force=force
    )
    summary = plan.summary()
    sources = list(result.sources)
    if dry_run or plan.held:
        status: Status = "dry_run" if dry_run else "held"
        run_id = _record_run(conn, started, now, status, summary, sources, plan.held_reason)
        return status, summary, run_id, 0

    target = {d: ("allow", dec.to_dict()) for d, dec in result.allow.items()}
    target.update({d: ("deny", dec.to_dict()) for d, dec in result.deny.items()})  # deny wins

    gone = [d for d in current if d not in target]
    new = [
        {"domain": d, "list": lst, "provenance": prov, "since": now}
        for d, (lst, prov) in target.items()
        if d not in current
    ]
    moved = []
    refreshed = []
    for domain, (lst, prov) in target.items():
        if domain not in current:
            continue
        old_list, old_prov = current[domain]
        if old_list != lst:
            moved.append({"d": domain, "l": lst, "p": prov, "s": now})
        elif old_prov != json.dumps(prov):  # the JSON type's own serialiser
            refreshed.append({"d": domain, "p": prov})
    if gone:
        for i in range(0, len(gone), 500):
            conn.execute(delete(entries_t).where(entries_t.c.domain.in_(gone[i : i + 500])))
    if new:
        conn.execute(insert(entries_t), new)
    if moved:
        conn.execute(
            update(entries_t)
            .where(entries_t.c.domain == bindparam("d"))
            .values(list=bindparam("l"), provenance=bindparam("p"), since=bindparam("s")),
            moved,
        )
    if refreshed:
        conn.execute(
            update(entries_t)
            .where(entries_t.c.domain == bindparam("d"))
            .values(provenance=bindparam("p")),
            refreshed,
        )
    status = "applied" if plan.changed else "unchanged"
    run_id = _record_run(conn, started, now, status, summary, sources, None)
    if plan.changed:
        allowlist.write_audit(
            conn,
            now,
            actor,
            "fediseer.sync",
            "",
            {
                "run_id": run_id,
                "forced": plan.forced,
                "added_allow": len(plan.added_allow),
                "removed_allow": len(plan.removed_allow),
                "added_deny": len(plan.added_deny),
                "removed_deny": len(plan.removed_deny),
            },
        )
    return status, summary, run_id, len(refreshed)


def _normal(domain: str) -> str:
    try:
        return allowlist.normalize_domain(domain)
    except ValueError:
        return domain


def _normalized(result: TrustResult) -> TrustResult:
    """`result` with every domain in the normal form (entries whose name is no domain at all
    are dropped: no requester can ever come from them)."""

    def clean(decisions: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for domain, decision in decisions.items():
            try:
                normal = allowlist.normalize_domain(domain)
            except ValueError:
                log.warning("Fediseer sync: %r is not a domain name; left out", domain[:100])
                continue
            out[normal] = (
                decision
                if decision.domain == normal
                else dataclasses.replace(decision, domain=normal)
            )
        return out

    return dataclasses.replace(result, allow=clean(result.allow), deny=clean(result.deny))


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    text_ = str(exc) or type(exc).__name__
    return f"{code}: {text_}" if isinstance(code, str) else f"{type(exc).__name__}: {text_}"


async def sync_fediseer(
    db: Database,
    fediseer_cfg: FediseerConfig,
    *,
    dry_run: bool = False,
    force: bool = False,
    client: FediseerClient | None = None,
    actor: str = "cli",
    clock: Callable[[], float] = time.time,
) -> SyncOutcome:
    """One sync attempt, always recorded in `sync_runs`. Never raises for a Fediseer problem:
    the outcome says `failed` and the last good list stays."""
    from fediseer_sync.client import FediseerClient
    from fediseer_sync.sync import fetch_trust

    started = clock()
    try:
        if client is not None:
            result = await fetch_trust(client, fediseer_cfg)
        else:
            from fedibot.config.secrets import resolve_secrets

            async with FediseerClient.from_config(resolve_secrets(fediseer_cfg, "fediseer")) as own:
                result = await fetch_trust(own, fediseer_cfg)
    except Exception as exc:  # any unreadable source: keep the last good list
        error = _describe(exc)
        log.warning("Fediseer sync failed, keeping the last good list: %s", error)
        finished = clock()
        run_id = await db.run(
            _record_run, started, finished, "failed", None, list(fediseer_cfg.trusted), error
        )
        return SyncOutcome("failed", None, error, run_id, started, finished)

    finished = clock()
    status, summary, run_id, refreshed = await db.run(
        lambda conn: _apply(
            conn,
            result,
            fediseer_cfg.max_removal_fraction,
            dry_run=dry_run,
            force=force,
            started=started,
            now=finished,
            actor=actor,
        )
    )
    if status in ("applied", "unchanged"):
        allowlist.bump_version()
    if status == "held":
        log.warning("Fediseer sync held: %s", summary.get("held_reason"))
    held = summary.get("held_reason") if status == "held" else None
    return SyncOutcome(status, summary, held, run_id, started, finished, refreshed)


def last_sync_run(conn: Connection) -> SyncRunRecord | None:
    """The newest sync attempt (for `fedibot doctor`), or None."""
    row = conn.execute(select(runs_t).order_by(runs_t.c.id.desc()).limit(1)).first()
    return None if row is None else SyncRunRecord(**row._mapping)


async def sync_history(db: Database, limit: int = 20) -> list[SyncRunRecord]:
    """The newest `limit` sync attempts, newest first."""

    def body(conn: Connection) -> list[SyncRunRecord]:
        rows = conn.execute(select(runs_t).order_by(runs_t.c.id.desc()).limit(limit))
        return [SyncRunRecord(**r._mapping) for r in rows]

    return await db.run(body)
