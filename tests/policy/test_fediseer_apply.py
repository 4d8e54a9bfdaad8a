"""sync_fediseer against the fake Fediseer over real HTTP, on SQLite and PostgreSQL: the lists
and their provenance land in the database; failures, held and dry-run syncs change nothing
and are recorded; manual overrides are never touched by a sync."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from federation.types import Account
from fedibot.moderation.allowlist import Allowlist, fediseer_t
from fedibot.moderation.fediseer_apply import sync_fediseer, sync_history
from tests.fakes.fediseer_server import FakeFediseer, TrustGraph
from tests.policy.conftest import TRUSTED, Clock, fediseer_config, make_policy

A, B, G, D, S = "alpha.example", "beta.example", "gamma.example", "delta.example", "spam.example"


async def entries(db) -> dict[str, tuple[str, dict, float]]:
    def body(conn):
        rows = conn.execute(select(fediseer_t))
        return {r.domain: (r.list, r.provenance, r.since) for r in rows}

    return await db.run(body)


async def lists_of(db) -> tuple[set[str], set[str]]:
    current = await entries(db)
    allow = {d for d, (lst, _, _) in current.items() if lst == "allow"}
    return allow, set(current) - allow


async def test_first_sync_applies_allow_and_deny_with_provenance(db, fake) -> None:
    cfg = fediseer_config(fake.base_url)
    outcome = await sync_fediseer(db, cfg, clock=Clock(1000.0), actor="scheduler")
    assert outcome.status == "applied", outcome
    assert await lists_of(db) == ({B, G, D}, {S})
    current = await entries(db)
    beta = current[B][1]
    assert beta["endorsed_by"] == {A: ["well moderated"], G: ["well moderated"]}
    assert beta["guarantor"] == A
    assert current[S][1]["censured_by"] == {A: ["spam"], B: ["spam", "csam"], G: []}
    assert all(since == 1000.0 for _, _, since in current.values())

    shown = await Allowlist(db, mode="allowlist").show(B)
    assert (shown.allowed, shown.source, shown.since) == (True, "fediseer", 1000.0)
    assert shown.reason.startswith("allowed: endorsed by alpha.example (well moderated)")
    denied = await Allowlist(db, mode="blocklist").show(S)
    assert not denied.allowed and denied.reason.startswith("denied: censured by")

    [run] = await sync_history(db)
    assert (run.status, run.added, run.removed, run.error) == ("applied", 4, 0, None)
    assert run.sources == TRUSTED
    assert sorted(run.diff["added_allow"]) == [B, D, G]
    [audit] = await Allowlist(db).audit()
    assert (audit.action, audit.actor, audit.detail["run_id"]) == (
        "fediseer.sync",
        "scheduler",
        run.id,
    )
    assert audit.detail["added_allow"] == 3 and audit.detail["added_deny"] == 1


async def test_unchanged_sync_keeps_since_and_refreshes_provenance(db, fake) -> None:
    cfg = fediseer_config(fake.base_url)
    await sync_fediseer(db, cfg, clock=Clock(1000.0))
    fake.graph.endorse(B, D, "seen them grow")  # provenance changes, the lists do not
    outcome = await sync_fediseer(db, cfg, clock=Clock(2000.0))
    assert (outcome.status, outcome.provenance_updated) == ("unchanged", 1)
    current = await entries(db)
    assert current[D][2] == 1000.0  # since is kept
    assert current[D][1]["endorsed_by"] == {A: ["new instance"], B: ["seen them grow"]}
    assert [r.action for r in await Allowlist(db).audit()] == ["fediseer.sync"]


async def test_domain_moving_from_allow_to_deny_gets_a_new_since(sqlite_db, fake) -> None:
    cfg = fediseer_config(fake.base_url, max_removal_fraction=0.5)
    await sync_fediseer(sqlite_db, cfg, clock=Clock(1000.0))
    fake.graph.censure(A, D, "spam")
    fake.graph.censure(G, D, "spam")
    outcome = await sync_fediseer(sqlite_db, cfg, clock=Clock(2000.0))
    assert outcome.status == "applied"
    assert outcome.summary["removed_allow"] == [D] and outcome.summary["added_deny"] == [D]
    lst, _, since = (await entries(sqlite_db))[D]
    assert (lst, since) == ("deny", 2000.0)


@pytest.mark.parametrize("mode", [401, 403, 404, 500, "slow", "garbage"])
async def test_unreadable_source_keeps_the_list_and_records_the_failure(
    sqlite_db, fake, mode
) -> None:
    await check_failure_keeps_the_list(sqlite_db, fake, mode)


async def test_failed_sync_keeps_the_list_on_both_databases(db, fake) -> None:
    await check_failure_keeps_the_list(db, fake, 500)


async def check_failure_keeps_the_list(db, fake, mode) -> None:
    cfg = fediseer_config(fake.base_url)
    await sync_fediseer(db, cfg)
    before = await entries(db)
    fake.graph.withdraw_endorsement(A, D)  # a real change the failed sync must not apply
    fake.fail("*", mode, delay=5.0)
    outcome = await sync_fediseer(db, cfg)
    assert outcome.status == "failed" and outcome.summary is None
    assert await entries(db) == before
    latest = (await sync_history(db))[0]
    assert (latest.status, latest.added, latest.removed) == ("failed", 0, 0)
    assert latest.error and latest.error.startswith("fediseer_")
    assert latest.sources == TRUSTED
    assert [r.action for r in await Allowlist(db).audit()] == ["fediseer.sync"]  # only the first


async def test_one_unreadable_source_among_several_fails_the_whole_sync(sqlite_db, fake) -> None:
    await sync_fediseer(sqlite_db, fediseer_config(fake.base_url))
    before = await entries(sqlite_db)
    fake.graph.update(G, visibility_endorsements="PRIVATE")  # one source now answers 403
    outcome = await sync_fediseer(sqlite_db, fediseer_config(fake.base_url))
    assert outcome.status == "failed" and "fediseer_forbidden" in (outcome.error or "")
    assert await entries(sqlite_db) == before


def ten_instance_graph() -> TrustGraph:
    graph = TrustGraph()
    graph.add("root.example", claimed=1)
    for i in range(10):
        graph.add(f"i{i}.example")
        graph.endorse("root.example", f"i{i}.example")
    return graph


async def test_dropping_ninety_percent_is_held_until_forced(db) -> None:
    graph = ten_instance_graph()
    async with FakeFediseer(graph, cache_ttl=0) as server:
        cfg = fediseer_config(server.base_url, trusted=["root.example"], deny_censured_by=0)
        assert (await sync_fediseer(db, cfg)).status == "applied"
        assert len((await lists_of(db))[0]) == 10
        for i in range(1, 10):
            graph.withdraw_endorsement("root.example", f"i{i}.example")

        held = await sync_fediseer(db, cfg)
        assert held.status == "held"
        assert "would remove 9 of 10" in (held.error or "")
        assert len(held.summary["removed_allow"]) == 9
        assert len((await lists_of(db))[0]) == 10  # nothing changed
        assert (await sync_history(db))[0].status == "held"

        forced = await sync_fediseer(db, cfg, force=True)
        assert forced.status == "applied" and forced.summary["forced"] is True
        assert (await lists_of(db))[0] == {"i0.example"}
        audits = [r for r in await Allowlist(db).audit() if r.action == "fediseer.sync"]
        assert audits[-1].detail["forced"] is True and audits[-1].detail["removed_allow"] == 9


async def test_dry_run_changes_nothing(db, fake) -> None:
    outcome = await sync_fediseer(db, fediseer_config(fake.base_url), dry_run=True)
    assert outcome.status == "dry_run"
    assert sorted(outcome.summary["added_allow"]) == [B, D, G]
    assert await entries(db) == {}
    assert await Allowlist(db).audit() == []
    assert [r.status for r in await sync_history(db)] == ["dry_run"]


async def test_manual_overrides_survive_syncs_and_beat_them(db, fake) -> None:
    al = Allowlist(db)
    await al.deny(B, "we disagree with the endorsements")
    await al.allow(S, "we know them")
    cfg = fediseer_config(fake.base_url)
    await sync_fediseer(db, cfg)
    fake.graph.withdraw_endorsement(A, D)
    await sync_fediseer(db, cfg, force=True)
    assert [(o.domain, o.action) for o in await al.overrides()] == [(B, "deny"), (S, "allow")]
    policy = make_policy(db, mode="allowlist")

    async def allowed(domain: str) -> bool:
        decision = await policy.check_requester(Account("mastodon", "1", f"u@{domain}"))
        return decision.allowed

    assert not await allowed(B)  # fediseer allows, manual deny wins
    assert await allowed(S)  # fediseer denies, manual allow wins
    assert await allowed(G)
    assert not await allowed(D)  # withdrawn by the second sync


async def test_a_sync_is_seen_by_a_running_policy(sqlite_db, fake) -> None:
    policy = make_policy(sqlite_db, mode="allowlist")
    policy.refresh_seconds = 3600.0
    who = Account("mastodon", "1", f"u@{G}")
    assert not (await policy.check_requester(who)).allowed
    await sync_fediseer(sqlite_db, fediseer_config(fake.base_url))
    assert (await policy.check_requester(who)).allowed
