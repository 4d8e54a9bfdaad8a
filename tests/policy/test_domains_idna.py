"""One normal form for instance names (IDNA 2008 A-label, lower case, no trailing dot) on
every path: the Fediseer sync stores it, the policy decides on it, overrides are added and
removed by either spelling, the CLI shows both forms, and config lists accept either."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from federation.types import Account
from fedibot.config.errors import ConfigError
from fedibot.config.loader import parse_config
from fedibot.moderation.allowlist import Allowlist, normalize_domain
from fedibot.moderation.fediseer_apply import sync_fediseer
from fediseer_sync.config import FediseerConfig
from fediseer_sync.domains import display_domain
from tests.policy.conftest import AGENT, Clock, cli_root, fediseer_config, make_policy
from tests.policy.test_cli_moderation import write_config
from tests.policy.test_fediseer_apply import entries

SPAM_U, SPAM_A = "spämhub.test", "xn--spmhub-cua.test"
MUC_U, MUC_A = "münchen.test", "xn--mnchen-3ya.test"


@pytest.mark.parametrize(
    "spelling", [MUC_U, MUC_A, "MÜNCHEN.test", "München.Test.", " xn--MNCHEN-3ya.test "]
)
def test_every_spelling_has_one_normal_form(spelling: str) -> None:
    assert normalize_domain(spelling) == MUC_A
    assert display_domain(MUC_A) == MUC_U


@pytest.mark.parametrize(
    "bad", ["xn--zz.test", "a_b.test", "https://x.test", "user@x.test", "nodot", "a..b", ""]
)
def test_invalid_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        normalize_domain(bad)


def _account(acct: str) -> Account:
    return Account(platform="mastodon", id="1", acct=acct)


async def test_sync_stores_the_a_label_and_the_policy_denies_both_spellings(db, fake) -> None:
    fake.graph.add(SPAM_U)
    fake.graph.censure("alpha.example", SPAM_U, "csam")
    fake.graph.censure("beta.example", SPAM_U, "csam")
    outcome = await sync_fediseer(db, fediseer_config(fake.base_url), clock=Clock(1000.0))
    assert outcome.status == "applied", outcome
    stored = await entries(db)
    assert SPAM_A in stored and SPAM_U not in stored
    assert stored[SPAM_A][0] == "deny"
    policy = make_policy(db, mode="blocklist")
    for acct in (f"eve@{SPAM_U}", f"eve@{SPAM_A}", "eve@SPÄMHUB.test"):
        decision = await policy.check_requester(_account(acct))
        assert (decision.allowed, decision.code) == (False, "instance_not_allowed"), acct


async def test_a_unicode_name_stored_by_an_old_sync_is_rewritten(sqlite_db, fake) -> None:
    from sqlalchemy import insert

    from fedibot.moderation.allowlist import fediseer_t

    await sqlite_db.run(
        lambda c: c.execute(
            insert(fediseer_t).values(domain=SPAM_U, list="deny", provenance={}, since=1.0)
        )
    )
    fake.graph.add(SPAM_U)
    fake.graph.censure("alpha.example", SPAM_U, "csam")
    fake.graph.censure("beta.example", SPAM_U, "csam")
    outcome = await sync_fediseer(sqlite_db, fediseer_config(fake.base_url), clock=Clock(5.0))
    assert outcome.status == "applied" and not outcome.summary["removed_deny"]
    stored = await entries(sqlite_db)
    assert SPAM_A in stored and SPAM_U not in stored


async def test_overrides_take_either_spelling(sqlite_db) -> None:
    al = Allowlist(sqlite_db, mode="blocklist")
    assert await al.deny(MUC_U, "test") == "added"
    assert await al.deny(MUC_A, "test") == "unchanged"
    shown = await al.show("MÜNCHEN.test")
    assert (shown.domain, shown.allowed, shown.source) == (MUC_A, False, "override")
    assert shown.to_dict()["domain_unicode"] == MUC_U
    decision = await make_policy(sqlite_db).check_requester(_account(f"bob@{MUC_U}"))
    assert not decision.allowed
    assert await al.unset(MUC_A)
    assert not await al.unset(MUC_U)


def test_cli_accepts_both_spellings_and_shows_both_forms(tmp_path, sqlite_url) -> None:
    config = write_config(tmp_path, sqlite_url)
    runner = CliRunner()

    def cli(*args: str):
        return runner.invoke(cli_root, ["--config", str(config), *args], catch_exceptions=False)

    denied = cli("allowlist", "deny", MUC_U)
    assert denied.exit_code == 0, denied.output
    assert f"{MUC_A} ({MUC_U})" in denied.output
    shown = cli("allowlist", "show", MUC_A, "--json")
    data = json.loads(shown.output)
    assert (data["domain"], data["domain_unicode"], data["allowed"]) == (MUC_A, MUC_U, False)
    table = cli("allowlist", "show", MUC_U)
    assert MUC_A in table.output and MUC_U in table.output
    listed = json.loads(cli("allowlist", "list", "--json").output)
    assert [(e["domain"], e["domain_unicode"]) for e in listed] == [(MUC_A, MUC_U)]
    removed = cli("allowlist", "unset", "MÜNCHEN.test")
    assert "manual override removed" in removed.output
    bad = cli("allowlist", "show", "xn--zz.test")
    assert bad.exit_code == 2 and "not a bare domain name" in bad.output


def test_config_lists_take_either_spelling_and_name_the_key_when_invalid() -> None:
    cfg = FediseerConfig(
        enabled=True, trusted=[MUC_U, "XN--MNCHEN-3YA.test.", "alpha.example"], client_agent=AGENT
    )
    assert cfg.trusted == [MUC_A, "alpha.example"]
    loaded = parse_config({"fediseer": {"trusted": [MUC_U]}})
    assert loaded.fediseer.trusted == [MUC_A]
    with pytest.raises(ConfigError) as err:
        parse_config({"fediseer": {"trusted": ["alpha.example", "xn--zz.test"]}})
    message = str(err.value)
    assert "fediseer.trusted" in message and "xn--zz.test" in message
    assert len(message.splitlines()) == 1


def test_own_instances_are_normal_too() -> None:
    cfg = parse_config(
        {
            "accounts": [
                {
                    "name": "main",
                    "platform": "mastodon",
                    "base_url": f"https://{MUC_U}",
                    "access_token": "x" * 20,
                }
            ]
        }
    )
    assert cfg.own_domains == {MUC_A}
