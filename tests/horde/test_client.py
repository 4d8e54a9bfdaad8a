"""HordeClient against the fake over real HTTP: headers, secrets, retries, limits, shapes."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path

import pytest

from generator.horde import codes
from generator.horde.api import GenerationInput, RequestAsync, RequestStatus, RequestStatusCheck
from generator.horde.client import HordeClient, HordeError
from generator.horde.payload import to_payload
from generator.horde.ratelimit import ManualClock, RateLimiter
from tests.fakes.horde_server import FIXTURES, FakeHorde
from tests.horde.conftest import SECRET_KEY, make_config, req


@pytest.fixture
async def client(fake: FakeHorde, clock: ManualClock, tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg = make_config(fake.url, tmp_path, max_retries=3)
    async with HordeClient(cfg.horde, clock=clock, version="1.2.3") as c:
        c.payload = to_payload(cfg, req(1))  # type: ignore[attr-defined]
        yield c


async def test_headers_identify_the_client_and_carry_the_key(client, fake) -> None:  # type: ignore[no-untyped-def]
    got = await client.submit(client.payload)
    await client.check(got.id)
    assert len(fake.headers_seen) == 2
    for h in fake.headers_seen:
        assert h["Client-Agent"] == "fedibot:1.2.3:https://bot.example/about"
        assert h["apikey"] == SECRET_KEY


async def test_anonymous_key_when_none_configured(fake, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_config(fake.url, tmp_path, api_key="")
    async with HordeClient(cfg.horde, clock=clock) as c:
        await c.submit(to_payload(cfg, req(1)))
    assert fake.headers_seen[0]["apikey"] == "0000000000"
    assert fake.submissions[0]["shared"] is True  # anonymous requests are always shared


async def test_the_key_is_never_logged_nor_in_errors(client, fake, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    fake.fail("async", 401, "InvalidAPIKey")
    with pytest.raises(HordeError) as info:
        await client.submit(client.payload)
    fake.fail("check", 500, "", times=2)
    got = await client.submit(client.payload)
    await client.check(got.id)
    with pytest.raises(HordeError) as gone:
        await client.check("no-such-id")
    texts = [caplog.text, str(info.value), repr(info.value), str(gone.value), repr(client.config)]
    assert "InvalidAPIKey" in str(info.value) and info.value.code == codes.HORDE_AUTH
    assert all(SECRET_KEY not in t for t in texts)
    assert "horde" in caplog.text  # something was logged, just not the key


async def test_get_retries_5xx_with_backoff(client, fake, clock) -> None:  # type: ignore[no-untyped-def]
    got = await client.submit(client.payload)
    fake.fail("check", 502, "", times=2)
    before = clock.now()
    chk = await client.check(got.id)
    assert isinstance(chk, RequestStatusCheck)
    assert len(fake.check_times[got.id]) == 1  # two 502s answered by the middleware, then this
    assert clock.now() - before >= 1.0 + 2.0  # backoff 1 s, 2 s


async def test_post_retries_429_and_503_but_not_500(client, fake) -> None:  # type: ignore[no-untyped-def]
    fake.fail("async", 429, "TooManyPrompts")
    fake.fail("async", 503, "MaintenanceMode")
    got = await client.submit(client.payload)
    assert got.id in fake.requests
    fake.fail("async", 500, "")
    with pytest.raises(HordeError) as info:
        await client.submit(client.payload)
    assert info.value.ambiguous and len(fake.submissions) == 1


async def test_connection_refused_is_retried_then_busy(fake, clock, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = make_config("http://127.0.0.1:9/api", tmp_path, max_retries=2)
    async with HordeClient(cfg.horde, clock=clock) as c:
        with pytest.raises(HordeError) as info:
            await c.check("x")
    assert info.value.code == codes.HORDE_BUSY and len(c.calls) == 3


@pytest.mark.parametrize(
    ("status", "rc", "code"),
    [
        (400, "CorruptPrompt", codes.HORDE_REJECTED),
        (400, "InvalidSize", codes.HORDE_BAD_REQUEST),
        (401, "InvalidAPIKey", codes.HORDE_AUTH),
        (403, "KudosUpfront", codes.HORDE_KUDOS),
        (403, "SomeFutureRc", codes.HORDE_AUTH),
        (400, "SomeFutureRc", codes.HORDE_BAD_REQUEST),
    ],
)
async def test_rc_codes_map_to_stable_codes(client, fake, status, rc, code) -> None:  # type: ignore[no-untyped-def]
    fake.fail("async", status, rc)
    with pytest.raises(HordeError) as info:
        await client.submit(client.payload)
    assert (info.value.code, info.value.rc, info.value.ambiguous) == (code, rc, False)


async def test_status_shares_its_window_with_cancel(client, fake, clock) -> None:  # type: ignore[no-untyped-def]
    got = await client.submit(client.payload)
    start = clock.now()
    for _ in range(10):
        await client.status(got.id)
    await client.cancel(got.id)  # the 11th call on /status/{id}: must wait for the window
    assert clock.now() - start >= 60.0 and fake.rate_limited == 0


async def test_rate_limiter_is_a_sliding_window() -> None:
    clock = ManualClock(0.0)
    lim = RateLimiter(2, 10.0, clock)
    for _ in range(5):
        await lim.acquire("a")
    await lim.acquire("b")  # other keys are independent
    assert clock.sleeps == [10.0, 10.0]
    assert clock.now() == 20.0 and lim.delay("a") == 0.0  # one of two slots used at t=20
    await lim.acquire("a")
    assert lim.delay("a") == pytest.approx(10.0)


def test_models_accept_the_published_examples() -> None:
    def load(name: str) -> dict:  # type: ignore[type-arg]
        return json.loads((FIXTURES / name).read_text())

    assert RequestAsync.model_validate(load("_v2_generate_async_post_202.json")).warnings
    st = RequestStatus.model_validate(load("_v2_generate_status_id_get_200.json"))
    assert st.generations[0].gen_metadata[0].type == "lora"
    RequestStatus.model_validate(load("_v2_generate_status_id_delete_200.json"))
    RequestStatusCheck.model_validate(load("_v2_generate_check_id_get_200.json"))
    example = load("_v2_generate_async_post.json")
    ours = to_payload(
        make_config("http://x/api", Path("."), webhook_url="https://h.example/x"), req(1, n=3)
    ).body()
    params = ours["params"]
    assert isinstance(params, dict)
    assert set(ours) <= set(example) and set(params) <= set(example["params"])
    GenerationInput.model_validate(ours)


async def test_back_to_back_checks_are_spaced_by_the_limiter(client, fake, clock) -> None:  # type: ignore[no-untyped-def]
    got = await client.submit(client.payload)
    other = await client.submit(client.payload)
    for _ in range(4):
        await client.check(got.id)
        await client.check(other.id)
    for rid in (got.id, other.id):
        times = fake.check_times[rid]
        assert len(times) == 4
        assert min(b - a for a, b in itertools.pairwise(times)) >= 1.0
    assert clock.now() - fake.requests[got.id].submitted_at < 4.5  # keys do not block each other
