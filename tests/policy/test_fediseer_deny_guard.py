"""The sync's removal guard covers the deny list too: a sync that would remove (or flip to
allow) more than `max_removal_fraction` of the denied instances — or any of them when the
source returned no denied instance at all — is held until --force, recorded in the sync
run, and shown by `fedibot doctor`."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner

from federation.types import Account
from fedibot.cli.main import main as fedibot_main
from fedibot.moderation.fediseer_apply import sync_fediseer, sync_history
from fediseer_sync.models import TrustDecision, TrustResult
from fediseer_sync.plan import plan_sync
from tests.policy.conftest import Clock, fediseer_config, make_policy
from tests.policy.test_cli_moderation import write_config
from tests.policy.test_fediseer_apply import lists_of

S = "spam.example"


def result(allow: list[str], deny: list[str]) -> TrustResult:
    return TrustResult(
        allow={d: TrustDecision(domain=d, allowed=True) for d in allow},
        deny={d: TrustDecision(domain=d, allowed=False) for d in deny},
        sources=["alpha.example"],
        fetched_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


def test_an_empty_deny_answer_is_held_even_at_fraction_one() -> None:
    for fraction in (0.3, 1.0):
        plan = plan_sync(["a.example"], ["x.example", "y.example"], result(["a.example"], []),
                         max_removal_fraction=fraction)  # fmt: skip
        assert plan.held and "denied" in (plan.held_reason or ""), fraction
    forced = plan_sync(["a.example"], ["x.example"], result(["a.example"], []),
                       max_removal_fraction=1.0, force=True)  # fmt: skip
    assert not forced.held and forced.forced and forced.removed_deny == ("x.example",)


def test_removing_or_flipping_many_denied_instances_is_held() -> None:
    deny_now = [f"d{i}.example" for i in range(10)]
    # 4 of 10 leave the deny list: 2 dropped, 2 flipped to allow
    new = result(["d0.example", "d1.example"], deny_now[4:])
    plan = plan_sync([], deny_now, new, max_removal_fraction=0.3)
    assert plan.held and "4 of 10 denied" in (plan.held_reason or "")
    assert plan.summary()["deny_removal_fraction"] == 0.4
    small = plan_sync([], deny_now, result([], deny_now[1:]), max_removal_fraction=0.3)
    assert not small.held  # 1 of 10 is within the limit


async def test_an_empty_censure_answer_keeps_the_deny_list_until_force(db, fake) -> None:
    cfg = fediseer_config(fake.base_url)
    assert (await sync_fediseer(db, cfg, clock=Clock(1000.0))).status == "applied"
    assert S in (await lists_of(db))[1]
    fake.graph.censures.clear()  # Fediseer answers {"instances": [], "total": 0}
    fake.graph._changed()
    outcome = await sync_fediseer(db, cfg, clock=Clock(2000.0))
    assert outcome.status == "held", outcome
    assert S in (await lists_of(db))[1]  # still denied
    policy = make_policy(db, mode="blocklist")
    decision = await policy.check_requester(Account(platform="mastodon", id="1", acct=f"e@{S}"))
    assert not decision.allowed
    [run, _] = await sync_history(db)
    assert run.status == "held" and "denied" in (run.error or "")
    assert run.diff["held"] and run.diff["removed_deny"] == [S]
    forced = await sync_fediseer(db, cfg, force=True, clock=Clock(3000.0))
    assert forced.status == "applied" and S not in (await lists_of(db))[1]


async def test_doctor_shows_a_held_sync(tmp_path, sqlite_db, sqlite_url, fake) -> None:
    cfg = fediseer_config(fake.base_url)
    await sync_fediseer(sqlite_db, cfg, clock=Clock(1000.0))
    fake.graph.censures.clear()
    fake.graph._changed()
    assert (await sync_fediseer(sqlite_db, cfg, clock=Clock(2000.0))).status == "held"
    config = write_config(tmp_path, sqlite_url, base_url=fake.base_url)
    out = CliRunner().invoke(
        fedibot_main, ["--config", str(config), "doctor", "--skip-accounts", "--json"]
    )
    checks = {c["check"]: c for c in json.loads(out.stdout)["checks"]}
    sync = checks["fediseer sync"]
    assert not sync["ok"]
    assert "held" in sync["detail"] and "--force" in sync["detail"]
