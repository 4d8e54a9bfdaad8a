"""Fetching a request's attached picture, safely (docs/picture-input.md).

The fetch rule: a picture is fetched only from a URL the server's API reported for the
request (a Mastodon media attachment's `url`, a Lemmy post's image URL or an image in the
comment's markdown — never a link from the text), and only when that URL's host is one the
adapter vouches for (`Mention.media_hosts`: the bot's own server, which serves local copies
of remote media, and the requester's home server) or a subdomain of one of them (media
hosts such as `files.example.social`). Only http(s), no user:password in the URL, at most
three redirects and each one checked by the same rule, a timeout for the whole fetch, a size
cap enforced while reading (not only from Content-Length), and a Content-Type of PNG, JPEG or
WebP (`application/octet-stream` passes here: some servers send it, and the caller decodes
the bytes anyway). Deciding whether the bytes really are a picture is the caller's job
(fedibot.intake.pictures decodes them with Pillow).

The address rule: a host that is not one of `trusted` (the bot's own servers, which the
operator configured) must be reached at public addresses only. The check runs where the
connection is made (a resolver that refuses loopback, private, link-local, shared and
reserved addresses, and the same test for a host written as an IP address), so a requester's
home server whose name resolves to `127.0.0.1` or `169.254.169.254` — at the first request,
at a redirect, or only on the second lookup — cannot make the bot fetch from inside its own
network.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from federation.types import Attachment

if TYPE_CHECKING:
    import aiohttp

PICTURE_TYPES = ("image/png", "image/jpeg", "image/webp")
UNDECLARED = ("application/octet-stream", "binary/octet-stream", "")

# Stable codes (a requester sees them in the reply).
PICTURE_TOO_LARGE = "picture_too_large"
PICTURE_WRONG_TYPE = "picture_wrong_type"
PICTURE_FOREIGN_HOST = "picture_foreign_host"
PICTURE_UNAVAILABLE = "picture_unavailable"


class AttachmentError(Exception):
    """A picture that could not be used, with a stable code and one sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 10 * 1024 * 1024
    timeout_seconds: float = 20.0
    max_redirects: int = 3


@dataclass(frozen=True)
class FetchedPicture:
    data: bytes
    content_type: str
    url: str


