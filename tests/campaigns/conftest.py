"""Campaign fixtures: a controlled clock, FakeMastodon behind a real MastodonAdapter, the real
queue on a SQLite file and the real tiny generator (built and loaded once per session).

`Bot` is one running bot process without wall-clock waits: `tick(t)` sets the clock, asks the
campaign manager for due runs, then drives the generator worker and the replier until idle.
A restart is `await bot.crash()` followed by a new `Bot` on the same database file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from federation.base import MemoryCursorStore
from federation.mastodon import MastodonAdapter
from fedibot.app import App
from fedibot.config.loader import FedibotConfig, parse_config
from fedibot.queue.work_source import QueueWorkSource
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade
from generator.service import GeneratorService
from generator.worker import Worker
from tests.fakes.mastodon_server import FakeMastodon

# 2030-01-07 00:00:00 UTC, a Monday: minute boundaries are easy to read in failures.
T0 = 1893974400.0


class Clock:
    """time.time() for the queue and the campaign manager, moved by the test."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def service(tiny_data_dir: Path) -> Iterator[GeneratorService]:
    svc = GeneratorService(FedibotConfig.model_validate(_raw(tiny_data_dir)).generator)
    svc.preload("tiny")
    yield svc
    svc.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeMastodon]:
    server = FakeMastodon(heartbeat_interval=0.2)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def _raw(data_dir: Path, db_url: str = "sqlite://", fake: FakeMastodon | None = None) -> dict:
    return {
        "data_dir": str(data_dir),
        "database": {"url": db_url},
        "server": {"enabled": False},
        "queue": {"retry_base_seconds": 1, "retry_max_seconds": 2},
        "generator": {
            "device": "cpu",
            "data_dir": str(data_dir),
            "safety": {"classifier": "none"},
            "lease_seconds": 60,
            "heartbeat_seconds": 10,
            "idle_poll_seconds": 0.05,
            "cpu_threads": 1,
        },
        "accounts": [
            {
                "name": "main",
                "platform": "mastodon",
                "base_url": fake.base_url if fake else "http://127.0.0.1:9",
                "access_token": fake.bot_token if fake else "token",
                "catch_up_interval_seconds": 3600,
            }
        ],
    }


def campaign(**overrides: Any) -> dict[str, Any]:
    """A campaign every minute with three prompts, fast tiny-model options."""
    base: dict[str, Any] = {
        "name": "fox",
        "account": "main",
        "cron": "* * * * *",
        "prompts": ["a red fox", "a fox in the snow", "a sleeping fox"],
        "options": "--steps 2",
        "text": "Fox of the minute: {prompt}",
        "hashtags": ["foxes"],
        "misfire_grace_seconds": 120,
    }
    base.update(overrides)
    return base


@pytest.fixture
def make_config(tmp_path: Path, tiny_data_dir: Path, fake: FakeMastodon) -> Any:
    def make(*campaigns: dict[str, Any], **sections: Any) -> FedibotConfig:
        raw = _raw(tiny_data_dir, f"sqlite:///{tmp_path / 'bot.db'}", fake)
        raw["campaigns"] = list(campaigns) or [campaign()]
        for key, value in sections.items():
            raw[key] = {**raw.get(key, {}), **value}
        return parse_config(raw)

    return make


class Bot:
    """One bot process (an App without its background tasks) on a shared database file."""

    def __init__(self, app: App, adapter: MastodonAdapter, clock: Clock, service: Any) -> None:
        self.app = app
        self.adapter = adapter
        self.clock = clock
        self.service = service
        self.closed = False

    @classmethod
    async def start(
        cls, config: FedibotConfig, fake: FakeMastodon, clock: Clock, service: Any
    ) -> Bot:
        db = Database(config.database.url)
        await upgrade(db)
        adapter = MastodonAdapter(config.account("main"), MemoryCursorStore())  # type: ignore[arg-type]
        adapter.media_poll_initial_delay = 0.01
        await adapter.start()
        app = App(config, adapters={"main": adapter}, service=service, db=db, clock=clock)
        return cls(app, adapter, clock, service)

    @property
    def campaigns(self) -> Any:
        return self.app.campaigns

    async def generate(self) -> None:
        """Run workers until one finds nothing to do (a worker also stops when the per-
        requester cap hides the rest of a campaign's jobs for a moment)."""
        while True:
            worker = Worker(
                QueueWorkSource(self.app.queue),
                self.service,
                self.app.config.generator,
                "test-worker",
                exit_when_empty=True,
            )
            await worker.run()
            if worker.batches_done == 0:
                return

    async def reply(self) -> int:
        handled = 0
        while True:
            count = await self.app.replier.process_once()
            if count == 0:
                return handled
            handled += count

    async def tick(self, at: float, *, catch_up: bool = False) -> list[Any]:
        """The clock reaches `at`: due runs are queued, generated and posted."""
        self.clock.now = at
        if catch_up:
            outcomes = await self.campaigns.catch_up(at)
        else:
            outcomes = await self.campaigns.run_due(at)
        await self.generate()
        await self.reply()
        return outcomes

    async def crash(self) -> None:
        """Stop without finishing anything (only sockets and files are released)."""
        self.closed = True
        await self.adapter.close()
        await self.app.db.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def bots(fake: FakeMastodon, clock: Clock, service: GeneratorService) -> AsyncIterator[Any]:
    """`await bots(config, service=...)` starts a Bot; all are closed at the end."""
    started: list[Bot] = []

    async def start(config: FedibotConfig, service_override: Any = None) -> Bot:
        bot = await Bot.start(config, fake, clock, service_override or service)
        started.append(bot)
        return bot

    yield start
    for bot in started:
        if not bot.closed:
            await bot.crash()
