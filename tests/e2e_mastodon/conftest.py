"""End-to-end fixtures: a fake Mastodon, the whole App with the tiny generator, a real SQLite
file per test.

The tiny pipeline is the session's build (`tiny_data_dir`); each test gets its own data dir
(its own images and SQLite file) whose `models/tiny` links to that build, so nothing is
rebuilt and job ids of different tests never share an image folder.
"""

from __future__ import annotations

import functools
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from federation.budgets import BudgetLimit
from federation.mastodon import MastodonAdapter
from federation.pacing import Budget
from fedibot.app import App
from fedibot.config.loader import FedibotConfig, parse_config
from tests.e2e_support import (  # noqa: F401 (re-exported to the tests)
    NO_QUOTAS,
    Apps,
    eventually,
    settled,
    to_toml,
)
from tests.fakes.mastodon_server import FakeMastodon

# High enough that only the tests about rate limits ever meet one.
HIGH_LIMITS = {
    "api": (100_000, 300.0),
    "statuses": (100_000, 3 * 3600.0),
    "media": (100_000, 1800.0),
}


class HoldingMastodon(FakeMastodon):
    """A FakeMastodon that can hold `POST /api/v1/statuses` open, to crash the bot there.

    `hold_statuses(after_create=False)`: the next status posts wait (nothing created) and
    answer 503 once released. `after_create=True`: the status is created on the server first
    and only the response is held — the bot never learns its reply exists.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._gate: asyncio.Event | None = None
        self._after_create = False
        self.held = 0  # status posts currently or previously held

    def hold_statuses(self, *, after_create: bool) -> None:
        self._gate = asyncio.Event()
        self._after_create = after_create

    def release(self) -> None:
        """Let held posts finish and stop holding new ones."""
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    async def _post_status(self, request: web.Request) -> web.Response:
        gate = self._gate
        if gate is None:
            return await super()._post_status(request)
        if not self._after_create:
            self.held += 1
            await gate.wait()
            return self._error(503, "held, then refused")
        response = await super()._post_status(request)
        self.held += 1
        await gate.wait()
        return response


@pytest.fixture
def fake_options() -> dict[str, Any]:
    """Override in a test module to configure the fake."""
    return {}


@pytest.fixture
async def fake(fake_options: dict[str, Any]) -> AsyncIterator[HoldingMastodon]:
    options = {"heartbeat_interval": 0.2, "limits": dict(HIGH_LIMITS), **fake_options}
    server = HoldingMastodon(**options)
    await server.start()
    try:
        yield server
    finally:
        server.release()
        await server.close()


def raw_config(data_dir: Path, fake: FakeMastodon, **sections: Any) -> dict[str, Any]:
    """The bot's config (as the dict config.toml would give) against `fake`."""
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "database": {"url": f"sqlite:///{data_dir / 'bot.db'}"},
        "server": {"enabled": False},
        "replies": {"poll_seconds": 0.05},
        "queue": {
            "retry_base_seconds": 0.2,
            "retry_max_seconds": 1.0,
            "reply_retry_max_seconds": 1.0,
            "per_requester_in_flight": 4,
        },
        "quotas": NO_QUOTAS,
        "generator": {
            "device": "cpu",
            "cpu_threads": 1,
            "idle_poll_seconds": 0.05,
            "lease_seconds": 30,
            "heartbeat_seconds": 5,
            "safety": {"classifier": "none"},
        },
        "accounts": [
            {
                "platform": "mastodon",
                "name": "main",
                "base_url": fake.base_url,
                "access_token": fake.bot_token,
                "request_timeout_seconds": 10,
            }
        ],
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return raw


def app_config(data_dir: Path, fake: FakeMastodon, **sections: Any) -> FedibotConfig:
    return parse_config(raw_config(data_dir, fake, **sections))


def tune(adapter: MastodonAdapter) -> None:
    """Test speed: fast media polls and reconnects; the 30-uploads-per-30-minutes budget
    off (the fake's limits are high), so a burst is paced by the server's headers."""
    adapter.media_poll_initial_delay = 0.01
    adapter.stream_read_timeout = 5.0
    adapter.reconnect_backoff.base = 0.05
    adapter.media_budget = Budget("media", None, None)
    # The durable posting budgets (fedibot/storage/budgets.py) as high as the fake's.
    adapter.budgets = {
        kind: BudgetLimit(limit=100_000, per_seconds=limit.per_seconds)
        for kind, limit in adapter.budgets.items()
    }


def tune_app(app: App) -> None:
    for adapter in app.adapters.values():
        assert isinstance(adapter, MastodonAdapter)
        tune(adapter)


@pytest.fixture
async def apps(data_dir: Path, fake: HoldingMastodon) -> AsyncIterator[Apps]:
    """`await apps.start()` → a running App; every App still running is stopped at the end."""
    started = Apps(functools.partial(app_config, data_dir, fake), prepare=tune_app)
    yield started
    await started.stop_all()


def bot_statuses(fake: FakeMastodon) -> list[dict[str, Any]]:
    """Every status of the bot that still exists on the server, oldest first."""
    return [s for s in fake.statuses.values() if s["account"]["id"] == fake.bot["id"]]


def replies_to(fake: FakeMastodon, status_id: str) -> list[dict[str, Any]]:
    """The bot's posted statuses (as the bot got them back) in reply to `status_id`."""
    return [
        s
        for s in fake.posted_statuses
        if s["in_reply_to_id"] == status_id and s["account"]["id"] == fake.bot["id"]
    ]


def posted_text(fake: FakeMastodon, status_id: str) -> str:
    """The plain text the bot sent for one of its statuses."""
    for status, params in zip(fake.posted_statuses, fake.post_params, strict=True):
        if status["id"] == status_id:
            return str(params.get("status", ""))
    raise KeyError(status_id)
