"""The fake Fediseer answers the recorded requests exactly as the real server did."""

from __future__ import annotations

import json

import aiohttp
import pytest

from tests.fakes.fediseer_server import FakeFediseer, TrustGraph
from tests.fixtures_path import FEDISEER_FIXTURES

FIXTURE_FILES = sorted(
    p
    for p in FEDISEER_FIXTURES.glob("*.json")
    # endpoints the client does not use (received lists, guarantees) are not served
    if not p.name.startswith(
        ("censures_received", "endorsements_received", "guarantees_of", "guarantors_of")
    )
)
RECORDED_KEY = "key-private.example"


def test_the_fixture_directory_is_covered() -> None:
    assert len(FIXTURE_FILES) == 16


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.stem)
async def test_fake_replays_recorded_answer(path, fake: FakeFediseer) -> None:
    recorded = json.loads(path.read_text())
    method, target = recorded["request"].split(" ", 1)
    headers = {}
    if "with_key" in path.stem:
        headers["apikey"] = RECORDED_KEY
    if path.stem == "bad_apikey":
        headers["apikey"] = "not-a-key"
    if path.stem == "rate_limited_429":
        fake.fail("approvals", 429, retry_after=53)
    async with aiohttp.ClientSession() as session:
        url = fake.base_url.removesuffix("/api/v1") + target
        async with session.request(method, url, headers=headers) as resp:
            body = await resp.json()
            assert resp.status == recorded["status"]
            assert resp.headers["x-ratelimit-limit"] == recorded["headers"]["x-ratelimit-limit"]
            if recorded["status"] == 429:
                assert resp.headers["retry-after"] == recorded["headers"]["retry-after"]
            assert "retry-after" in resp.headers
    assert body == recorded["body"]


async def test_false_flags_are_truthy_on_the_server(fake: FakeFediseer) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{fake.base_url}/approvals/alpha.example?csv=false"
        async with session.get(url) as resp:
            body = await resp.json()
    assert body == {"csv": "beta.example,delta.example,gamma.example", "total": 3}


async def test_server_pages_before_it_filters(fake: FakeFediseer) -> None:
    # alpha,beta endorse beta, delta, gamma (sorted); only gamma has 2 endorsements. Page 1
    # of size 2 holds beta and delta, so it comes back empty although page 2 has gamma.
    async with aiohttp.ClientSession() as session:
        base = f"{fake.base_url}/approvals/alpha.example,beta.example?domains=1&min_endorsements=2"
        async with session.get(base + "&limit=2&page=1") as resp:
            first = await resp.json()
        async with session.get(base + "&limit=2&page=2") as resp:
            second = await resp.json()
    assert first == {"domains": [], "total": 4}
    assert second == {"domains": ["gamma.example"], "total": 4}


async def test_server_cache_ignores_headers() -> None:
    graph = TrustGraph.fixture()
    async with FakeFediseer(graph) as fake, aiohttp.ClientSession() as session:
        url = f"{fake.base_url}/approvals/private.example?domains=true"
        async with session.get(url, headers={"apikey": RECORDED_KEY}) as resp:
            assert resp.status == 200
        # same query string, no key: the cached private answer leaks (the real server does this)
        async with session.get(url) as resp:
            assert resp.status == 200
            assert (await resp.json())["domains"] == ["alpha.example"]
        fake.clear_cache()
        async with session.get(url) as resp:
            assert resp.status == 403


async def test_generated_graph_has_the_asked_size() -> None:
    graph = TrustGraph.generate(500, n_trusted=3, seed=7)
    assert len(graph.trusted) == 3
    others = [d for d in graph.instances if d.startswith("i")]
    assert len(others) == 500
    endorsed = graph.endorsements[graph.trusted[0]]
    assert 200 < len(endorsed) < 400
    assert not set(endorsed) & set(graph.censures.get(graph.trusted[0], {}))
