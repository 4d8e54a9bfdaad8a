"""Instance lists and bans in the database: manual overrides, Fediseer entries, banned users,
and the audit log of every change.

Every write is one transaction that also writes its audit row, so `max(audit_log.id)` is a
cheap change stamp other processes can poll (see `fedibot.moderation.policy`). Writes in this
process also bump `version()`, so a Policy in the same process reloads at once.

Lookups by domain or acct go through the primary key (`show` is two PK reads).
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from fedibot.storage.database import Database
from fedibot.storage.models import (
    AuditEntry,
    BannedUser,
    DomainOverride,
    FediseerEntry,
    table_of,
)
from fediseer_sync.domains import display_domain, normalize_domain, with_unicode

overrides_t = table_of(DomainOverride)
fediseer_t = table_of(FediseerEntry)
bans_t = table_of(BannedUser)
audit_t = table_of(AuditEntry)

Mode = Literal["open", "blocklist", "allowlist"]
Action = Literal["allow", "deny"]
ACTIONS = ("allow", "deny")
_ACCT_RE = re.compile(r"^[a-z0-9_][a-z0-9_.\-]{0,63}$")

_version = 0


def version() -> int:
    """Bumped after every committed list/ban change made by this process."""
    return _version


def bump_version() -> None:
    global _version
    _version += 1


# -- validation -------------------------------------------------------------------------------

# Instance names have one normal form everywhere (fediseer_sync.domains): the IDNA 2008 A-label.
__all__ = ["display_domain", "normalize_domain", "with_unicode"]


def _own(domain: str) -> str:
    try:
        return normalize_domain(domain)
    except ValueError:
        return domain.strip().lower()


def normalize_acct(value: str) -> str:
    """`user@domain` in lower case (a leading @ is dropped); ValueError otherwise."""
    text = value.strip().lstrip("@").lower()
    user, sep, domain = text.rpartition("@")
    if not sep or not _ACCT_RE.match(user):
        raise ValueError(f"{value!r} is not an account address like user@example.social")
    try:
        return f"{user}@{normalize_domain(domain)}"
    except ValueError:
        raise ValueError(f"{value!r} is not an account address like user@example.social") from None


# -- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    domain: str
    action: str
    note: str
    created_at: float
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ListEntry:
    """One row of `allowlist list`: a manual override or a Fediseer entry."""

    domain: str
    action: str
    source: Literal["manual", "fediseer"]
    since: float
    note: str = ""
    provenance: dict[str, Any] | None = None

    def explain(self) -> str:
        if self.source == "manual":
            return f"manual {self.action}" + (f": {self.note}" if self.note else "")
        return _explain_provenance(self.provenance)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "domain_unicode": display_domain(self.domain),
            "why": self.explain(),
        }


@dataclass(frozen=True)
class Ban:
    acct: str
    note: str
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DomainVerdict:
    """Whether a domain may use the bot under `mode`, and which rule decided."""

    allowed: bool
    source: Literal["own", "override", "fediseer", "mode"]
    reason: str


@dataclass(frozen=True)
class DomainStatus:
    """`allowlist show DOMAIN`."""

    domain: str
    mode: str
    allowed: bool
    source: str
    reason: str
    since: float | None
    override: Override | None = None
    fediseer: ListEntry | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "domain_unicode": display_domain(self.domain),
            "mode": self.mode,
            "allowed": self.allowed,
            "decided_by": self.source,
            "reason": self.reason,
            "since": self.since,
            "override": self.override.to_dict() if self.override else None,
            "fediseer": self.fediseer.to_dict() if self.fediseer else None,
        }


def decide_domain(
    domain: str,
    mode: str,
    own_domains: Iterable[str],
    override: str | None,
    fediseer_list: str | None,
) -> DomainVerdict:
    """The instance rule, shared by the policy (hot path) and `allowlist show`.

    Own instances are always allowed; a manual override beats everything else (an admin's
    deny holds in every mode); `open` ignores the Fediseer lists; in `blocklist` mode only
    denied domains are refused, in `allowlist` mode only allowed domains pass."""
    if domain in own_domains:
        return DomainVerdict(True, "own", "the bot's own instance")
    if override is not None:
        return DomainVerdict(override == "allow", "override", f"manual {override}")
    if mode == "open":
        return DomainVerdict(True, "mode", "mode is open: every instance not denied by hand")
    if fediseer_list == "deny":
        return DomainVerdict(False, "fediseer", "on the Fediseer deny list")
    if mode == "blocklist":
        return DomainVerdict(True, "mode", "mode is blocklist and the domain is not denied")
    if fediseer_list == "allow":
        return DomainVerdict(True, "fediseer", "on the Fediseer allow list")
    return DomainVerdict(False, "mode", "mode is allowlist and the domain is not allowed")


def _explain_provenance(provenance: dict[str, Any] | None) -> str:
    if not provenance:
        return "from Fediseer (no provenance recorded)"
    from fediseer_sync.models import TrustDecision

    try:
        return TrustDecision.from_dict(provenance).explain()
    except (KeyError, TypeError, ValueError):
        return "from Fediseer (unreadable provenance)"


# -- CSV --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvRow:
    line: int
    domain: str
    action: Literal["allow", "deny", "unset"]
    note: str


class CsvImportError(ValueError):
    """The file was refused as a whole; `problems` are (line number, message)."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        text = "; ".join(f"line {line}: {msg}" for line, msg in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"nothing imported: {text}{more}")


