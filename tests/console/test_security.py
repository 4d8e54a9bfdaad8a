"""Security: no page without a session (every route of the router), user text always
rendered as text, image URLs take ids only, security headers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web

from tests.console.conftest import Console

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
PUBLIC = {"/login"}


def concrete_routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) of every route, dynamic parts filled with 1."""
    out = []
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        if "prefix" in info:  # the static directory
            continue
        path = info.get("path") or re.sub(r"\{[^}]+\}", "1", info.get("formatter", ""))
        if route.method == "HEAD":
            continue
        out.append((route.method, path))
    return out


async def test_no_page_is_reachable_without_a_session(console: Console) -> None:
    await console.seed.job(state="withheld", flagged=True)
    routes = concrete_routes(console.client.server.app)
    assert len(routes) >= 20
    for method, path in routes:
        if path in PUBLIC:
            continue
        response = await console.client.request(method, path, allow_redirects=False)
        if method == "GET":
            assert response.status == 303, (method, path, response.status)
            assert response.headers["Location"].startswith("/login")
        else:
            assert response.status == 403, (method, path, response.status)


async def test_the_static_directory_holds_only_css_and_js(console: Console) -> None:
    for path in ("/static/../web.py", "/static/%2e%2e/web.py", "/static/..%2fweb.py"):
        response = await console.client.get(path, allow_redirects=False)
        assert response.status in (303, 403, 404), path
        assert "def build_app" not in await response.text()


async def test_script_prompts_render_as_text_everywhere(signed_in: Console) -> None:
    c = signed_in
    evil_acct = "x<script>@evil.example"
    held = await c.seed.job(state="withheld", flagged=True, prompt=XSS, requester=evil_acct)
    done = await c.seed.job(prompt=XSS)
    await c.post("/users/ban", {"acct": "mallory@evil.example", "note": XSS})
    await c.post("/allowlist/override", {"domain": "evil.example", "action": "deny", "note": XSS})
    await c.post(f"/jobs/{done}/open", {"why": XSS})
    pages = ["/", "/gallery", f"/jobs/{held}", f"/jobs/{done}", "/review", "/users",
             "/allowlist", "/audit", f"/gallery?requester={XSS}",
             f"/audit?actor={XSS}"]  # fmt: skip
    for path in pages:
        text = await (await c.client.get(path)).text()
        assert "<script>" not in text.replace('<script src="/static/console.js" defer>', ""), path
        assert "onerror=alert" not in text.replace("onerror=alert(1)&gt;", ""), path
        assert "<img src=x" not in text, path
    gallery = await (await c.client.get("/gallery")).text()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in gallery


@pytest.mark.parametrize(
    "path",
    [
        "/jobs/1/images/../../../../etc/passwd",
        "/jobs/1/images/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/jobs/1/images/..%2F..%2Fconsole.db",
        "/jobs/1/images/0.png",
        "/jobs/1/images/-1",
        "/jobs/1/thumbs/%2Fetc%2Fpasswd",
        "/jobs/..%2F..%2Fetc/images/0",
        "/jobs/1/images/99999999999999999999999",
        "/jobs/1/images/0?path=/etc/passwd",
    ],
)
async def test_image_urls_take_ids_only(signed_in: Console, path: str) -> None:
    c = signed_in
    await c.seed.job()
    response = await c.client.get(path, allow_redirects=False)
    body = await response.read()
    assert b"root:" not in body and b"SQLite format" not in body
    if path.endswith("?path=/etc/passwd"):  # the query is ignored: the stored image
        assert response.status == 200 and body.startswith(b"\x89PNG")
    else:
        assert response.status in (303, 404), (path, response.status)


async def test_security_headers_on_every_page(signed_in: Console) -> None:
    for path in ("/", "/login", "/gallery"):
        response = await signed_in.client.get(path)
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"


async def test_templates_autoescape_whatever_their_name(console: Console) -> None:
    from fedibot.console.web import STATE

    state: Any = console.client.server.app[STATE]
    template = state.env.from_string("{{ value }}")
    assert template.render(value="<b>") == "&lt;b&gt;"
