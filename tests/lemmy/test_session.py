"""Start-up against the fake Lemmy: version detection, login, bot flag, limits, token expiry."""

from __future__ import annotations

import pytest

from federation.base import Adapter, MemoryCursorStore
from federation.errors import AuthError
from federation.lemmy import LemmyAdapter
from federation.lemmy_api import RateLimits
from tests.fakes.lemmy_server import FakeLemmy
from tests.lemmy.conftest import BOT_PASSWORD


async def test_adapter_implements_the_protocol(adapter: LemmyAdapter) -> None:
    assert isinstance(adapter, Adapter)
    assert (adapter.name, adapter.platform) == ("main", "lemmy")


async def test_version_detection_picks_the_servers_api(adapter, fake: FakeLemmy) -> None:
    assert adapter.api.version == fake.api_version
    assert fake.requests[0].path == "/api/v3/site"
    after_detection = {r.path.split("/")[2] for r in fake.requests[1:] if r.path.startswith("/api")}
    assert after_detection == {fake.api_version}


async def test_a_1_0_server_answering_the_v3_site_is_still_spoken_to_in_v4(make_config) -> None:
    async with FakeLemmy("v4", bot_password=BOT_PASSWORD, v3_compat_site=True) as server:
        config = make_config(base_url=server.base_url)
        adapter = LemmyAdapter(config, MemoryCursorStore())
        try:
            await adapter.start()
        finally:
            await adapter.close()
        assert adapter.api.version == "v4"
        assert [r.path for r in server.requests][:2] == [
            "/api/v3/site",
            "/api/v4/account/auth/login",
        ]


async def test_start_logs_in_sets_the_bot_flag_and_returns_the_bot(
    make_adapter, fake: FakeLemmy
) -> None:
    assert fake.bot["bot_account"] is False
    me = await make_adapter().start()
    assert me.acct == "imagebot@lemmy.test"
    assert me.id == str(fake.bot["id"]) and me.platform == "lemmy" and me.bot
    assert fake.bot["bot_account"] is True
    assert fake.login_count == 1
    settings = [r for r in fake.requests if r.method == "PUT"]
    assert [r.json for r in settings] == [{"bot_account": True}]


async def test_bot_flag_left_alone_when_disabled(make_adapter, fake: FakeLemmy) -> None:
    await make_adapter(set_bot_flag=False).start()
    assert fake.bot["bot_account"] is False
    assert not [r for r in fake.requests if r.method == "PUT"]


async def test_a_configured_jwt_is_used_without_logging_in(make_adapter, fake: FakeLemmy) -> None:
    fake.tokens["issued-earlier"] = fake.bot["id"]
    me = await make_adapter(password=None, jwt="issued-earlier").start()
    assert me.acct == "imagebot@lemmy.test"
    assert fake.login_count == 0
    assert all(r.user in (None, "imagebot") for r in fake.requests)


async def test_wrong_password_is_an_auth_error(make_adapter) -> None:
    with pytest.raises(AuthError, match="login refused"):
        await make_adapter(password="wrong").start()


async def test_site_rate_limits_are_read(make_adapter, fake: FakeLemmy) -> None:
    fake.set_rate_limit("image", 2, 30)
    fake.set_rate_limit("comment", 4, 120)
    adapter = make_adapter()
    await adapter.start()
    assert adapter.limits.image == (2, 30.0)
    assert adapter.limits.comment == (4, 120.0)


def test_missing_rate_limits_fall_back_to_lemmy_defaults() -> None:
    limits = RateLimits.from_site({"site_view": {"local_site_rate_limit": {"image": 0}}})
    assert limits.comment == (6, 600.0) and limits.image == (6, 3600.0)


async def test_an_expired_token_is_renewed_transparently(adapter, fake: FakeLemmy, sink) -> None:
    alice = fake.add_user("alice", domain="remote.example")
    fake.mention(alice, "a cat")
    fake.expire_tokens()
    assert await adapter.catch_up(sink) == 1
    assert fake.login_count == 2
    assert [m.text for m in sink.mentions] == ["a cat"]
    refused = [r for r in fake.requests if r.status == 401]
    assert len(refused) == 1  # one refusal, then the same call again with the new token


async def test_an_expired_jwt_without_a_password_is_an_auth_error(
    make_adapter, fake: FakeLemmy, sink
) -> None:
    fake.tokens["short-lived"] = fake.bot["id"]
    adapter = make_adapter(password=None, jwt="short-lived")
    await adapter.start()
    fake.expire_tokens()
    with pytest.raises(AuthError):
        await adapter.catch_up(sink)


async def test_secrets_never_show_in_reprs(make_adapter) -> None:
    adapter = make_adapter()
    await adapter.start()
    shown = repr(adapter.config) + repr(adapter) + str(adapter.config.model_dump())
    assert BOT_PASSWORD not in shown
    assert adapter._jwt and adapter._jwt not in shown
