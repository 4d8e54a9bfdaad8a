"""Fixtures: a fake Fediseer on 127.0.0.1 seeded with the recorded trust graph, and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fediseer_sync.client import FediseerClient
from fediseer_sync.config import FediseerConfig
from tests.fakes.fediseer_server import FakeFediseer

TRUSTED = ["alpha.example", "beta.example", "gamma.example"]
AGENT = "fedibot:0.1.0:admin@bot.example"


@pytest.fixture
async def fake() -> AsyncIterator[FakeFediseer]:
    async with FakeFediseer() as server:
        yield server


@pytest.fixture
async def make_client(fake: FakeFediseer) -> AsyncIterator[Callable[..., FediseerClient]]:
    """Build clients against the fake with fast retries; they are closed at the end."""
    clients: list[FediseerClient] = []

    def build(**kwargs: Any) -> FediseerClient:
        kwargs.setdefault("client_agent", AGENT)
        kwargs.setdefault("timeout", 2.0)
        kwargs.setdefault("backoff_base", 0.01)
        kwargs.setdefault("backoff_max", 0.05)
        client = FediseerClient(fake.base_url, **kwargs)
        clients.append(client)
        return client

    yield build
    for client in clients:
        await client.close()


def config(**overrides: Any) -> FediseerConfig:
    values: dict[str, Any] = {"enabled": True, "trusted": TRUSTED, "client_agent": AGENT}
    values.update(overrides)
    return FediseerConfig(**values)
