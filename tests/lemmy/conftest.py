"""Fixtures: a fake Lemmy (0.19 and 1.0, every test runs on both), adapters against it, images."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from federation.base import MemoryCursorStore
from federation.lemmy import LemmyAdapter
from federation.lemmy_config import LemmyAccountConfig
from federation.types import Mention
from tests.fakes.lemmy_server import FakeLemmy

BOT_PASSWORD = "correct horse"


@pytest.fixture(params=["v3", "v4"])
def api_version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fake_options() -> dict[str, Any]:
    """Override in a test module (or parametrize) to configure the fake site."""
    return {}


@pytest.fixture
async def fake(api_version: str, fake_options: dict[str, Any]) -> AsyncIterator[FakeLemmy]:
    async with FakeLemmy(api_version, bot_password=BOT_PASSWORD, **fake_options) as server:
        yield server


@pytest.fixture
def make_config(fake: FakeLemmy) -> Callable[..., LemmyAccountConfig]:
    def build(**overrides: Any) -> LemmyAccountConfig:
        values: dict[str, Any] = {
            "name": "main",
            "platform": "lemmy",
            "base_url": fake.base_url,
            "username": fake.bot["name"],
            "password": BOT_PASSWORD,
            "poll_interval_seconds": 0.01,
            "max_poll_interval_seconds": 0.05,
            "request_timeout_seconds": 5,
        }
        values.update(overrides)
        return LemmyAccountConfig.model_validate({k: v for k, v in values.items() if v is not None})

    return build


@pytest.fixture
async def make_adapter(
    make_config: Callable[..., LemmyAccountConfig],
) -> AsyncIterator[Callable[..., LemmyAdapter]]:
    """Adapters against the fake (not started); all are closed at the end."""
    adapters: list[LemmyAdapter] = []

    def build(**overrides: Any) -> LemmyAdapter:
        adapter = LemmyAdapter(make_config(**overrides), MemoryCursorStore())
        adapters.append(adapter)
        return adapter

    yield build
    for adapter in adapters:
        await adapter.close()


@pytest.fixture
async def adapter(make_adapter: Callable[..., LemmyAdapter]) -> LemmyAdapter:
    """A started adapter for the fake's bot account."""
    built = make_adapter()
    await built.start()
    return built


class Collector:
    """A sink that records mentions; `fail` makes it raise instead (not durably queued)."""

    def __init__(self) -> None:
        self.mentions: list[Mention] = []
        self.fail = False
        self.calls = 0

    async def __call__(self, mention: Mention) -> None:
        self.calls += 1
        if self.fail:
            raise RuntimeError("database is down")
        self.mentions.append(mention)


@pytest.fixture
def sink() -> Collector:
    return Collector()


@pytest.fixture
def images(tmp_path: Path) -> Callable[[int], list[Path]]:
    """`images(n)`: n small, distinct PNG files."""

    def build(count: int) -> list[Path]:
        paths = []
        for index in range(count):
            path = tmp_path / f"out-{len(list(tmp_path.glob('out-*.png')))}-{index}.png"
            Image.new("RGB", (8, 8), (index * 40 % 256, 100, 200)).save(path)
            paths.append(path)
        return paths

    return build
