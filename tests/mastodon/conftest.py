"""Fixtures for the Mastodon adapter tests: a started FakeMastodon and adapters bound to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from federation.base import MemoryCursorStore
from federation.mastodon import MastodonAdapter
from federation.mastodon_config import MastodonAccountConfig
from federation.types import Mention
from tests.fakes.mastodon_server import FakeMastodon


class Collector:
    """A MentionSink that records what it got and can be made to wait or fail."""

    def __init__(self) -> None:
        self.mentions: list[Mention] = []
        self.gate: asyncio.Event | None = None
        self.fail_on: set[str] = set()

    async def __call__(self, mention: Mention) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if mention.remote_id in self.fail_on:
            self.fail_on.discard(mention.remote_id)
            raise RuntimeError("sink refused")
        self.mentions.append(mention)

    @property
    def ids(self) -> list[str]:
        return [m.remote_id for m in self.mentions]

    async def wait_for(self, count: int, timeout: float = 60.0) -> None:
        async def _wait() -> None:
            while len(self.mentions) < count:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(_wait(), timeout)


@pytest.fixture
async def fake() -> AsyncIterator[FakeMastodon]:
    server = FakeMastodon(heartbeat_interval=0.2)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def cursors() -> MemoryCursorStore:
    return MemoryCursorStore()


@pytest.fixture
def collector() -> Collector:
    return Collector()


MakeAdapter = Callable[..., Awaitable[MastodonAdapter]]


@pytest.fixture
async def make_adapter(
    fake: FakeMastodon, cursors: MemoryCursorStore
) -> AsyncIterator[MakeAdapter]:
    """`await make_adapter(start=True, cursors=..., **config)` → a (started) adapter."""
    made: list[MastodonAdapter] = []

    async def make(*, start: bool = True, store: Any = None, **overrides: Any) -> MastodonAdapter:
        settings: dict[str, Any] = {
            "name": "main",
            "platform": "mastodon",
            "base_url": fake.base_url,
            "access_token": fake.bot_token,
            "request_timeout_seconds": 10,
            "catch_up_interval_seconds": 3600,
        }
        settings.update(overrides)
        adapter = MastodonAdapter(MastodonAccountConfig(**settings), store or cursors)
        adapter.media_poll_initial_delay = 0.01
        adapter.stream_read_timeout = 5.0
        adapter.reconnect_backoff.base = 0.05
        made.append(adapter)
        if start:
            await adapter.start()
        return adapter

    yield make
    for adapter in made:
        await adapter.close()


async def run_listener(adapter: MastodonAdapter, sink: Collector) -> asyncio.Task:
    return asyncio.create_task(adapter.listen(sink))


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
