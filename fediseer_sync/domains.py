"""The one normal form of an instance name, used on every path (Fediseer sync, policy,
overrides, CLI input and output, config lists): the IDNA 2008 A-label (UTS #46 mapping, so
`MÜNCHEN.test` and `münchen.test` both become `xn--mnchen-3ya.test`), lower case, without a
trailing dot. `display_domain` gives the Unicode form back for people.
"""

from __future__ import annotations

import re

import idna

_ASCII_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")


def _invalid(value: object) -> ValueError:
    return ValueError(f"{value!r} is not a bare domain name (like example.social)")


def normalize_domain(value: str) -> str:
    """`value` in the normal form; ValueError (one line naming the value) otherwise."""
    text = value.strip() if isinstance(value, str) else ""
    if not text or "://" in text or "/" in text or "@" in text:
        raise _invalid(value)
    text = text.rstrip(".")
    try:
        alabel = idna.encode(text, uts46=True, transitional=False).decode("ascii").lower()
        idna.decode(alabel)  # every xn-- label must be valid punycode of a valid U-label
    except (idna.IDNAError, UnicodeError, ValueError):
        raise _invalid(value) from None
    if not _ASCII_DOMAIN.match(alabel):
        raise _invalid(value)
    return alabel


def display_domain(domain: str) -> str:
    """The Unicode form of a normalised domain (the domain itself when it has none)."""
    if "xn--" not in domain:
        return domain
    try:
        return str(idna.decode(domain))
    except (idna.IDNAError, UnicodeError, ValueError):
        return domain


def with_unicode(domain: str) -> str:
    """`xn--mnchen-3ya.test (münchen.test)` for people; plain ASCII names as they are."""
    shown = display_domain(domain)
    return domain if shown == domain else f"{domain} ({shown})"
