"""federation.attachments: the fetch rule (docs/picture-input.md) against a small local HTTP
server — hosts, redirects, size cap while reading, content types, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from federation.attachments import (
    AttachmentError,
    FetchLimits,
    fetch_attachment,
    host_allowed,
)
from federation.types import Attachment


def test_the_host_rule() -> None:
    hosts = ("mastodon.example", "127.0.0.1:8080", "remote.example")
    assert host_allowed("https://mastodon.example/system/a.png", hosts)
    assert host_allowed("https://files.mastodon.example/a.png", hosts)  # a media subdomain
    assert host_allowed("http://127.0.0.1:8080/a.png", hosts)
    assert host_allowed("https://remote.example/pictrs/image/a.png", hosts)
    assert not host_allowed("http://127.0.0.1:9090/a.png", hosts)  # other port
    assert not host_allowed("https://evilmastodon.example/a.png", hosts)
    assert not host_allowed("https://mastodon.example.evil.test/a.png", hosts)
    assert not host_allowed("https://user:pw@mastodon.example/a.png", hosts)
    assert not host_allowed("ftp://mastodon.example/a.png", hosts)
    assert not host_allowed("file:///etc/passwd", hosts)
    assert not host_allowed("https://10.0.0.1/a.png", ("1.0.0.1",))  # no suffix match on IPs


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, web.StreamResponse]]]:
    gate = asyncio.Event()

    async def picture(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"\x89PNG" + b"0" * 100, content_type="image/png")

    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)  # no Content-Length: the cap applies while reading
        for _ in range(10):
            await response.write(b"0" * 1000)
        return response

    async def html(request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>", content_type="text/html")

    async def away(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("http://203.0.113.5/a.png")

    async def home(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/picture")

    async def slow(request: web.Request) -> web.StreamResponse:
        await gate.wait()
        return web.Response(body=b"")

    async def missing(request: web.Request) -> web.StreamResponse:
        raise web.HTTPNotFound()

    app = web.Application()
    for name, handler in [
        ("picture", picture),
        ("big", big),
        ("html", html),
        ("away", away),
        ("home", home),
        ("slow", slow),
        ("missing", missing),
    ]:
        app.router.add_get(f"/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}", {}
    finally:
        gate.set()
        await runner.cleanup()


async def fetch(host: str, path: str, **limits: float) -> bytes:
    attachment = Attachment(url=f"http://{host}/{path}")
    return (await fetch_attachment(attachment, (host,), FetchLimits(**limits))).data  # type: ignore[arg-type]


async def code_of(host: str, path: str, **limits: float) -> str:
    with pytest.raises(AttachmentError) as caught:
        await fetch(host, path, **limits)
    return caught.value.code


async def test_fetches_and_follows_redirects_on_the_same_host(server) -> None:
    host, _ = server
    assert (await fetch(host, "picture")).startswith(b"\x89PNG")
    assert (await fetch(host, "home")).startswith(b"\x89PNG")


async def test_refusals_have_stable_codes(server) -> None:
    host, _ = server
    assert await code_of(host, "big", max_bytes=5000) == "picture_too_large"
    assert await code_of(host, "html") == "picture_wrong_type"
    assert await code_of(host, "away") == "picture_foreign_host"
    assert await code_of(host, "missing") == "picture_unavailable"
    assert await code_of(host, "slow", timeout_seconds=0.2) == "picture_unavailable"
    video = Attachment(url=f"http://{host}/picture", kind="video")
    with pytest.raises(AttachmentError, match="picture_wrong_type"):
        await fetch_attachment(video, (host,))
    pending = Attachment(url="")
    with pytest.raises(AttachmentError, match="picture_unavailable"):
        await fetch_attachment(pending, (host,))