@dataclass
class ImportResult:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_csv(text: str) -> list[CsvRow]:
    """Validate every row (columns domain,action,note; a header row is optional; blank lines
    and lines starting with # are skipped). Raises CsvImportError naming every bad line."""
    rows: list[CsvRow] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    reader = csv.reader(io.StringIO(text))
    for record in reader:
        line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue
        if record[0].strip().startswith("#"):
            continue
        if not rows and not problems and record[0].strip().lower() == "domain":
            continue  # header
        if len(record) < 2 or len(record) > 3:
            problems.append((line, f"expected domain,action[,note], got {len(record)} columns"))
            continue
        raw_domain, raw_action = record[0], record[1].strip().lower()
        note = record[2].strip() if len(record) == 3 else ""
        try:
            domain = normalize_domain(raw_domain)
        except ValueError as exc:
            problems.append((line, str(exc)))
            continue
        if raw_action not in ("allow", "deny", "unset"):
            problems.append((line, f"action {record[1]!r} must be allow, deny or unset"))
            continue
        if domain in seen:
            problems.append((line, f"{domain} is already on line {seen[domain]}"))
            continue
        seen[domain] = line
        rows.append(CsvRow(line, domain, raw_action, note))  # type: ignore[arg-type]
    if problems:
        raise CsvImportError(problems)
    return rows


def overrides_to_csv(overrides: Iterable[Override]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["domain", "action", "note"])
    for o in overrides:
        writer.writerow([o.domain, o.action, o.note])
    return out.getvalue()


# -- synchronous transaction bodies (take a Connection) ----------------------------------------


def write_audit(
    conn: Connection, at: float, actor: str, action: str, target: str, detail: dict[str, Any]
) -> None:
    conn.execute(
        insert(audit_t).values(at=at, actor=actor, action=action, target=target, detail=detail)
    )


def _get_override(conn: Connection, domain: str) -> Override | None:
    row = conn.execute(select(overrides_t).where(overrides_t.c.domain == domain)).first()
    return None if row is None else Override(**row._mapping)


def _get_fediseer(conn: Connection, domain: str) -> ListEntry | None:
    row = conn.execute(select(fediseer_t).where(fediseer_t.c.domain == domain)).first()
    if row is None:
        return None
    return ListEntry(row.domain, row.list, "fediseer", row.since, "", row.provenance or {})


