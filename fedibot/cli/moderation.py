"""Moderation admin commands: `allowlist`, `fediseer`, `users`, `quota`, `audit`.

The lead registers these click objects on the main `fedibot` group (which owns `--config`).
Read commands take `--json` and then print exactly one JSON document; otherwise rich tables.
Bad input (an invalid domain or acct, a bad CSV) prints one line and exits 2.
"""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fedibot.cli.common import (
    fail,
    format_time,
    load_config_or_exit,
    make_table,
    open_database,
    parse_since,
    print_json,
    print_table,
    run_async,
)

if TYPE_CHECKING:
    from fedibot.config.loader import FedibotConfig
    from fedibot.moderation.allowlist import Allowlist
    from fedibot.storage.database import Database


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def _domain(value: str) -> str:
    """A domain typed by a person (Unicode or punycode) in the one normal form."""
    from fedibot.moderation.allowlist import normalize_domain

    try:
        return normalize_domain(value)
    except ValueError as exc:
        fail(str(exc))


def with_unicode(domain: str) -> str:
    """`xn--mnchen-3ya.test (münchen.test)`: the stored A-label and, for people, Unicode."""
    from fedibot.moderation.allowlist import with_unicode as both

    return both(domain)


def _acct(value: str) -> str:
    from fedibot.moderation.allowlist import normalize_acct

    try:
        return normalize_acct(value)
    except ValueError as exc:
        fail(str(exc))


def _allowlist(db: Database, cfg: FedibotConfig) -> Allowlist:
    from fedibot.moderation.allowlist import Allowlist

    return Allowlist(db, mode=cfg.policy.mode, own_domains=cfg.own_domains, actor=_actor())


def _with_allowlist(fn: Any) -> Any:
    """Run `await fn(allowlist, cfg)` against the configured, migrated database."""
    cfg = load_config_or_exit()

    async def body() -> Any:
        async with open_database(cfg) as db:
            return await fn(_allowlist(db, cfg), cfg)

    return run_async(body())


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")


# -- allowlist --------------------------------------------------------------------------------


@click.group()
def allowlist() -> None:
    """Instance allow/deny lists: manual overrides and the Fediseer sync."""


@allowlist.command("list")
@click.option("--source", type=click.Choice(["manual", "fediseer"]), default=None)
@json_option
def allowlist_list(source: str | None, as_json: bool) -> None:
    """List manual overrides and Fediseer entries."""
    entries = _with_allowlist(lambda al, _cfg: al.entries(source))
    if as_json:
        print_json([e.to_dict() for e in entries])
        return
    rows = [
        (with_unicode(e.domain), e.action, e.source, format_time(e.since), e.explain())
        for e in entries
    ]
    title = f"{len(entries)} entries" + (f" ({source})" if source else "")
    print_table(make_table(title, ["domain", "action", "source", "since", "why"], rows))


@allowlist.command("show")
@click.argument("domain")
@json_option
def allowlist_show(domain: str, as_json: bool) -> None:
    """Whether DOMAIN may use the bot under the current mode, why, and since when."""
    name = _domain(domain)
    status = _with_allowlist(lambda al, _cfg: al.show(name))
    if as_json:
        print_json(status.to_dict())
        return
    verdict = "allowed" if status.allowed else "NOT allowed"
    rows = [
        ("domain", with_unicode(status.domain)),
        ("verdict", verdict),
        ("mode", status.mode),
        ("decided by", status.source),
        ("why", status.reason),
        ("since", format_time(status.since)),
    ]
    if status.override and status.source != "override":
        rows.append(("manual override", f"{status.override.action} (not deciding)"))
    if status.fediseer and status.source != "fediseer":
        rows.append(("fediseer", f"{status.fediseer.action}: {status.fediseer.explain()}"))
    print_table(make_table(None, ["", ""], rows))


def _set(domain: str, action: str, note: str) -> None:
    name = _domain(domain)

    async def body(al: Allowlist, cfg: FedibotConfig) -> tuple[str, Any]:
        outcome = await al.set_override(name, action, note)
        return outcome, await al.show(name)

    outcome, status = _with_allowlist(body)
    verdict = "allowed" if status.allowed else "not allowed"
    shown = with_unicode(name)
    click.echo(f"{shown}: manual {action} {outcome}; now {verdict} ({status.reason})")


