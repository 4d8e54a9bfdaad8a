"""Mastodon.py entities (dicts) → the neutral `Account` / `Mention`, and instance limits.

Pure functions: no network. Works on plain dicts as well as Mastodon.py's AttribAccessDicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

from federation.html_text import html_to_text
from federation.types import Account, Attachment, Mention, Visibility

PLATFORM = "mastodon"

_VISIBILITIES = {v.value: v for v in Visibility}


@dataclass(frozen=True)
class InstanceLimits:
    """What the server accepts in one status."""

    max_characters: int = 500
    max_media_attachments: int = 4
    description_limit: int = 1500
    image_size_limit: int | None = None
    image_matrix_limit: int | None = None
    supported_mime_types: tuple[str, ...] = ()
    domain: str | None = None


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _int(value: Any, default: int | None) -> int | None:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def instance_limits(v2: Mapping[str, Any] | None, v1: Mapping[str, Any] | None) -> InstanceLimits:
    """Limits from `/api/v2/instance`, falling back to `/api/v1/instance` and defaults.

    Pleroma/Akkoma announce `max_toot_chars` at the top of v1; GoToSocial and Mastodon use
    `configuration.statuses`. A missing description limit means the documented 1500.
    """
    v2 = v2 or {}
    v1 = v1 or {}

    def pick(*paths: tuple[str, ...]) -> Any:
        for source in (v2, v1):
            for path in paths:
                value = _get(source, *path)
                if value is not None:
                    return value
        return None

    defaults = InstanceLimits()
    mimes = pick(("configuration", "media_attachments", "supported_mime_types"))
    return InstanceLimits(
        max_characters=_int(
            pick(("configuration", "statuses", "max_characters"), ("max_toot_chars",)),
            defaults.max_characters,
        )
        or defaults.max_characters,
        max_media_attachments=_int(
            pick(
                ("configuration", "statuses", "max_media_attachments"),
                ("max_media_attachments",),  # Pleroma v1, top level
            ),
            defaults.max_media_attachments,
        )
        or defaults.max_media_attachments,
        description_limit=_int(
            pick(
                ("configuration", "media_attachments", "description_limit"), ("description_limit",)
            ),
            defaults.description_limit,
        )
        or defaults.description_limit,
        image_size_limit=_int(
            pick(
                ("configuration", "media_attachments", "image_size_limit"),
                ("upload_limit",),  # Akkoma/Pleroma v1, top level
            ),
            None,
        ),
        image_matrix_limit=_int(
            pick(("configuration", "media_attachments", "image_matrix_limit")), None
        ),
        supported_mime_types=tuple(str(m) for m in mimes) if isinstance(mimes, list) else (),
        domain=(str(v2["domain"]) if v2.get("domain") else None)
        or (str(v1["uri"]) if v1.get("uri") else None),
    )


def domain_of(url: str | None) -> str | None:
    """Host (and port) of a URL, lower-cased."""
    if not url:
        return None
    netloc = urlparse(url).netloc
    return netloc.lower() or None


def full_acct(acct: str, local_domain: str) -> str:
    """Mastodon's `acct` is `user` for local accounts: make it always `user@domain`."""
    acct = str(acct).lstrip("@")
    if "@" in acct:
        user, domain = acct.split("@", 1)
        return f"{user}@{domain.lower()}"
    return f"{acct}@{local_domain.lower()}"


def to_account(data: Mapping[str, Any], local_domain: str) -> Account:
    """An account entity → `Account` (profile note as plain text)."""
    return Account(
        platform=PLATFORM,
        id=str(data.get("id")),
        acct=full_acct(str(data.get("acct") or data.get("username") or ""), local_domain),
        display_name=str(data.get("display_name") or ""),
        note_text=html_to_text(data.get("note") or ""),
        bot=bool(data.get("bot")),
        url=str(data["url"]) if data.get("url") else None,
    )