def _set_override(
    conn: Connection,
    domain: str,
    action: str,
    note: str,
    now: float,
    actor: str,
    detail: dict[str, Any] | None = None,
) -> str:
    """Upsert; returns "added", "changed" or "unchanged". `since` moves only with the action."""
    current = _get_override(conn, domain)
    if current is not None and current.action == action and current.note == note:
        return "unchanged"
    if current is None:
        conn.execute(
            insert(overrides_t).values(
                domain=domain, action=action, note=note, created_at=now, created_by=actor
            )
        )
        outcome = "added"
    else:
        values: dict[str, Any] = {"note": note, "created_by": actor}
        if current.action != action:
            values.update(action=action, created_at=now)
        conn.execute(update(overrides_t).where(overrides_t.c.domain == domain).values(**values))
        outcome = "changed"
    info = {"note": note, "previous": current.action if current else None, **(detail or {})}
    write_audit(conn, now, actor, f"allowlist.{action}", domain, info)
    return outcome


def _unset_override(
    conn: Connection, domain: str, now: float, actor: str, detail: dict[str, Any] | None = None
) -> bool:
    current = _get_override(conn, domain)
    if current is None:
        return False
    conn.execute(delete(overrides_t).where(overrides_t.c.domain == domain))
    info = {"previous": current.action, "note": current.note, **(detail or {})}
    write_audit(conn, now, actor, "allowlist.unset", domain, info)
    return True


# -- the async API ----------------------------------------------------------------------------


