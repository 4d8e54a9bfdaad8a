"""`fedibot login mastodon URL` building blocks against the fake server."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlparse

import pytest

from federation.errors import AuthError, TransientError
from federation.mastodon_login import (
    OOB_REDIRECT,
    auth_url,
    exchange_code,
    register_app,
    verify_token,
)
from tests.fakes.mastodon_server import FakeMastodon


async def test_register_authorise_exchange_and_verify(fake: FakeMastodon) -> None:
    client_id, secret = await asyncio.to_thread(
        register_app, fake.base_url, "fedibot", ("read", "write"), "https://example.org/bot"
    )
    app = fake.apps[client_id]
    assert app["client_secret"] == secret and app["website"] == "https://example.org/bot"
    assert app["scopes"] == ["read", "write"] and app["redirect_uri"] == OOB_REDIRECT

    url = await asyncio.to_thread(auth_url, fake.base_url, client_id, secret, allow_http=True)
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    assert f"{parsed.scheme}://{parsed.netloc}{parsed.path}" == fake.base_url + "/oauth/authorize"
    assert query["client_id"] == [client_id] and query["redirect_uri"] == [OOB_REDIRECT]
    assert query["scope"] == ["read write"] and query["response_type"] == ["code"]

    code = fake.issue_code()  # what the operator copies from the authorisation page
    token = await asyncio.to_thread(
        exchange_code, fake.base_url, client_id, secret, code, allow_http=True
    )
    assert fake.tokens[token] == fake.bot["id"]
    assert await asyncio.to_thread(verify_token, fake.base_url, token) == "fedibot@fake.test"

    with pytest.raises(AuthError):  # a code works once
        await asyncio.to_thread(
            exchange_code, fake.base_url, client_id, secret, code, allow_http=True
        )


async def test_pasted_token_is_verified(fake: FakeMastodon) -> None:
    assert (
        await asyncio.to_thread(verify_token, fake.base_url, fake.bot_token) == "fedibot@fake.test"
    )
    with pytest.raises(AuthError):
        await asyncio.to_thread(verify_token, fake.base_url, "not-a-token")


def test_unreachable_server_is_transient() -> None:
    with pytest.raises(TransientError):
        verify_token("http://127.0.0.1:9", "t", timeout=2)
