"""FediseerClient against the fake server over real HTTP: headers, quirks, errors, retries."""

from __future__ import annotations

import pytest

from fediseer_sync.client import FediseerClient
from fediseer_sync.errors import (
    FediseerAuthError,
    FediseerBadRequest,
    FediseerBadResponse,
    FediseerForbidden,
    FediseerNotFound,
    FediseerRateLimited,
    FediseerRefused,
    FediseerUnavailable,
)
from tests.fakes.fediseer_server import FakeFediseer, TrustGraph
from tests.fediseer.conftest import AGENT


async def test_client_agent_header_is_sent_on_every_request(fake, make_client) -> None:
    client = make_client()
    await client.approvals(["alpha.example"])
    await client.censures_given(["alpha.example"])
    await client.hesitations_given(["beta.example"])
    await client.whitelist_domains()
    assert len(fake.received) == 4
    assert {r.headers.get("Client-Agent") for r in fake.received} == {AGENT}


async def test_apikey_requests_carry_a_fresh_cache_buster(fake, make_client) -> None:
    client = make_client(apikey="key-alpha.example")
    await client.approvals(["alpha.example"])
    await client.approvals(["alpha.example"])
    busters = [r.param("_") for r in fake.received]
    assert all(busters) and busters[0] != busters[1]
    assert {r.headers.get("apikey") for r in fake.received} == {"key-alpha.example"}


async def test_anonymous_requests_send_no_apikey_and_no_cache_buster(fake, make_client) -> None:
    await make_client().approvals(["alpha.example"])
    (request,) = fake.received
    assert request.param("_") is None
    assert "apikey" not in request.headers


async def test_cache_buster_gets_fresh_data_past_the_query_string_cache(fake, make_client) -> None:
    anonymous, keyed = make_client(), make_client(apikey="key-beta.example")
    before = await anonymous.approvals(["alpha.example"])
    assert "delta.example" in {e.domain for e in before}
    fake.graph.withdraw_endorsement("alpha.example", "delta.example")
    stale = await anonymous.approvals(["alpha.example"])
    fresh = await keyed.approvals(["alpha.example"])
    assert "delta.example" in {e.domain for e in stale}  # the server's cache answered
    assert "delta.example" not in {e.domain for e in fresh}


async def test_client_never_sends_false_or_csv_flags(fake, make_client) -> None:
    client = make_client()
    await client.approvals(["alpha.example"])
    await client.approvals_domains(["alpha.example"])
    await client.censures_given(["alpha.example"], reasons=["csam"])
    await client.whitelist_domains()
    for request in fake.received:
        params = dict(request.query)
        assert "csv" not in params
        assert params.get("domains") in (None, "true")
    assert any(r.param("domains") == "true" for r in fake.received)
    assert any(r.param("domains") is None for r in fake.received)


async def test_full_answers_keep_reasons_and_guarantor(make_client) -> None:
    entries = await make_client().approvals(["alpha.example"])
    by_domain = {e.domain: e for e in entries}
    assert by_domain["beta.example"].reasons == ("well moderated",)
    assert by_domain["beta.example"].guarantor == "alpha.example"
    assert by_domain["gamma.example"].reasons == ()
    assert by_domain["delta.example"].guarantor is None
    censures = await make_client().censures_given(["beta.example"])
    assert censures[0].reasons == ("spam", "csam")


async def test_one_large_limit_reads_a_list_in_one_request() -> None:
    graph = TrustGraph.generate(3000, n_trusted=1, seed=3)
    source = graph.trusted[0]
    async with FakeFediseer(graph) as fake, FediseerClient(fake.base_url) as client:
        entries = await client.approvals([source])
        assert len(entries) == len(graph.endorsements[source]) > 1500
        (request,) = fake.received
        assert request.param("limit") == "2000"