class Allowlist:
    """Admin operations on overrides, Fediseer entries, bans and the audit log."""

    def __init__(
        self,
        db: Database,
        *,
        mode: str = "blocklist",
        own_domains: Iterable[str] = (),
        actor: str = "cli",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.mode = mode
        self.own_domains = frozenset(_own(d) for d in own_domains)
        self.actor = actor
        self.clock = clock

    async def _write(self, fn: Callable[..., Any], *args: Any) -> Any:
        result = await self.db.run(fn, *args)
        bump_version()
        return result

    # overrides
    async def set_override(self, domain: str, action: str, note: str = "") -> str:
        """Allow or deny `domain` by hand; returns "added", "changed" or "unchanged"."""
        if action not in ACTIONS:
            raise ValueError(f"action must be allow or deny, not {action!r}")
        domain = normalize_domain(domain)
        return await self._write(_set_override, domain, action, note, self.clock(), self.actor)

    async def allow(self, domain: str, note: str = "") -> str:
        return await self.set_override(domain, "allow", note)

    async def deny(self, domain: str, note: str = "") -> str:
        return await self.set_override(domain, "deny", note)

    async def unset(self, domain: str) -> bool:
        """Remove a manual override; False when there was none."""
        domain = normalize_domain(domain)
        return await self._write(_unset_override, domain, self.clock(), self.actor)

    async def overrides(self) -> list[Override]:
        def body(conn: Connection) -> list[Override]:
            rows = conn.execute(select(overrides_t).order_by(overrides_t.c.domain))
            return [Override(**r._mapping) for r in rows]

        return await self.db.run(body)

    async def entries(self, source: str | None = None) -> list[ListEntry]:
        """Manual overrides and/or Fediseer entries, sorted by domain."""

        def body(conn: Connection) -> list[ListEntry]:
            out: list[ListEntry] = []
            if source in (None, "manual"):
                for r in conn.execute(select(overrides_t)):
                    out.append(ListEntry(r.domain, r.action, "manual", r.created_at, r.note))
            if source in (None, "fediseer"):
                for r in conn.execute(select(fediseer_t)):
                    out.append(ListEntry(r.domain, r.list, "fediseer", r.since, "", r.provenance))
            out.sort(key=lambda e: (e.domain, e.source))
            return out

        return await self.db.run(body)

    async def show(self, domain: str) -> DomainStatus:
        domain = normalize_domain(domain)
        return await self.db.run(self.show_blocking, domain)

    def show_blocking(self, conn: Connection, domain: str) -> DomainStatus:
        """`show` inside a transaction: two primary-key reads."""
        override = _get_override(conn, domain)
        entry = _get_fediseer(conn, domain)
        verdict = decide_domain(
            domain,
            self.mode,
            self.own_domains,
            override.action if override else None,
            entry.action if entry else None,
        )
        reason, since = verdict.reason, None
        if verdict.source == "override" and override is not None:
            since = override.created_at
            reason = f"manual {override.action}" + (f": {override.note}" if override.note else "")
        elif verdict.source == "fediseer" and entry is not None:
            since = entry.since
            reason = entry.explain()
        return DomainStatus(
            domain, self.mode, verdict.allowed, verdict.source, reason, since, override, entry
        )

    # CSV
    async def import_csv(self, text: str) -> ImportResult:
        """All or nothing: every row is validated first (CsvImportError), then one transaction."""
        rows = parse_csv(text)
        now, actor = self.clock(), self.actor

        def body(conn: Connection) -> ImportResult:
            result = ImportResult()
            for row in rows:
                detail = {"via": "import", "line": row.line}
                if row.action == "unset":
                    done = _unset_override(conn, row.domain, now, actor, detail)
                    (result.removed if done else result.unchanged).append(row.domain)
                    continue
                outcome = _set_override(conn, row.domain, row.action, row.note, now, actor, detail)
                getattr(result, outcome).append(row.domain)
            return result

        return await self._write(body)

    async def export_csv(self) -> str:
        return overrides_to_csv(await self.overrides())

    # bans
    async def ban(self, acct: str, note: str = "") -> bool:
        """Ban `acct`; False when it already was (the note is updated)."""
        acct = normalize_acct(acct)
        now, actor = self.clock(), self.actor

        def body(conn: Connection) -> bool:
            row = conn.execute(select(bans_t).where(bans_t.c.acct == acct)).first()
            if row is not None and row.note == note:
                return False
            if row is None:
                conn.execute(insert(bans_t).values(acct=acct, note=note, created_at=now))
            else:
                conn.execute(update(bans_t).where(bans_t.c.acct == acct).values(note=note))
            write_audit(conn, now, actor, "users.ban", acct, {"note": note})
            return row is None

        return await self._write(body)

    async def unban(self, acct: str) -> bool:
        acct = normalize_acct(acct)
        now, actor = self.clock(), self.actor

        def body(conn: Connection) -> bool:
            gone = conn.execute(delete(bans_t).where(bans_t.c.acct == acct)).rowcount
            if gone:
                write_audit(conn, now, actor, "users.unban", acct, {})
            return bool(gone)

        return await self._write(body)

    async def bans(self) -> list[Ban]:
        def body(conn: Connection) -> list[Ban]:
            rows = conn.execute(select(bans_t).order_by(bans_t.c.acct))
            return [Ban(**r._mapping) for r in rows]

        return await self.db.run(body)

    async def is_banned(self, acct: str) -> bool:
        acct = normalize_acct(acct)

        def body(conn: Connection) -> bool:
            return (
                conn.execute(select(bans_t.c.acct).where(bans_t.c.acct == acct)).first() is not None
            )

        return await self.db.run(body)

    # audit
    async def audit(
        self, since: float | None = None, limit: int | None = None
    ) -> list[AuditRecord]:
        return await self.db.run(read_audit, since, limit)


def read_audit(conn: Connection, since: float | None, limit: int | None) -> list[AuditRecord]:
    """Audit rows at or after `since`, oldest first (the newest `limit` when given)."""
    query = select(audit_t)
    if since is not None:
        query = query.where(audit_t.c.at >= since)
    query = query.order_by(audit_t.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = [AuditRecord(**r._mapping) for r in conn.execute(query)]
    rows.reverse()
    return rows


def change_stamp(conn: Connection) -> tuple[int, int]:
    """(count, newest id) of the audit log: changes whenever a list, override or ban changes
    (every such write adds an audit row in its own transaction). The count also catches a
    PostgreSQL transaction that took a lower id but committed later."""
    row = conn.execute(select(func.count(), func.max(audit_t.c.id)).select_from(audit_t)).one()
    return int(row[0] or 0), int(row[1] or 0)