def _hostname(netloc_or_host: str) -> str:
    host = netloc_or_host.lower().rsplit("@", 1)[-1]
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.split(":", 1)[0]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def public_address(address: str) -> bool:
    """True for an address on the public internet (not loopback, private, link-local,
    carrier-grade NAT, multicast, reserved; IPv4-mapped IPv6 judged as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local or ip in _LOCAL_NAT64:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: a network's own use
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # RFC 2765
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, Teredo client, NAT64, the old
    IPv4-compatible form): judged as that address, so `64:ff9b::7f00:1` is loopback."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64 or ip in _IPV4_TRANSLATED or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


class PrivateAddressError(OSError):
    """A host that the address rule does not let the bot connect to."""


class PublicOnlyResolver:
    """An aiohttp resolver that answers only public addresses for hosts not in `trusted`."""

    def __init__(self, trusted: frozenset[str]) -> None:
        from aiohttp.resolver import DefaultResolver

        self._inner = DefaultResolver()
        self._trusted = trusted

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        found = await self._inner.resolve(host, port, family)
        public = bool(found) and all(public_address(str(info["host"])) for info in found)
        if not public and not _trusted_name(host, self._trusted):
            raise PrivateAddressError(f"{host} resolves to an address that is not public")
        return list(found)

    async def close(self) -> None:
        await self._inner.close()


def _trusted_name(host: str, trusted: frozenset[str]) -> bool:
    """Exactly one of the trusted names. Not their subdomains: a picture URL in a Lemmy
    comment is the requester's markdown, and `grafana.<bot's domain>` is no media host."""
    return host.lower().rstrip(".") in trusted


def _address_refused(url: str, trusted: frozenset[str]) -> bool:
    """A URL whose host is written as an address, not trusted and not public."""
    host = _hostname(urlsplit(url).netloc).strip("[]")
    return _is_ip(host) and host not in trusted and not public_address(host)


def _private_error() -> AttachmentError:
    return AttachmentError(
        PICTURE_FOREIGN_HOST,
        "the picture's server has a private network address, so I do not fetch it",
    )


def host_allowed(url: str, hosts: tuple[str, ...] | list[str]) -> bool:
    """True when `url` is http(s) without credentials and its host is one of `hosts`
    (exactly, port included when the allowed entry names one) or a subdomain of one."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return False
    netloc = parts.netloc.lower()
    name = _hostname(netloc)
    for allowed in hosts:
        allowed = allowed.lower().strip()
        if not allowed:
            continue
        if netloc == allowed:
            return True
        allowed_name = _hostname(allowed)
        if ":" in allowed.split("]")[-1]:
            continue  # an entry with a port matches only exactly
        if name == allowed_name:
            return True
        if not _is_ip(allowed_name) and "." in allowed_name and name.endswith("." + allowed_name):
            return True
    return False


async def fetch_attachment(
    attachment: Attachment,
    hosts: tuple[str, ...] | list[str],
    limits: FetchLimits | None = None,
    *,
    trusted: tuple[str, ...] | list[str] = (),
    session: aiohttp.ClientSession | None = None,
) -> FetchedPicture:
    """The picture's bytes, or AttachmentError with a stable code. `trusted`: host names
    (no port) that may have private addresses: the bot's own servers. A `session` given
    by the caller must have been made with `PublicOnlyResolver`."""
    import aiohttp  # only when a picture is fetched (admin commands never load it)

    trusted_names = frozenset(_hostname(h).strip("[]").lower() for h in trusted if h)

    limits = limits or FetchLimits()
    if attachment.kind not in ("image", ""):
        raise AttachmentError(
            PICTURE_WRONG_TYPE,
            f"the attachment is not a picture ({attachment.kind}); "
            "send a PNG, JPEG or WebP picture",
        )
    if not attachment.url:
        raise AttachmentError(
            PICTURE_UNAVAILABLE, "your server has not finished processing the picture yet"
        )
    if not host_allowed(attachment.url, hosts):
        raise AttachmentError(
            PICTURE_FOREIGN_HOST,
            "the picture is not stored on your server or mine, so I do not fetch it",
        )
    own = session is None
    client = session or aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=PublicOnlyResolver(trusted_names))  # type: ignore[arg-type]
    )
    try:
        return await asyncio.wait_for(
            _fetch(client, attachment.url, hosts, limits, trusted_names), limits.timeout_seconds
        )
    except TimeoutError:
        raise AttachmentError(
            PICTURE_UNAVAILABLE, "fetching the picture took too long; try again later"
        ) from None
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, PrivateAddressError):
            raise _private_error() from None
        raise AttachmentError(
            PICTURE_UNAVAILABLE, f"the picture could not be fetched ({type(exc).__name__})"
        ) from None
    except aiohttp.ClientError as exc:
        raise AttachmentError(
            PICTURE_UNAVAILABLE, f"the picture could not be fetched ({type(exc).__name__})"
        ) from None
    finally:
        if own:
            await client.close()


async def _fetch(
    client: aiohttp.ClientSession,
    url: str,
    hosts: tuple[str, ...] | list[str],
    limits: FetchLimits,
    trusted: frozenset[str],
) -> FetchedPicture:
    for _ in range(limits.max_redirects + 1):
        if _address_refused(url, trusted):  # an address literal never reaches the resolver
            raise _private_error()
        async with client.get(url, allow_redirects=False) as response:
            if response.status in (301, 302, 303, 307, 308):
                target = response.headers.get("Location", "")
                url = urljoin(url, target)
                if not host_allowed(url, hosts):
                    raise AttachmentError(
                        PICTURE_FOREIGN_HOST,
                        "the picture redirects away from your server, so I do not fetch it",
                    )
                continue
            if response.status >= 400:
                raise AttachmentError(
                    PICTURE_UNAVAILABLE,
                    f"your server answered {response.status} for the picture",
                )
            content_type = (response.content_type or "").lower()
            if content_type not in PICTURE_TYPES and content_type not in UNDECLARED:
                raise AttachmentError(
                    PICTURE_WRONG_TYPE,
                    f"the attachment is {content_type}; send a PNG, JPEG or WebP picture",
                )
            if response.content_length is not None and response.content_length > limits.max_bytes:
                raise _too_large(limits)
            data = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                data.extend(chunk)
                if len(data) > limits.max_bytes:
                    raise _too_large(limits)
            return FetchedPicture(bytes(data), content_type, url)
    raise AttachmentError(PICTURE_UNAVAILABLE, "the picture's address redirects too often")


def _too_large(limits: FetchLimits) -> AttachmentError:
    return AttachmentError(
        PICTURE_TOO_LARGE,
        f"the picture is larger than {limits.max_bytes // 1024} KiB",
    )
