"""Platform-neutral types shared by every adapter and by the application."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

_OPT_OUT = re.compile(r"(?<![\w#])#(nobot|noai)\b", re.IGNORECASE)


class Visibility(StrEnum):
    """Who may see a post, from widest to narrowest."""

    PUBLIC = "public"
    UNLISTED = "unlisted"
    PRIVATE = "private"  # followers only
    DIRECT = "direct"  # only the mentioned accounts

    @property
    def rank(self) -> int:
        """0 for public … 3 for direct: a larger rank is narrower."""
        return _RANK[self]

    def narrowest(self, other: Visibility) -> Visibility:
        """The narrower of two visibilities (a reply is never wider than its request)."""
        return self if self.rank >= other.rank else other


_RANK = {
    Visibility.PUBLIC: 0,
    Visibility.UNLISTED: 1,
    Visibility.PRIVATE: 2,
    Visibility.DIRECT: 3,
}


@dataclass(frozen=True)
class Account:
    """A fediverse account as the bot sees it."""

    platform: str  # "mastodon" | "lemmy"
    id: str  # the server's id for the account (string, as servers send it)
    acct: str  # always "user@domain", also for local accounts
    display_name: str = ""
    note_text: str = ""  # profile text (bio) as plain text
    bot: bool = False
    url: str | None = None

    @property
    def domain(self) -> str:
        return self.acct.rsplit("@", 1)[-1].lower()

    @property
    def opted_out(self) -> bool:
        """True when the profile carries #nobot or #noai: the bot must not act for them."""
        return bool(_OPT_OUT.search(self.note_text or ""))


@dataclass(frozen=True)
class Attachment:
    """A picture that came with a request, as the server's API reported it.

    `url` is what the bot may fetch (see `federation.attachments`: only from `hosts` the
    adapter vouches for); `source` says where it was found ("status", "parent", "post",
    "comment"). `description` is the requester's alt text."""

    url: str
    mime_type: str = ""  # the server's claim (e.g. "image/png"); "" when it gave none
    description: str = ""
    preview_url: str | None = None
    source: str = "status"
    kind: str = "image"  # image | video | gifv | audio | unknown (Mastodon's `type`)


@dataclass(frozen=True)
class Mention:
    """One request addressed to the bot: a mention, a DM, a reply, or a private message."""

    platform: str
    bot_account: str  # the config name of the bot account that received it
    remote_id: str  # status id (Mastodon), comment id or "pm:<id>" (Lemmy)
    author: Account
    text: str  # plain text with the bot's own @-mention removed
    visibility: Visibility
    created_at: datetime
    in_reply_to_id: str | None = None  # the status/comment this one answers
    language: str | None = None
    sensitive: bool = False  # posted as sensitive / in an NSFW post or community
    spoiler_text: str = ""
    url: str | None = None
    is_private_message: bool = False  # a Lemmy private message (Mastodon DMs use DIRECT)
    edited_at: datetime | None = None
    # platform details the adapter needs later to reply or acknowledge (e.g. Lemmy post_id,
    # notification ids); JSON-serialisable values only.
    context: dict[str, Any] = field(default_factory=dict)
    # pictures attached to the request (or to the post it answers), in the server's order
    attachments: tuple[Attachment, ...] = ()
    # hosts the adapter lets `federation.attachments` fetch this mention's pictures from: its
    # own server's API host and the requester's home server (see docs/picture-input.md)
    media_hosts: tuple[str, ...] = ()


@dataclass(frozen=True)
class MediaItem:
    """One image to attach."""

    path: Path
    alt_text: str
    mime_type: str = "image/png"


@dataclass(frozen=True)
class OutgoingPost:
    """A status, comment or private message the bot is about to send."""

    text: str
    visibility: Visibility
    in_reply_to_id: str | None = None
    media: tuple[MediaItem, ...] = ()
    sensitive: bool = False
    spoiler_text: str = ""
    language: str | None = None
    # Stable per job; Mastodon sends it as Idempotency-Key, Lemmy uses it to find an
    # earlier reply of the bot under the same parent after a crash.
    idempotency_key: str | None = None
    # The account being answered (only this account may be mentioned).
    recipient: Account | None = None
    is_private_message: bool = False
    context: dict[str, Any] = field(default_factory=dict)
    # Uploads made earlier for `media` (one server reference per item, same order: Mastodon
    # media ids, Lemmy image URLs). When set, the adapter attaches these and uploads nothing.
    media_refs: tuple[str, ...] = ()
    # This attempt's short request token, chosen by the post-once path: the same on a retry
    # of a call whose answer never came, while the server still remembers it (see
    # `Adapter.idempotency_window`), else new. Lemmy 1.0 sends it as `Idempotency-Key`.
    request_token: str | None = None
    # Set only when `request_token` repeats an unanswered call: seconds the server is still
    # sure to remember it, counted from the adapter's `post` call. Past it, do not send.
    request_token_ttl: float | None = None


@dataclass(frozen=True)
class PostLookup:
    """What the application knows about earlier attempts of one post (see `find_post`)."""

    key: str  # the post's idempotency key, the same on every attempt
    text: str = ""  # the text of the first attempt (a retry's text may differ slightly)
    media_refs: tuple[str, ...] = ()  # uploads recorded for it before it was posted
    exclude: frozenset[str] = frozenset()  # remote ids of the job's other posts (e.g. notice)
    # Seconds since an earlier attempt's post call that got no answer (a crash, a timeout, a
    # proxy's 502/504: it may have posted); None when every earlier call was answered.
    unsettled_for: float | None = None


@dataclass(frozen=True)
class PostResult:
    """What the server answered for a post."""

    remote_id: str
    url: str | None = None
