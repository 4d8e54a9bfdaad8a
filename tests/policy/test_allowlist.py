"""Overrides, `show`, CSV import/export, bans and the audit row of every change."""

from __future__ import annotations

import pytest

from fedibot.moderation.allowlist import (
    Allowlist,
    CsvImportError,
    normalize_acct,
    normalize_domain,
)
from tests.policy.conftest import Clock

NOW = 1_800_000_000.0


def lists(db, mode: str = "blocklist", now: float = NOW) -> Allowlist:
    own = {"bot.example"}
    return Allowlist(db, mode=mode, own_domains=own, actor="cli:test", clock=Clock(now))


async def test_override_lifecycle_writes_audit_rows(db) -> None:
    al = lists(db)
    assert await al.allow("Friends.Example.", "nice people") == "added"
    assert await al.allow("friends.example", "nice people") == "unchanged"
    assert await lists(db, now=NOW + 10).deny("friends.example", "changed our mind") == "changed"
    [override] = await al.overrides()
    assert (override.domain, override.action, override.note) == (
        "friends.example",
        "deny",
        "changed our mind",
    )
    assert override.created_at == NOW + 10  # since: when the action changed
    assert await al.unset("friends.example") is True
    assert await al.unset("friends.example") is False
    assert await al.overrides() == []
    records = await al.audit()
    assert [(r.action, r.target, r.actor) for r in records] == [
        ("allowlist.allow", "friends.example", "cli:test"),
        ("allowlist.deny", "friends.example", "cli:test"),
        ("allowlist.unset", "friends.example", "cli:test"),
    ]
    assert records[1].detail["previous"] == "allow"
    assert records[1].detail["note"] == "changed our mind"
    assert [r.action for r in await al.audit(since=NOW + 5)] == ["allowlist.deny"]
    assert [r.action for r in await al.audit(limit=1)] == ["allowlist.unset"]


async def test_show_explains_override_own_instance_and_default(db) -> None:
    al = lists(db, mode="allowlist")
    await al.allow("friends.example", "met at a meetup")
    shown = await al.show("friends.example")
    assert (shown.allowed, shown.source, shown.since) == (True, "override", NOW)
    assert shown.reason == "manual allow: met at a meetup"
    own = await al.show("bot.example")
    assert (own.allowed, own.source) == (True, "own")
    other = await al.show("stranger.example")
    assert (other.allowed, other.source, other.since) == (False, "mode", None)
    assert "allowlist" in other.reason


@pytest.mark.parametrize(
    "bad", ["not a domain", "https://x.example/", "localhost", "a@b.example", "", "-x.example"]
)
def test_invalid_domains_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_domain(bad)


def test_domain_and_acct_normalisation() -> None:
    assert normalize_domain(" Example.Social. ") == "example.social"
    assert normalize_domain("bücher.example") == "xn--bcher-kva.example"
    assert normalize_acct("@Ann@Example.Social") == "ann@example.social"
    for bad in ("ann", "ann@", "@example.social", "a b@example.social", "ann@not a domain"):
        with pytest.raises(ValueError):
            normalize_acct(bad)


async def test_csv_round_trip(db) -> None:
    al = lists(db)
    csv_text = (
        "domain,action,note\n"
        "good.example,allow,trusted admins\n"
        "# a comment\n"
        "\n"
        'bad.example,deny,"spam, lots of it"\n'
        "ugly.example,deny\n"
    )
    result = await al.import_csv(csv_text)
    assert sorted(result.added) == ["bad.example", "good.example", "ugly.example"]
    exported = await al.export_csv()
    assert exported.splitlines() == [
        "domain,action,note",
        'bad.example,deny,"spam, lots of it"',
        "good.example,allow,trusted admins",
        "ugly.example,deny,",
    ]
    again = await al.import_csv(exported + "gone.example,unset,\n")
    assert sorted(again.unchanged) == [
        "bad.example",
        "gone.example",
        "good.example",
        "ugly.example",
    ]
    third = await al.import_csv("ugly.example,unset\ngood.example,deny,now bad\n")
    assert (third.removed, third.changed) == (["ugly.example"], ["good.example"])
    imports = [r for r in await al.audit() if r.detail.get("via") == "import"]
    assert len(imports) == 5  # 3 added + 1 removed + 1 changed
    assert {r.detail["line"] for r in imports if r.target == "good.example"} == {2}


async def test_csv_with_a_bad_row_imports_nothing_and_names_the_line(db) -> None:
    al = lists(db)
    await al.deny("kept.example", "before")
    text = (
        "domain,action,note\n"
        "fine.example,allow,ok\n"
        "not a domain,deny,oops\n"
        "fine2.example,maybe,\n"
        "fine.example,deny,duplicate\n"
        "too,many,columns,here\n"
    )
    with pytest.raises(CsvImportError) as info:
        await al.import_csv(text)
    lines = [line for line, _ in info.value.problems]
    assert lines == [3, 4, 5, 6]
    assert "line 3" in str(info.value) and "not a domain" in str(info.value)
    assert "already on line 2" in info.value.problems[2][1]
    assert [o.domain for o in await al.overrides()] == ["kept.example"]
    assert [r.action for r in await al.audit()] == ["allowlist.deny"]


async def test_bans_with_audit(db) -> None:
    al = lists(db)
    assert await al.ban("@Troll@Bad.Example", "harassment") is True
    assert await al.ban("troll@bad.example", "harassment") is False
    assert await al.is_banned("TROLL@bad.example")
    [ban] = await al.bans()
    assert (ban.acct, ban.note, ban.created_at) == ("troll@bad.example", "harassment", NOW)
    assert await al.unban("troll@bad.example") is True
    assert await al.unban("troll@bad.example") is False
    assert await al.bans() == []
    assert [(r.action, r.target) for r in await al.audit()] == [
        ("users.ban", "troll@bad.example"),
        ("users.unban", "troll@bad.example"),
    ]
