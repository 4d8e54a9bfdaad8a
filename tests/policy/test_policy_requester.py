"""Who may ask: the mode × overrides × Fediseer matrix, own instances, bans, #nobot/#noai,
and the cache seeing changes (this process at once, another process after the refresh)."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from federation.types import Account
from fedibot.moderation.allowlist import Allowlist, fediseer_t, write_audit
from tests.policy.conftest import OWN, make_policy


def account(acct: str, note: str = "") -> Account:
    return Account(platform="mastodon", id="1", acct=acct, note_text=note)


async def seed_fediseer(db, allow: list[str], deny: list[str]) -> None:
    """Rows as the sync writes them (the sync itself is tested in test_fediseer_apply)."""

    def body(conn) -> None:
        rows = [{"domain": d, "list": "allow", "provenance": {}, "since": 1.0} for d in allow]
        rows += [{"domain": d, "list": "deny", "provenance": {}, "since": 1.0} for d in deny]
        conn.execute(insert(fediseer_t), rows)
        write_audit(conn, 1.0, "test", "fediseer.sync", "", {})

    await db.run(body)


# (domain, manual override, fediseer list) → allowed under open / blocklist / allowlist
MATRIX = [
    ("plain.example", None, None, (True, True, False)),
    ("fs-allow.example", None, "allow", (True, True, True)),
    ("fs-deny.example", None, "deny", (True, False, False)),
    ("man-allow.example", "allow", None, (True, True, True)),
    ("man-deny.example", "deny", None, (False, False, False)),  # an admin deny holds in open
    ("man-allow-fs-deny.example", "allow", "deny", (True, True, True)),
    ("man-deny-fs-allow.example", "deny", "allow", (False, False, False)),
    (OWN, "deny", "deny", (True, True, True)),
]


@pytest.mark.parametrize("mode", ["open", "blocklist", "allowlist"])
async def test_mode_overrides_matrix(db, mode: str) -> None:
    lists = Allowlist(db)
    await seed_fediseer(
        db,
        allow=[d for d, _, fs, _ in MATRIX if fs == "allow"],
        deny=[d for d, _, fs, _ in MATRIX if fs == "deny"],
    )
    for domain, manual, _, _ in MATRIX:
        if manual:
            await lists.set_override(domain, manual, "test")
    policy = make_policy(db, mode)
    column = ["open", "blocklist", "allowlist"].index(mode)
    for domain, manual, fs, expected in MATRIX:
        decision = await policy.check_requester(account(f"someone@{domain}"))
        assert decision.allowed is expected[column], (mode, domain, manual, fs, decision)
        if not decision.allowed:
            assert decision.code == "instance_not_allowed"
            assert domain in decision.message
            assert decision.reply is False  # default: stay silent for instances
        # `allowlist show` applies the very same rule
        shown = await Allowlist(db, mode=mode, own_domains={OWN}).show(domain)
        assert shown.allowed is expected[column]


async def test_instance_refusal_reason_names_the_deciding_rule(sqlite_db) -> None:
    await Allowlist(sqlite_db).deny("evil.example", "spam wave")
    decision = await make_policy(sqlite_db).check_requester(account("x@evil.example"))
    assert decision.reason == "instance evil.example: manual deny"


async def test_banned_user_is_refused_and_others_on_the_instance_are_not(db) -> None:
    lists = Allowlist(db)
    policy = make_policy(db)
    assert (await policy.check_requester(account("troll@ok.example"))).allowed
    await lists.ban("Troll@OK.example", "harassment")
    refused = await policy.check_requester(account("troll@ok.example"))
    assert (refused.allowed, refused.code, refused.reply) == (False, "user_banned", False)
    assert (await policy.check_requester(account("friend@ok.example"))).allowed
    await lists.unban("troll@ok.example")
    assert (await policy.check_requester(account("troll@ok.example"))).allowed


@pytest.mark.parametrize("bio", ["Photographer. #NoBot", "#noai please", "hi\n#nobot"])
async def test_opted_out_profiles_are_refused_without_reply(sqlite_db, bio: str) -> None:
    policy = make_policy(sqlite_db, mode="open", reply_on_refusal={"opted_out": True})
    decision = await policy.check(account("shy@ok.example", bio), "a cat")
    assert (decision.allowed, decision.code, decision.reply) == (False, "opted_out", False)
    assert (await policy.check(account("shy@ok.example", "I like #nobots"), "a cat")).allowed


async def test_opt_out_can_be_switched_off(sqlite_db) -> None:
    policy = make_policy(sqlite_db, respect_opt_out=False)
    assert (await policy.check_requester(account("shy@ok.example", "#nobot"))).allowed


async def test_another_process_change_is_seen_after_the_refresh(db) -> None:
    policy = make_policy(db)
    policy.refresh_seconds = 0.0  # every check looks at the change stamp
    assert (await policy.check_requester(account("a@later.example"))).allowed

    def other_process(conn) -> None:  # a write that does not bump this process's version
        from fedibot.moderation.allowlist import overrides_t

        conn.execute(
            insert(overrides_t).values(
                domain="later.example", action="deny", note="", created_at=2.0, created_by="x"
            )
        )
        write_audit(conn, 2.0, "x", "allowlist.deny", "later.example", {})

    await db.run(other_process)
    assert not (await policy.check_requester(account("a@later.example"))).allowed


async def test_cached_lists_are_kept_until_the_refresh_interval(sqlite_db) -> None:
    policy = make_policy(sqlite_db)
    policy.refresh_seconds = 3600.0
    await policy.check_requester(account("a@x.example"))
    first = await policy.lists()

    def other_process(conn) -> None:
        write_audit(conn, 2.0, "x", "noop", "", {})

    await sqlite_db.run(other_process)
    assert await policy.lists() is first  # no SQL until the interval passed
    await Allowlist(sqlite_db).deny("x.example")  # same process: reloaded at once
    assert await policy.lists() is not first
    assert not (await policy.check_requester(account("a@x.example"))).allowed


async def test_check_runs_requester_then_prompt_then_quota(sqlite_db) -> None:
    await Allowlist(sqlite_db).deny("evil.example")
    policy = make_policy(sqlite_db)
    bad_prompt = "nude child"
    refused = await policy.check(account("a@evil.example"), bad_prompt)
    assert refused.code == "instance_not_allowed"
    refused = await policy.check(account("a@ok.example"), bad_prompt)
    assert (refused.code, refused.reply) == ("prompt_blocked", True)
    assert refused.reason.startswith("minor+sexual")
    assert (await policy.check(account("a@ok.example"), "a watercolour fox")).allowed


async def test_flagged_action_comes_from_config(sqlite_db) -> None:
    assert make_policy(sqlite_db).flagged_action() == "blur"  # never posted openly by default
    assert make_policy(sqlite_db, flagged_images="withhold").flagged_action() == "withhold"
