"""The one small protocol every platform adapter implements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from federation.types import Account, MediaItem, Mention, OutgoingPost, PostLookup, PostResult

# Called by an adapter for every mention it receives. It returns only after the mention is
# durably recorded (or deliberately ignored); only then may the adapter acknowledge it
# (advance a cursor, mark it read). Raising means "not recorded": do not acknowledge.
MentionSink = Callable[[Mention], Awaitable[None]]


class CursorStore(Protocol):
    """Durable key/value storage for an adapter's catch-up cursors (e.g. notification min_id)."""

    async def get_cursor(self, key: str) -> str | None: ...

    async def set_cursor(self, key: str, value: str) -> None: ...


class MemoryCursorStore:
    """In-memory CursorStore for tests and dry runs."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get_cursor(self, key: str) -> str | None:
        return self.values.get(key)

    async def set_cursor(self, key: str, value: str) -> None:
        self.values[key] = value


@runtime_checkable
class Adapter(Protocol):
    """A bot account on one server.

    `name` is the account's name in config (e.g. "main"), `platform` is "mastodon" or "lemmy".
    """

    name: str
    platform: str

    @property
    def idempotency_window(self) -> float:
        """Seconds the server surely remembers a request token (`OutgoingPost.request_token`)
        and refuses its repeat; 0.0 when the adapter does not rely on one."""
        ...

    async def start(self) -> Account:
        """Verify credentials, set the bot flag etc.; return the bot's own account."""
        ...

    async def listen(self, sink: MentionSink) -> None:
        """Receive mentions forever (stream/poll + catch-up), calling `sink` for each one.

        Never returns normally; cancelled to stop. Reconnects with backoff on failures and
        catches up from the stored cursor after every reconnect, so nothing is lost.
        """
        ...

    async def catch_up(self, sink: MentionSink) -> int:
        """Fetch everything since the stored cursor once; return how many mentions were seen."""
        ...

    async def post(self, post: OutgoingPost) -> PostResult:
        """Upload media and publish. Raises TransientError / PermanentError / RemoteGone.

        With `post.media_refs` set, attach those earlier uploads and upload nothing. The
        visibility is mapped to what the platform has (never wider); `post.text` is sent as
        it is (user parts were escaped with `escape_text` when it was composed).
        """
        ...

    async def find_existing_reply(self, post: OutgoingPost) -> PostResult | None:
        """An earlier reply by the bot for the same idempotency key, if the server has one."""
        ...

    # --- the post-once contract (docs/outbound.md); the application calls these through
    # `fedibot.outbound.post_once.PostOnce`, never `post` directly.

    def escape_text(self, text: str) -> str:
        """User-written text (a prompt, an error quoting it) made inert for this platform:
        it renders as typed but mentions nobody, tags nothing, starts no markup."""
        ...

    async def upload(self, item: MediaItem) -> str:
        """Upload one image (paced; processing awaited); return the reference that `post`
        attaches via `media_refs` (Mastodon: media id; Lemmy: image URL)."""
        ...

    async def media_available(self, ref: str) -> bool:
        """True while an earlier upload can still be attached (Mastodon: `GET
        /api/v1/media/:id` answers 200, 404 once gone or attached; Lemmy: the URL exists)."""
        ...

    async def find_post(self, post: OutgoingPost, lookup: PostLookup) -> PostResult | None:
        """The bot's post made by an earlier attempt of `post`, if the server has it.

        Replies are searched under their parent, posts without a parent among the bot's own
        recent posts. A match carries one of `lookup.media_refs`, or the platform's marker of
        `lookup.key`, or (text-only posts on servers without markers) `lookup.text`; ids in
        `lookup.exclude` never match. Asked on every attempt after the first, whatever the
        idempotency key's lifetime on the server.
        """
        ...

    async def request_exists(self, mention: Mention) -> bool:
        """False when the request was deleted or removed since it was received."""
        ...

    async def delete(self, remote_id: str) -> None:
        """Delete one of the bot's own posts."""
        ...

    async def close(self) -> None: ...
