"""The Mastodon adapter's budgets over real HTTP to FakeMastodon: the documented defaults,
config, and adjustment down by `X-RateLimit-*` headers and 429s.

Shapes: Mastodon sends `X-RateLimit-Limit/Remaining/Reset` (ISO-8601 reset) on API
responses for the most limited throttle (`app/controllers/concerns/rate_limit_headers.rb`)
and answers a throttled request 429 with the same headers and `X-RateLimit-Remaining: 0`
(`config/initializers/rack_attack.rb`, `throttled_responder`); the fake does both.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from federation.base import MemoryCursorStore
from federation.budgets import BudgetLimit
from federation.errors import TransientError
from federation.mastodon import MastodonAdapter
from federation.mastodon_config import MastodonAccountConfig
from federation.types import MediaItem, OutgoingPost, Visibility
from fedibot.storage.budgets import BudgetLedger
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade
from tests.fakes.mastodon_server import FakeMastodon


@pytest.fixture
async def fake() -> AsyncIterator[FakeMastodon]:
    server = FakeMastodon(heartbeat_interval=0.2, limits={"media": (10, 1800.0)})
    await server.start()
    try:
        yield server
    finally:
        await server.close()


def adapter_for(fake: FakeMastodon, **extra: object) -> MastodonAdapter:
    config = MastodonAccountConfig.model_validate(
        {
            "name": "main",
            "base_url": fake.base_url,
            "access_token": fake.bot_token,
            "accept_private_mentions": False,
            **extra,
        }
    )
    adapter = MastodonAdapter(config, MemoryCursorStore())
    adapter.media_poll_initial_delay = 0.01
    return adapter


def image_post(tmp_path: Path) -> OutgoingPost:
    path = tmp_path / "img.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(path)
    return OutgoingPost(
        text="here", visibility=Visibility.UNLISTED, media=(MediaItem(path, "alt"),)
    )


async def test_defaults_config_and_lowering_by_headers(fake: FakeMastodon, tmp_path: Path) -> None:
    adapter = adapter_for(fake)
    assert adapter.budget_limits() == {
        "statuses": BudgetLimit(limit=300, per_seconds=10800),
        "media": BudgetLimit(limit=30, per_seconds=1800),
    }
    configured = adapter_for(fake, budgets={"media": {"limit": 20, "per_seconds": 3600}})
    assert configured.budget_limits()["media"] == BudgetLimit(limit=20, per_seconds=3600)

    await adapter.start()
    post = image_post(tmp_path)
    assert adapter.budget_cost(post) == {"statuses": 1, "media": 1}
    await adapter.post(post)
    # the server announced 10 uploads per period: the budget goes down, never up
    assert adapter.budget_limits()["media"] == BudgetLimit(limit=10, per_seconds=1800)
    hint = adapter.budget_hints()["media"]
    assert hint.remaining == 9 and hint.reset_at is not None and hint.reset_at > time.time()
    await adapter.close()
    await configured.close()


async def test_a_429_holds_the_durable_budget_until_the_servers_reset(
    fake: FakeMastodon, tmp_path: Path
) -> None:
    adapter = adapter_for(fake)
    await adapter.start()
    fake.exhaust("media", reset_in=600)
    post = image_post(tmp_path)
    with pytest.raises(TransientError):
        await adapter.post(post)
    hint = adapter.budget_hints()["media"]
    assert hint.remaining == 0
    assert hint.reset_at == pytest.approx(time.time() + 600, abs=5)

    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    await upgrade(db)
    ledger = BudgetLedger(db)
    wait = await ledger.acquire(
        "main", 1, adapter.budget_cost(post), adapter.budget_limits(), adapter.budget_hints()
    )
    assert wait == pytest.approx(600, abs=5)
    await adapter.close()
    await db.dispose()
