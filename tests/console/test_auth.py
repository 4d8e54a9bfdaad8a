"""Sign-in, sessions, cookies, CSRF and the login rate limit."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from fedibot.console.auth import COOKIE, LOGIN_COOKIE
from fedibot.moderation.allowlist import audit_t, bans_t
from tests.console.conftest import PASSWORD, TOKEN, form_token


async def audit_rows(c: Any) -> list[Any]:
    return await c.ctx.db.run(
        lambda conn: list(conn.execute(select(audit_t).order_by(audit_t.c.id)).all())
    )


async def test_a_page_without_a_session_redirects_to_sign_in(console) -> None:
    response = await console.client.get("/gallery?state=done", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login?next=")
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    assert query["next"] == ["/gallery?state=done"]


async def test_sign_in_sets_a_strict_httponly_cookie_and_is_audited(console) -> None:
    response = await console.login()
    assert response.status == 303 and response.headers["Location"] == "/"
    cookie = response.cookies[COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Strict"
    assert not cookie["secure"]  # plain http, no trusted proxy
    home = await console.client.get("/")
    assert home.status == 200 and "Overview" in await home.text()
    [row] = [r for r in await audit_rows(console) if r.action == "console.login"]
    assert (row.actor, row.target) == ("console:alice", "alice")


async def test_a_token_from_the_environment_signs_in_too(console) -> None:
    response = await console.login("bob", TOKEN)
    assert response.status == 303


async def test_wrong_password_is_refused_and_audited(console) -> None:
    response = await console.login("alice", "wrong")
    assert response.status == 401
    assert "Wrong name or password" in await response.text()
    assert COOKIE not in response.cookies
    assert (await console.client.get("/", allow_redirects=False)).status == 303
    failed = [r for r in await audit_rows(console) if r.action == "console.login_failed"]
    assert [r.target for r in failed] == ["alice"]


async def test_sign_in_form_without_its_token_is_refused(console) -> None:
    await console.client.get("/login")
    response = await console.client.post(
        "/login", data={"name": "alice", "password": PASSWORD}, allow_redirects=False
    )
    assert response.status == 403
    response = await console.client.post(
        "/login",
        data={"csrf": "forged", "name": "alice", "password": PASSWORD},
        allow_redirects=False,
    )
    assert response.status == 403


async def test_next_never_leaves_the_site(console) -> None:
    page = await console.client.get("/login")
    response = await console.client.post(
        "/login",
        data={
            "csrf": form_token(await page.text()),
            "name": "alice",
            "password": PASSWORD,
            "next": "//evil.example/x",
        },
        allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"] == "/"


async def test_failures_per_user_are_limited_then_the_window_passes(console) -> None:
    for _ in range(5):
        assert (await console.login("alice", "wrong")).status == 401
    blocked = await console.login("alice", PASSWORD)  # even the right password waits
    assert blocked.status == 429
    assert "Too many failed sign-ins" in await blocked.text()
    assert (await console.login("bob", TOKEN)).status == 303  # another name is not blocked
    console.clock.now += 15 * 60 + 1
    assert (await console.login("alice", PASSWORD)).status == 303


async def test_failures_per_address_are_limited(console) -> None:
    for i in range(10):
        assert (await console.login(f"nobody{i}", "wrong")).status == 401
    assert (await console.login("alice", PASSWORD)).status == 429


async def test_sign_out_ends_the_session(signed_in) -> None:
    response = await signed_in.post("/logout")
    assert response.status == 303 and response.headers["Location"] == "/login"
    assert (await signed_in.client.get("/", allow_redirects=False)).status == 303
    assert "console.logout" in [r.action for r in await audit_rows(signed_in)]


async def test_an_idle_session_expires(signed_in) -> None:
    signed_in.clock.now += 61 * 60
    assert (await signed_in.client.get("/", allow_redirects=False)).status == 303


async def test_a_form_without_the_csrf_token_is_refused(signed_in) -> None:
    c = signed_in
    for data in ({"acct": "mallory@evil.example"}, {"acct": "mallory@evil.example", "csrf": "x"}):
        response = await c.client.post("/users/ban", data=data, allow_redirects=False)
        assert response.status == 403
    bans = await c.ctx.db.run(lambda conn: conn.execute(select(bans_t)).all())
    assert bans == []
    ok = await c.post("/users/ban", {"acct": "mallory@evil.example"})
    assert ok.status == 303


@pytest.mark.parametrize(
    ("options", "headers", "secure"),
    [
        ({"secure_cookies": "always"}, {}, True),
        ({"trusted_proxies": ["127.0.0.1/32"]}, {"X-Forwarded-Proto": "https"}, True),
        ({}, {"X-Forwarded-Proto": "https"}, False),  # not from a trusted proxy
        ({"trusted_proxies": ["10.0.0.0/8"]}, {"X-Forwarded-Proto": "https"}, False),
    ],
)
async def test_secure_cookie_behind_tls(make_config, clock, options, headers, secure) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from fedibot.console.context import ConsoleContext
    from fedibot.console.web import build_app
    from fedibot.queue.jobs import JobQueue
    from fedibot.storage.database import Database
    from fedibot.storage.migrate import upgrade

    config = make_config(**options)
    db = Database(config.database.url)
    await upgrade(db)
    client = TestClient(TestServer(build_app(ConsoleContext(config, db, JobQueue(db), clock))))
    await client.start_server()
    try:
        page = await client.get("/login", headers=headers)
        # A Secure cookie is not sent back over plain http: hand it over as the browser would
        # over TLS.
        login_cookie = page.cookies[LOGIN_COOKIE].value
        response = await client.post(
            "/login",
            data={"csrf": form_token(await page.text()), "name": "alice", "password": PASSWORD},
            headers={**headers, "Cookie": f"{LOGIN_COOKIE}={login_cookie}"},
            allow_redirects=False,
        )
        assert response.status == 303
        assert bool(response.cookies[COOKIE]["secure"]) is secure
    finally:
        await client.close()
        await db.dispose()
