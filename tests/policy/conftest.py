"""Fixtures for the moderation tests: a fake Fediseer on 127.0.0.1, configs, a policy on a
controlled clock, and a throw-away CLI root group carrying `--config`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import click
import pytest

from fedibot.cli.moderation import allowlist, audit, fediseer, quota, users
from fedibot.config.policy import PolicyConfig, QuotaConfig
from fedibot.moderation.policy import Policy
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.storage.database import Database
from fediseer_sync.config import FediseerConfig
from tests.fakes.fediseer_server import FakeFediseer

TRUSTED = ["alpha.example", "beta.example", "gamma.example"]
AGENT = "fedibot:0.1.0:admin@bot.example"
OWN = "bot.example"


@pytest.fixture
async def fake() -> AsyncIterator[FakeFediseer]:
    async with FakeFediseer(cache_ttl=0) as server:
        yield server


def fediseer_config(base_url: str, **overrides: Any) -> FediseerConfig:
    """Fast failures: no retries, a short timeout."""
    values: dict[str, Any] = {
        "enabled": True,
        "base_url": base_url,
        "trusted": TRUSTED,
        "client_agent": AGENT,
        "deny_censured_by": 2,
        "max_retries": 0,
        "timeout_seconds": 0.5,
    }
    values.update(overrides)
    return FediseerConfig(**values)


class Clock:
    """A settable clock for quotas (epoch seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_policy(
    db: Database,
    mode: str = "blocklist",
    clock: Clock | None = None,
    quotas: QuotaConfig | None = None,
    **policy: Any,
) -> Policy:
    return Policy(
        db,
        PolicyConfig(mode=mode, **policy),
        quotas or QuotaConfig(),
        PromptFilter(),
        own_domains={OWN},
        clock=clock or Clock(1_800_000_000.0),
    )


@click.group()
@click.option("--config", "config", default=None)
def cli_root(config: str | None) -> None:
    """Stands in for the main `fedibot` group."""


for _group in (allowlist, fediseer, users, quota, audit):
    cli_root.add_command(_group)