def to_visibility(value: Any) -> Visibility:
    """The status' visibility; anything unknown (e.g. Akkoma's "local") counts as direct,
    the narrowest, so a reply can never be wider than an odd request."""
    return _VISIBILITIES.get(str(value or "").lower(), Visibility.DIRECT)


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):  # Mastodon.py hands out local-time datetimes
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def mentions_account(status: Mapping[str, Any], account_id: str) -> bool:
    return any(str(m.get("id")) == account_id for m in status.get("mentions") or [])


def ignorable(status: Mapping[str, Any] | None, bot_account_id: str) -> bool:
    """True for what the bot must never act on: nothing, a boost, or its own status."""
    if not status:
        return True
    if status.get("reblog"):
        return True
    return str(_get(status, "account", "id")) == bot_account_id


def status_to_mention(
    status: Mapping[str, Any],
    *,
    bot_name: str,
    bot_account_id: str,
    local_domain: str,
    notification_id: str | None = None,
    api_host: str | None = None,
) -> Mention | None:
    """A status addressed to the bot → `Mention`; None for boosts and the bot's own posts.

    The text has the bot's @-mention removed and other mentions kept as `@user@domain`;
    `context["mentions"]` lists every mentioned account other than the bot.
    """
    if ignorable(status, bot_account_id):
        return None
    mentions = []
    for m in status.get("mentions") or []:
        entry = dict(m)
        entry["acct"] = full_acct(str(m.get("acct") or m.get("username") or ""), local_domain)
        mentions.append(entry)
    text = html_to_text(
        status.get("content") or "", mentions, keep_mentions=True, bot_account_id=bot_account_id
    )
    created = _aware(status.get("created_at")) or datetime.now(UTC)
    context: dict[str, Any] = {
        "status_id": str(status.get("id")),
        "mentions": [m["acct"] for m in mentions if str(m.get("id")) != bot_account_id],
    }
    if notification_id is not None:
        context["notification_id"] = str(notification_id)
    if status.get("in_reply_to_account_id") is not None:
        context["in_reply_to_account_id"] = str(status["in_reply_to_account_id"])
    author = to_account(status.get("account") or {}, local_domain)
    return Mention(
        platform=PLATFORM,
        bot_account=bot_name,
        remote_id=str(status.get("id")),
        author=author,
        text=text,
        visibility=to_visibility(status.get("visibility")),
        created_at=created,
        in_reply_to_id=(
            str(status["in_reply_to_id"]) if status.get("in_reply_to_id") is not None else None
        ),
        language=str(status["language"]) if status.get("language") else None,
        sensitive=bool(status.get("sensitive")),
        spoiler_text=str(status.get("spoiler_text") or ""),  # plain text in the API
        url=str(status.get("url") or status.get("uri") or "") or None,
        edited_at=_aware(status.get("edited_at")),
        context=context,
        attachments=to_attachments(status),
        # the server the bot talks to (its API host and its domain) and the requester's home
        media_hosts=tuple(
            dict.fromkeys(h for h in (api_host, local_domain.lower(), author.domain) if h)
        ),
    )


def to_attachments(status: Mapping[str, Any], source: str = "status") -> tuple[Attachment, ...]:
    """A status' `media_attachments` → `Attachment`s. The MediaAttachment entity
    (docs.joinmastodon.org/entities/MediaAttachment/; app/serializers/rest/
    media_attachment_serializer.rb): `type` image|gifv|video|audio|unknown, `url` (the copy
    on the bot's own server, null while still processing), `preview_url`, `remote_url` (the
    origin: never fetched), `description` (alt text)."""
    found = []
    for media in status.get("media_attachments") or []:
        if not isinstance(media, Mapping):
            continue
        found.append(
            Attachment(
                url=str(media.get("url") or ""),
                description=str(media.get("description") or ""),
                preview_url=str(media["preview_url"]) if media.get("preview_url") else None,
                source=source,
                kind=str(media.get("type") or "unknown"),
            )
        )
    return tuple(found)


def id_key(value: str) -> tuple[int, str]:
    """Sort key for server ids: numeric strings (Mastodon) and ULIDs (GoToSocial) alike."""
    return (len(value), value)