@allowlist.command("allow")
@click.argument("domain")
@click.option("--note", default="", help="Why (kept with the override and in the audit log).")
def allowlist_allow(domain: str, note: str) -> None:
    """Allow DOMAIN by hand (beats the Fediseer sync)."""
    _set(domain, "allow", note)


@allowlist.command("deny")
@click.argument("domain")
@click.option("--note", default="", help="Why (kept with the override and in the audit log).")
def allowlist_deny(domain: str, note: str) -> None:
    """Deny DOMAIN by hand (beats the Fediseer sync)."""
    _set(domain, "deny", note)


@allowlist.command("unset")
@click.argument("domain")
def allowlist_unset(domain: str) -> None:
    """Remove the manual override of DOMAIN (the sync and the mode decide again)."""
    name = _domain(domain)
    removed = _with_allowlist(lambda al, _cfg: al.unset(name))
    shown = with_unicode(name)
    click.echo(f"{shown}: manual override removed" if removed else f"{shown}: no manual override")


@allowlist.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def allowlist_import(file: Path) -> None:
    """Import overrides from a CSV (domain,action,note; action allow, deny or unset).
    Every row is checked first: one bad row rejects the whole file."""
    from fedibot.moderation.allowlist import CsvImportError, parse_csv

    text = file.read_text(encoding="utf-8-sig")
    try:
        parse_csv(text)
    except CsvImportError as exc:
        for line, message in exc.problems:
            click.echo(f"{file}:{line}: {message}", err=True)
        fail(f"{file}: nothing imported ({len(exc.problems)} bad rows)")
    result = _with_allowlist(lambda al, _cfg: al.import_csv(text))
    click.echo(
        f"imported {file}: {len(result.added)} added, {len(result.changed)} changed, "
        f"{len(result.removed)} removed, {len(result.unchanged)} unchanged"
    )


@allowlist.command("export")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def allowlist_export(output: Path | None) -> None:
    """Write the manual overrides as CSV (stdout unless --output)."""
    text = _with_allowlist(lambda al, _cfg: al.export_csv())
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


# -- fediseer ---------------------------------------------------------------------------------


@click.group()
def fediseer() -> None:
    """The Fediseer sync of the instance lists."""


@fediseer.command("sync")
@click.option("--dry-run", is_flag=True, help="Show what would change; change nothing.")
@click.option("--force", is_flag=True, help="Apply even a sync that removes many instances.")
@json_option
def fediseer_sync(dry_run: bool, force: bool, as_json: bool) -> None:
    """Sync now and print the diff. Exit 1 when it failed, 3 when it was held back."""
    from fedibot.moderation.fediseer_apply import sync_fediseer

    cfg = load_config_or_exit()
    if not cfg.fediseer.trusted:
        fail("fediseer.trusted is empty in the config: nothing to sync from")

    async def body() -> Any:
        async with open_database(cfg) as db:
            return await sync_fediseer(
                db, cfg.fediseer, dry_run=dry_run, force=force, actor=_actor()
            )

    outcome = run_async(body())
    if as_json:
        print_json(outcome.to_dict())
    else:
        _print_outcome(outcome)
    if outcome.status == "failed":
        raise SystemExit(1)
    if outcome.status == "held":
        raise SystemExit(3)


def _print_outcome(outcome: Any) -> None:
    click.echo(f"sync {outcome.status} (run #{outcome.run_id})")
    if outcome.error and outcome.status == "failed":
        click.echo(f"error: {outcome.error}; the last good list is kept")
        return
    summary = outcome.summary or {}
    for key, label in (
        ("added_allow", "+ allow"),
        ("removed_allow", "- allow"),
        ("added_deny", "+ deny"),
        ("removed_deny", "- deny"),
    ):
        items = [with_unicode(d) for d in summary.get(key) or []]
        shown = ", ".join(items[:20]) + (f", … ({len(items) - 20} more)" if len(items) > 20 else "")
        click.echo(f"{label}: {len(items)}" + (f"  {shown}" if items else ""))
    if summary.get("held"):
        click.echo(f"held: {summary.get('held_reason')}")
    elif summary.get("forced"):
        click.echo("applied with --force")


