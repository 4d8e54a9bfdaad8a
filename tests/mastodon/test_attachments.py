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
    public_address,
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


served: list[str] = []  # paths the test server answered


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, dict[str, web.StreamResponse]]]:
    gate = asyncio.Event()

    async def picture(request: web.Request) -> web.StreamResponse:
        served.append(request.path)
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

    async def inward(request: web.Request) -> web.StreamResponse:
        port = request.url.port
        raise web.HTTPFound(f"http://localhost:{port}/picture")

    app = web.Application()
    for name, handler in [
        ("picture", picture),
        ("big", big),
        ("html", html),
        ("away", away),
        ("home", home),
        ("slow", slow),
        ("missing", missing),
        ("inward", inward),
    ]:
        app.router.add_get(f"/{name}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    served.clear()
    try:
        yield f"127.0.0.1:{port}", {}
    finally:
        gate.set()
        await runner.cleanup()


async def fetch(host: str, path: str, **limits: float) -> bytes:
    """From the test server, which stands for the bot's own server (a trusted address)."""
    attachment = Attachment(url=f"http://{host}/{path}")
    limit = FetchLimits(**limits)  # type: ignore[arg-type]
    return (await fetch_attachment(attachment, (host,), limit, trusted=("127.0.0.1",))).data


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


def test_the_address_rule() -> None:
    for private in (
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.7",
        "172.16.5.5",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fd00::1",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "fec0::1",  # site-local
        "64:ff9b:1::7f00:1",  # local-use NAT64 (RFC 8215)
        "::ffff:0:7f00:1",  # IPv4-translated 127.0.0.1 (RFC 2765)
        "not an address",
    ):
        assert not public_address(private), private
    for public in (
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "[2a00:1450::1]",
        "64:ff9b::5db8:d822",  # NAT64 of a public address
    ):
        assert public_address(public), public


async def test_a_home_server_at_a_private_address_is_not_fetched(server) -> None:
    """The requester's home server (allowed by the host rule) written as a loopback address,
    and not one of the bot's own servers: refused before any request."""
    host, _ = server
    attachment = Attachment(url=f"http://{host}/picture")
    with pytest.raises(AttachmentError) as caught:
        await fetch_attachment(attachment, (host,))
    assert caught.value.code == "picture_foreign_host"
    assert "private network address" in caught.value.message
    assert served == []


async def test_a_home_server_whose_name_resolves_to_loopback_is_not_fetched(server) -> None:
    host, _ = server
    port = host.rsplit(":", 1)[1]
    named = f"localhost:{port}"
    attachment = Attachment(url=f"http://{named}/picture")
    with pytest.raises(AttachmentError) as caught:
        await fetch_attachment(attachment, (named,))
    assert caught.value.code == "picture_foreign_host"
    assert served == []
    # the same name is fine when it is the bot's own server
    fetched = await fetch_attachment(attachment, (named,), trusted=("localhost",))
    assert fetched.data.startswith(b"\x89PNG") and served == ["/picture"]
    # a look-alike of the own server's name is not
    with pytest.raises(AttachmentError):
        await fetch_attachment(attachment, (named,), trusted=("host",))
    assert served == ["/picture"]


def test_only_the_exact_trusted_names_may_have_private_addresses() -> None:
    """Not subdomains: a Lemmy comment's picture URL is the requester's own markdown."""
    from federation.attachments import _trusted_name

    trusted = frozenset({"social.example", "10.0.0.5"})
    assert _trusted_name("social.example", trusted)
    assert _trusted_name("Social.Example.", trusted)
    assert _trusted_name("10.0.0.5", trusted)
    assert not _trusted_name("grafana.social.example", trusted)
    assert not _trusted_name("evilsocial.example", trusted)
    assert not _trusted_name("social.example.evil.test", trusted)


async def test_a_redirect_into_the_private_network_is_not_followed(server) -> None:
    """The bot's own server (trusted) redirects to a name that resolves to loopback."""
    host, _ = server
    port = host.rsplit(":", 1)[1]
    attachment = Attachment(url=f"http://{host}/inward")
    with pytest.raises(AttachmentError) as caught:
        await fetch_attachment(attachment, (host, f"localhost:{port}"), trusted=("127.0.0.1",))
    assert caught.value.code == "picture_foreign_host"
    assert served == []
