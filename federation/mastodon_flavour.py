"""Which Mastodon-API server the bot talks to, and what follows from that.

Pure functions: no network. `detect_flavour` reads the instance endpoint's body; `Flavour`
says how the adapter has to talk to that server. Each rule names the server source it was
read from (see docs/compatibility.md for the versions):

- Mastodon: SSE and WebSocket streaming (`streaming/index.js`), `types[]`, 80 per page.
- GoToSocial (superseriousbusiness/gotosocial@57cb4fe7): WebSocket only at
  `/api/v1/streaming` (`internal/api/client/streaming/streaming.go`), token as
  `?access_token=`, `Sec-WebSocket-Protocol` or the Authorization header (`stream.go`);
  `types[]`, limit clamped to 80 (`notifications/notificationsget.go`,
  `paging/parse.go`); any BCP-47 language (`validate/formvalidation.go`); version
  "0.20.0 git-57cb4fe" (`cmd/gotosocial/main.go`).
- Akkoma (BDX-town/Akkoma@071bb07a, an Akkoma 3.16 fork): WebSocket only (cowboy dispatch
  of `/api/v1/streaming` in `config/config.exs`), token only as `?access_token=` or
  `Sec-WebSocket-Protocol` (`mastodon_api/websocket_handler.ex`); `include_types[]`, no
  `types[]` (`api_spec/operations/notification_operation.ex`), limit capped at 40
  (`pagination.ex`); ISO 639-1 languages only (`common_api/activity_draft.ex`); no
  `/api/v2/instance` (`router.ex`); version "2.7.2 (compatible; Akkoma 3.16.0)"
  (`mastodon_api/views/instance_view.ex`).
- Pleroma (external-mirrors/pleroma@0277b4e8 instance view, @1c3e0930 notifications):
  the same WebSocket handler and pagination as Akkoma; `supported_mime_types:
  ["application/octet-stream"]`; `types[]` and `include_types[]`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Software(StrEnum):
    MASTODON = "mastodon"
    GOTOSOCIAL = "gotosocial"
    AKKOMA = "akkoma"
    PLEROMA = "pleroma"


class StreamKind(StrEnum):
    SSE = "sse"  # GET /api/v1/streaming/user, text/event-stream (Mastodon.py's stream_user)
    WEBSOCKET = "websocket"  # GET /api/v1/streaming?stream=user, upgraded


class TokenPlace(StrEnum):
    """Where a WebSocket handshake carries the access token."""

    HEADER = "authorization"  # Authorization: Bearer (Mastodon, GoToSocial)
    PROTOCOL = "sec-websocket-protocol"  # GoToSocial, Akkoma/Pleroma, Mastodon
    QUERY = "query"  # ?access_token= (every server; ends up in access logs: last resort)


@dataclass(frozen=True)
class Flavour:
    """How one kind of server is talked to."""

    software: Software
    version: str  # the server's own version, e.g. "4.3.0", "0.20.0", "3.16.0"
    raw_version: str  # the instance endpoint's `version` string as sent
    stream_order: tuple[StreamKind, ...]  # tried in this order, once per start
    token_places: tuple[TokenPlace, ...]  # WebSocket handshake, tried in this order
    notification_type_param: str  # "types[]" or "include_types[]"
    notifications_page: int  # the server's maximum page size for notifications
    language_form: str  # "bcp47" (any tag), "mastodon" (639-1/-3 + few regions), "alpha2"

    @property
    def name(self) -> str:
        return _DISPLAY[self.software]

    def describe(self) -> str:
        return f"{self.name} {self.version}".strip()


_DISPLAY = {
    Software.MASTODON: "Mastodon",
    Software.GOTOSOCIAL: "GoToSocial",
    Software.AKKOMA: "Akkoma",
    Software.PLEROMA: "Pleroma",
}

_COMPATIBLE = re.compile(r"\(compatible;\s*(Akkoma|Pleroma)\s+([^)]*)\)", re.IGNORECASE)
_GTS_VERSION = re.compile(r"^\s*(\d+\.\d+\.\d+\S*)(?:\s+git-\w+)?\s*$")
_MASTODON_VERSION = re.compile(r"^\s*(\d+\.\d+\.\d+\S*)")


def flavour_for(software: Software, version: str = "", raw_version: str = "") -> Flavour:
    """The rules for `software` (version only informs the display)."""
    ws_first = (StreamKind.WEBSOCKET, StreamKind.SSE)
    if software is Software.GOTOSOCIAL:
        return Flavour(
            software,
            version,
            raw_version,
            ws_first,
            (TokenPlace.PROTOCOL, TokenPlace.HEADER, TokenPlace.QUERY),
            "types[]",
            80,
            "bcp47",
        )
    if software in (Software.AKKOMA, Software.PLEROMA):
        return Flavour(
            software,
            version,
            raw_version,
            ws_first,
            (TokenPlace.PROTOCOL, TokenPlace.QUERY),
            "include_types[]",
            40,
            "alpha2",
        )
    return Flavour(
        Software.MASTODON,
        version,
        raw_version,
        (StreamKind.SSE, StreamKind.WEBSOCKET),
        (TokenPlace.HEADER, TokenPlace.PROTOCOL, TokenPlace.QUERY),
        "types[]",
        80,
        "mastodon",
    )


MASTODON = flavour_for(Software.MASTODON)


def detect_flavour(v2: Mapping[str, Any] | None, v1: Mapping[str, Any] | None) -> Flavour:
    """The server from `/api/v2/instance` and/or `/api/v1/instance` (either may be None).

    Akkoma and Pleroma say "2.7.2 (compatible; Akkoma 3.16.0)"; GoToSocial says
    "0.20.0 git-57cb4fe" and points `source_url` at its repository; the rest is Mastodon
    (or a fork that behaves like it, e.g. "4.3.0+glitch").
    """
    raw = ""
    source_url = ""
    for body in (v2, v1):
        if isinstance(body, Mapping):
            raw = raw or str(body.get("version") or "")
            source_url = source_url or str(body.get("source_url") or "")
    found = _COMPATIBLE.search(raw)
    if found:
        software = Software.AKKOMA if found.group(1).lower() == "akkoma" else Software.PLEROMA
        return flavour_for(software, found.group(2).strip(), raw)
    gts = _GTS_VERSION.match(raw)
    if "gotosocial" in source_url.lower() or (gts and " git-" in raw):
        return flavour_for(Software.GOTOSOCIAL, gts.group(1) if gts else raw.strip(), raw)
    mastodon = _MASTODON_VERSION.match(raw)
    return flavour_for(Software.MASTODON, mastodon.group(1) if mastodon else raw.strip(), raw)


# ----------------------------------------------------------------------------- language

# Mastodon's regional codes (app/helpers/languages_helper.rb ISO_639_1_REGIONAL: zh-CN,
# zh-HK, zh-TW, zh-YUE); every other tag is matched on its ISO 639-1/-3 language alone.
_MASTODON_REGIONAL = {"zh-cn", "zh-hk", "zh-tw"}
# Script subtags that stand for a Chinese region Mastodon knows.
_ZH_SCRIPT = {"hant": "zh-TW", "hans": "zh-CN"}
# ISO 639-2/3 codes that have an ISO 639-1 equivalent (the common ones).
_ALPHA3_TO_ALPHA2 = {
    "eng": "en",
    "deu": "de",
    "ger": "de",
    "fra": "fr",
    "fre": "fr",
    "spa": "es",
    "ita": "it",
    "por": "pt",
    "nld": "nl",
    "dut": "nl",
    "rus": "ru",
    "jpn": "ja",
    "zho": "zh",
    "chi": "zh",
    "kor": "ko",
    "ara": "ar",
    "pol": "pl",
    "tur": "tr",
    "ukr": "uk",
    "swe": "sv",
    "fin": "fi",
    "nob": "nb",
    "nno": "nn",
    "ces": "cs",
    "cze": "cs",
}
_TAG = re.compile(r"^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*$")


def normalise_language(tag: str | None, form: str) -> str | None:
    """`tag` (BCP-47, as the request carried it) in a form the server takes, or None.

    "bcp47": any well-formed tag (GoToSocial parses BCP-47); "mastodon": ISO 639-1 or -3,
    plus Mastodon's regional variants; "alpha2": ISO 639-1 only (Akkoma, Pleroma).
    """
    if not tag or not _TAG.match(tag.strip()):
        return None
    parts = [p for p in re.split(r"[-_]", tag.strip()) if p]
    primary = parts[0].lower()
    if form == "bcp47":
        return "-".join([primary, *parts[1:]])
    alpha2 = primary if len(primary) == 2 else _ALPHA3_TO_ALPHA2.get(primary)
    if form == "alpha2":
        return alpha2
    # Mastodon
    rest = [p.lower() for p in parts[1:]]
    if (alpha2 or primary) == "zh":
        for sub in rest:
            if sub in _ZH_SCRIPT:
                return _ZH_SCRIPT[sub]
    if alpha2 and rest:
        for sub in rest:
            if f"{alpha2}-{sub}" in _MASTODON_REGIONAL:
                return f"{alpha2}-{sub.upper()}"
    if alpha2:
        return alpha2
    return primary if len(primary) == 3 else None


# ------------------------------------------------------------------------------- media


def mime_accepted(mime_type: str, supported: tuple[str, ...]) -> bool:
    """Whether a server listing `supported` takes `mime_type`.

    An empty list says nothing; Pleroma lists only `application/octet-stream` (it takes any
    file and sniffs it); `image/*` style wildcards cover their family.
    """
    if not supported:
        return True
    mime = mime_type.lower()
    for entry in (s.lower() for s in supported):
        if entry in (mime, "application/octet-stream", "*/*"):
            return True
        if entry.endswith("/*") and mime.startswith(entry[:-1]):
            return True
    return False
