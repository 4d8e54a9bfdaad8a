"""A recording in-memory adapter for replier/ingest unit tests (the fake servers stay for the
end-to-end suites), after httpx's `MockTransport`: it implements the whole `Adapter`
post-once surface and keeps what was uploaded and posted."""

from __future__ import annotations

from typing import Any

from federation.types import MediaItem, Mention, OutgoingPost, PostLookup, PostResult


class MemoryAdapter:
    name = "main"
    platform = "memory"
    idempotency_window = 0.0

    def __init__(self) -> None:
        self.posts: list[OutgoingPost] = []
        self.uploads: list[MediaItem] = []
        self.deleted: list[str] = []

    def escape_text(self, text: str) -> str:
        return text

    async def upload(self, item: MediaItem) -> str:
        self.uploads.append(item)
        return f"media-{len(self.uploads)}"

    async def media_available(self, ref: str) -> bool:
        return True

    async def find_post(self, post: OutgoingPost, lookup: PostLookup) -> PostResult | None:
        return None

    async def find_existing_reply(self, post: OutgoingPost) -> PostResult | None:
        return None

    async def post(self, post: OutgoingPost) -> PostResult:
        self.posts.append(post)
        return PostResult(remote_id=f"r{len(self.posts)}")

    async def request_exists(self, mention: Mention) -> bool:
        return True

    async def delete(self, remote_id: str) -> None:
        self.deleted.append(remote_id)

    async def close(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:  # listen/start/catch_up are not for unit tests
        raise AttributeError(f"MemoryAdapter has no {name!r}: use a fake server for that")
