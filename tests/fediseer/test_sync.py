"""fetch_trust end to end against the fake server: the rules on the recorded trust graph, and
every unreadable source raising instead of yielding a partial (or empty) list."""

from __future__ import annotations

import pytest

from fediseer_sync.errors import (
    FediseerAuthError,
    FediseerBadResponse,
    FediseerForbidden,
    FediseerNotFound,
    FediseerUnavailable,
)
from fediseer_sync.sync import fetch_trust
from tests.fediseer.conftest import config

A, B, G, D, S = "alpha.example", "beta.example", "gamma.example", "delta.example", "spam.example"


async def test_min_one_allows_everything_a_trusted_instance_endorsed(make_client) -> None:
    result = await fetch_trust(make_client(), config(min_endorsements=1))
    assert set(result.allow) == {B, G, D}
    assert result.deny == {}
    assert dict(result.allow[B].endorsed_by) == {A: ("well moderated",), G: ("well moderated",)}
    assert dict(result.allow[G].endorsed_by) == {A: (), B: ("friendly admins",)}
    assert dict(result.allow[D].endorsed_by) == {A: ("new instance",)}
    assert result.allow[B].guarantor == A and result.allow[B].guaranteed
    assert result.sources == [A, B, G]


async def test_min_two_needs_two_trusted_endorsers(make_client) -> None:
    result = await fetch_trust(make_client(), config(min_endorsements=2))
    assert set(result.allow) == {B, G}
    assert result.allow[G].decided_by == (A, B)


async def test_reason_filter_counts_only_matching_endorsements(make_client) -> None:
    result = await fetch_trust(make_client(), config(endorsement_reasons=["Moderated"]))
    assert set(result.allow) == {B}
    assert result.allow[B].decided_by == (A, G)
    two = await fetch_trust(make_client(), config(endorsement_reasons=["friendly", "new"]))
    assert set(two.allow) == {G, D}
    assert two.allow[G].decided_by == (B,)
    assert dict(two.allow[G].endorsed_by) == {A: (), B: ("friendly admins",)}


async def test_require_guarantee_drops_unguaranteed_instances(make_client) -> None:
    result = await fetch_trust(make_client(), config(require_guarantee=True))
    assert set(result.allow) == {B, G}


async def test_deny_censured_by_two(make_client) -> None:
    result = await fetch_trust(make_client(), config(deny_censured_by=2))
    assert set(result.deny) == {S}
    spam = result.deny[S]
    assert not spam.allowed
    assert dict(spam.censured_by) == {A: ("spam",), B: ("spam", "csam"), G: ()}
    assert spam.decided_by == (A, B, G)
    assert set(result.allow) == {B, G, D}


async def test_censure_reasons_filter_counts_only_matching_censures(make_client) -> None:
    one = await fetch_trust(make_client(), config(deny_censured_by=1, censure_reasons=["csam"]))
    assert set(one.deny) == {S}
    assert one.deny[S].decided_by == (B,)
    two = await fetch_trust(make_client(), config(deny_censured_by=2, censure_reasons=["csam"]))
    assert two.deny == {}


async def test_hesitations_count_as_censures_only_when_included(make_client) -> None:
    without = await fetch_trust(make_client(), config(deny_censured_by=1))
    assert set(without.deny) == {S}
    assert D in without.allow
    included = await fetch_trust(
        make_client(), config(deny_censured_by=1, include_hesitations=True)
    )
    assert set(included.deny) == {S, D}
    assert D not in included.allow  # deny beats allow
    assert dict(included.deny[D].hesitated_by) == {B: ("lax moderation",)}
    assert dict(included.deny[D].endorsed_by) == {A: ("new instance",)}
    assert included.lookup("DELTA.example.") is included.deny[D]


async def test_hesitations_are_not_fetched_when_not_needed(fake, make_client) -> None:
    await fetch_trust(make_client(), config(include_hesitations=True))
    assert {r.endpoint for r in fake.received} == {"approvals"}
    assert len(fake.received) == 3


async def test_private_source_counts_with_its_apikey(make_client) -> None:
    cfg = config(trusted=[A, "private.example"])
    with pytest.raises(FediseerForbidden):
        await fetch_trust(make_client(), cfg)
    result = await fetch_trust(make_client(apikey="key-private.example"), cfg)
    assert dict(result.allow[A].endorsed_by) == {"private.example": ("secret endorsement",)}


@pytest.mark.parametrize(
    ("endpoint", "mode", "error"),
    [
        ("approvals", 401, FediseerAuthError),
        ("approvals", 403, FediseerForbidden),
        ("censures_given", 404, FediseerNotFound),
        ("censures_given", 500, FediseerUnavailable),
        ("approvals", "slow", FediseerUnavailable),
        ("approvals", "garbage", FediseerBadResponse),
    ],
)
async def test_unreadable_source_raises_instead_of_returning_a_list(
    fake, make_client, endpoint, mode, error
) -> None:
    cfg = config(deny_censured_by=1)
    good = await fetch_trust(make_client(), cfg)
    assert set(good.allow) == {B, G, D}
    fake.clear_cache()
    fake.fail(endpoint, mode, delay=5.0)
    with pytest.raises(error):
        await fetch_trust(make_client(timeout=0.3, max_retries=1), cfg)


async def test_only_one_failing_source_still_raises(fake, make_client) -> None:
    fake.fail("approvals", 404, times=1)
    with pytest.raises(FediseerNotFound):
        await fetch_trust(make_client(), config())


async def test_rate_limited_sync_waits_and_succeeds(fake, make_client) -> None:
    fake.fail("approvals", 429, times=1, retry_after=1)
    result = await fetch_trust(make_client(), config())
    assert set(result.allow) == {B, G, D}
    assert len(fake.requests_to("approvals")) == 4
