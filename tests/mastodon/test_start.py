"""start(): credentials, instance limits, bot flag, notification policy; config checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from federation.base import Adapter
from federation.errors import AuthError
from federation.mastodon_config import MastodonAccountConfig
from tests.fakes.mastodon_server import FakeMastodon
from tests.mastodon.conftest import MakeAdapter


async def test_start_sets_bot_flag_and_accepts_private_mentions(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    assert fake.bot["bot"] is False
    assert fake.policy["for_private_mentions"] == "filter"  # as recorded
    adapter = await make_adapter(start=False)
    me = await adapter.start()
    assert isinstance(adapter, Adapter)
    assert fake.bot["bot"] is True
    assert fake.policy["for_private_mentions"] == "accept"
    assert fake.policy["for_limited_accounts"] == "filter"  # nothing else touched
    assert me.acct == "fedibot@fake.test" and me.bot and me.id == fake.bot["id"]
    assert adapter.limits.max_characters == 500
    assert adapter.limits.max_media_attachments == 4
    assert adapter.limits.description_limit == 1500
    assert adapter.limits.image_size_limit == 16777216


async def test_start_leaves_account_alone_when_configured_off(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    await make_adapter(set_bot_flag=False, accept_private_mentions=False)
    assert fake.bot["bot"] is False
    assert fake.policy["for_private_mentions"] == "filter"
    assert fake.count("PATCH", "/") == 0


async def test_start_skips_policy_patch_when_already_accepting(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    fake.policy["for_private_mentions"] = "accept"
    await make_adapter()
    assert fake.count("PATCH", "/api/v2/notifications/policy") == 0


async def test_server_without_policy_or_v2_instance_still_starts(
    make_adapter: MakeAdapter, fake: FakeMastodon
) -> None:
    # Akkoma-like: no notification policy endpoint, no /api/v2/instance (GoToSocial has v2).
    fake.policy_supported = False
    fake.instance_v2_supported = False
    fake.max_characters = 5000
    adapter = await make_adapter()
    assert (
        fake.count("GET", "/api/v1/instance") >= 1
    )  # (Mastodon.py reads it again for its version check)
    assert adapter.limits.max_characters == 5000
    assert adapter.limits.description_limit == 1500  # absent in v1: the default
    assert fake.bot["bot"] is True


async def test_description_limit_defaults_when_absent(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    fake.description_limit = None
    adapter = await make_adapter()
    assert adapter.limits.description_limit == 1500


async def test_bad_token_is_an_auth_error(make_adapter: MakeAdapter) -> None:
    adapter = await make_adapter(start=False, access_token="wrong")
    with pytest.raises(AuthError):
        await adapter.start()


def test_config_rejects_unknown_keys_and_bad_values_and_hides_the_token() -> None:
    good = {"name": "main", "base_url": "botsin.space/", "access_token": "tok-123"}
    config = MastodonAccountConfig(**good)
    assert config.base_url == "https://botsin.space"
    assert config.public_reply_visibility == "unlisted"
    assert "tok-123" not in repr(config) and "tok-123" not in str(config.model_dump())
    with pytest.raises(ValidationError, match="extra"):
        MastodonAccountConfig(**good, tokn="x")
    with pytest.raises(ValidationError, match="public_reply_visibility"):
        MastodonAccountConfig(**good, public_reply_visibility="direct")
    with pytest.raises(ValidationError, match="catch_up_interval_seconds"):
        MastodonAccountConfig(**good, catch_up_interval_seconds=0)
    with pytest.raises(ValidationError, match="base_url"):
        MastodonAccountConfig(**{**good, "base_url": "ftp://x"})


async def test_adapter_repr_hides_the_token(make_adapter: MakeAdapter, fake: FakeMastodon) -> None:
    adapter = await make_adapter(start=False)
    assert fake.bot_token not in repr(adapter)