async def test_paging_reads_every_page() -> None:
    graph = TrustGraph.generate(300, n_trusted=1, seed=3)
    source = graph.trusted[0]
    async with FakeFediseer(graph) as fake, FediseerClient(fake.base_url, page_size=50) as client:
        entries = await client.approvals([source])
        expected = graph.endorsements[source]
        assert sorted(e.domain for e in entries) == sorted(expected)
        assert len(fake.received) == -(-len(expected) // 50)
        assert [r.param("page") for r in fake.received][:2] == ["1", "2"]


async def test_paging_goes_past_pages_emptied_by_server_side_filtering(fake, make_client) -> None:
    client = make_client(page_size=2)
    domains = await client.approvals_domains(["alpha.example", "beta.example"], min_endorsements=2)
    assert domains == ["gamma.example"]
    assert len(fake.received) == 2


async def test_min_endorsements_above_reference_count_is_a_bad_request(make_client) -> None:
    with pytest.raises(FediseerBadRequest) as info:
        await make_client().approvals(["alpha.example"], min_endorsements=3)
    assert info.value.status == 400
    assert "more endorsements than the amount of reference domains" in info.value.message


@pytest.mark.parametrize(
    ("domain", "apikey", "error", "status"),
    [
        ("alpha.example", "wrong-key", FediseerAuthError, 401),
        ("private.example", None, FediseerForbidden, 403),
        ("nonexistent.example", None, FediseerNotFound, 404),
    ],
)
async def test_refusals_raise_distinct_errors_without_retrying(
    fake, make_client, domain, apikey, error, status
) -> None:
    with pytest.raises(error) as info:
        await make_client(apikey=apikey).approvals([domain])
    assert isinstance(info.value, FediseerRefused)
    assert info.value.status == status
    assert info.value.message  # Fediseer's {"message"} is surfaced
    assert len(fake.received) == 1


async def test_private_list_is_readable_with_its_apikey(make_client) -> None:
    entries = await make_client(apikey="key-private.example").approvals(["private.example"])
    assert [(e.domain, e.reasons) for e in entries] == [("alpha.example", ("secret endorsement",))]


async def test_server_errors_are_retried_then_succeed(fake, make_client) -> None:
    fake.fail("approvals", 500, times=2)
    entries = await make_client(max_retries=3).approvals(["alpha.example"])
    assert len(entries) == 3
    assert len(fake.received) == 3


async def test_server_errors_raise_unavailable_after_bounded_retries(fake, make_client) -> None:
    fake.fail("approvals", 500)
    with pytest.raises(FediseerUnavailable) as info:
        await make_client(max_retries=2).approvals(["alpha.example"])
    assert "500" in str(info.value)
    assert len(fake.received) == 3


async def test_garbage_raises_bad_response_after_retries(fake, make_client) -> None:
    fake.fail("censures_given", "garbage")
    with pytest.raises(FediseerBadResponse):
        await make_client(max_retries=1).censures_given(["alpha.example"])
    assert len(fake.received) == 2


async def test_timeout_raises_unavailable(fake, make_client) -> None:
    fake.fail("approvals", "slow", delay=5.0)
    with pytest.raises(FediseerUnavailable):
        await make_client(timeout=0.2, max_retries=1).approvals(["alpha.example"])
    assert len(fake.received) == 2


async def test_retry_after_is_waited_out_then_succeeds(fake, make_client) -> None:
    fake.fail("approvals", 429, times=1, retry_after=1)
    entries = await make_client().approvals(["alpha.example"])
    assert len(entries) == 3
    first, second = fake.received
    assert second.at - first.at >= 0.95


async def test_rate_limit_waits_are_bounded(fake, make_client) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    fake.fail("approvals", 429, retry_after=7)
    with pytest.raises(FediseerRateLimited) as info:
        await make_client(sleep=record, max_rate_limit_waits=2).approvals(["alpha.example"])
    assert waits == [7, 7]
    assert info.value.retry_after == 7
    assert len(fake.received) == 3


async def test_too_long_retry_after_raises_at_once(fake, make_client) -> None:
    fake.fail("approvals", 429, retry_after=3600)
    with pytest.raises(FediseerRateLimited):
        await make_client(max_retry_after=120).approvals(["alpha.example"])
    assert len(fake.received) == 1


def test_repr_hides_the_apikey() -> None:
    client = FediseerClient("http://127.0.0.1:1/api/v1", apikey="s3cret-key")
    assert "s3cret-key" not in repr(client)