@fediseer.command("history")
@click.option("--limit", type=click.IntRange(1, 1000), default=20)
@json_option
def fediseer_history(limit: int, as_json: bool) -> None:
    """The last sync attempts, newest first."""
    from fedibot.moderation.fediseer_apply import sync_history

    cfg = load_config_or_exit()

    async def body() -> Any:
        async with open_database(cfg) as db:
            return await sync_history(db, limit)

    runs = run_async(body())
    if as_json:
        print_json([r.to_dict() for r in runs])
        return
    rows = [
        (r.id, format_time(r.started_at), r.status, r.added, r.removed,
         ", ".join(map(str, r.sources)), r.error or "")
        for r in runs
    ]  # fmt: skip
    columns = ["#", "started", "status", "added", "removed", "sources", "error / held reason"]
    print_table(make_table("Fediseer syncs", columns, rows))


# -- users ------------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """Banned users."""


@users.command("ban")
@click.argument("acct")
@click.option("--note", default="", help="Why (kept with the ban and in the audit log).")
def users_ban(acct: str, note: str) -> None:
    """Refuse every request of ACCT (user@domain)."""
    name = _acct(acct)
    new = _with_allowlist(lambda al, _cfg: al.ban(name, note))
    click.echo(f"{name}: banned" if new else f"{name}: already banned (note updated)")


@users.command("unban")
@click.argument("acct")
def users_unban(acct: str) -> None:
    """Lift the ban of ACCT."""
    name = _acct(acct)
    gone = _with_allowlist(lambda al, _cfg: al.unban(name))
    click.echo(f"{name}: unbanned" if gone else f"{name}: was not banned")


@users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    """Banned accounts."""
    bans = _with_allowlist(lambda al, _cfg: al.bans())
    if as_json:
        print_json([b.to_dict() for b in bans])
        return
    rows = [(b.acct, format_time(b.created_at), b.note) for b in bans]
    print_table(make_table(f"{len(bans)} banned", ["acct", "since", "note"], rows))


# -- quota ------------------------------------------------------------------------------------


@click.group()
def quota() -> None:
    """Request quotas."""


@quota.command("show")
@click.argument("acct")
@json_option
def quota_show(acct: str, as_json: bool) -> None:
    """ACCT's usage against every limit, and when each exhausted limit resets."""
    from fedibot.moderation.policy import quota_lines

    name = _acct(acct)
    cfg = load_config_or_exit()
    exempt = name in {a.strip().lstrip("@").lower() for a in cfg.quotas.exempt}
    now = time.time()

    async def body() -> Any:
        async with open_database(cfg) as db:
            domain = name.rsplit("@", 1)[1]
            return await db.run(quota_lines, cfg.quotas, name, domain, now, 1)

    lines = run_async(body())
    if as_json:
        print_json({"acct": name, "exempt": exempt, "now": now, "limits": lines})
        return
    rows = [
        (
            line.scope,
            line.label,
            line.used,
            line.limit or "no limit",
            "yes" if line.exceeded else "",
            format_time(line.reset_at),
        )
        for line in lines
    ]
    title = f"{name}" + (" (exempt: no quotas apply)" if exempt else "")
    print_table(make_table(title, ["scope", "limit", "used", "max", "full", "resets"], rows))


# -- audit ------------------------------------------------------------------------------------


@click.command()
@click.option("--since", default=None, help="24h, 7d, 30m, or a date like 2026-11-01 (UTC).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, help="Newest N rows.")
@json_option
def audit(since: str | None, limit: int, as_json: bool) -> None:
    """Every moderation change: who, what, when."""
    start = None
    if since is not None:
        try:
            start = parse_since(since, time.time())
        except ValueError as exc:
            fail(str(exc))
    records = _with_allowlist(lambda al, _cfg: al.audit(start, limit))
    if as_json:
        print_json([r.to_dict() for r in records])
        return
    rows = [(format_time(r.at), r.actor, r.action, r.target, _brief(r.detail)) for r in records]
    print_table(make_table("audit log", ["at", "actor", "action", "target", "detail"], rows))


def _brief(detail: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, "", [], {}))


__all__ = ["allowlist", "audit", "fediseer", "quota", "users"]
