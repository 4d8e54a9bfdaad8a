"""End-to-end fixtures: a fake Lemmy (0.19 and 1.0), the whole App with the tiny generator.

The tiny pipeline is built once per session; each test gets its own data dir (its own images
and SQLite file) whose `models/tiny` links to the session's build, so nothing is rebuilt.
"""

from __future__ import annotations

import functools
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from fedibot.config.loader import FedibotConfig, parse_config
from tests.e2e_support import Apps, eventually, settled  # noqa: F401 (re-exported to the tests)
from tests.fakes.lemmy_server import FakeLemmy

BOT_PASSWORD = "correct horse"
# Generous limits: only the test about the image budget tightens one on purpose. Polling
# counts against "message", so that one must allow several requests per second.
RATE_LIMITS = {"message": (100_000, 60), "comment": (1000, 60), "image": (1000, 60)}


@pytest.fixture(params=["v3", "v4"])
def api_version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def fake_options() -> dict[str, Any]:
    """Override in a test module to configure the fake (hostname, rate limits...)."""
    return {}


@pytest.fixture
async def fake(api_version: str, fake_options: dict[str, Any]) -> AsyncIterator[FakeLemmy]:
    options = {"rate_limits": dict(RATE_LIMITS), **fake_options}
    async with FakeLemmy(api_version, bot_password=BOT_PASSWORD, **options) as server:
        yield server


def app_config(data_dir: Path, fake: FakeLemmy, **sections: Any) -> FedibotConfig:
    """The bot's config against `fake`: fast polls, fast retries, classifier off."""
    return parse_config(raw_config(data_dir, fake, **sections))


def raw_config(data_dir: Path, fake: FakeLemmy, **sections: Any) -> dict[str, Any]:
    """`app_config` as the dict that config.toml would give (for a `fedibot run` process)."""
    raw: dict[str, Any] = {
        "data_dir": str(data_dir),
        "database": {"url": f"sqlite:///{data_dir / 'fedibot.db'}"},
        "server": {"enabled": False},
        "replies": {"poll_seconds": 0.05},
        "queue": {
            "retry_base_seconds": 0.2,
            "retry_max_seconds": 1.0,
            "reply_retry_max_seconds": 1.0,
        },
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
                "platform": "lemmy",
                "name": "main",
                "base_url": fake.base_url,
                "username": fake.bot["name"],
                "password": BOT_PASSWORD,
                "poll_interval_seconds": 0.05,
                "max_poll_interval_seconds": 0.2,
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


@pytest.fixture
async def apps(data_dir: Path, fake: FakeLemmy) -> AsyncIterator[Apps]:
    """`await apps.start()` → a running App; every App still running is stopped at the end."""
    started = Apps(functools.partial(app_config, data_dir, fake))
    yield started
    await started.stop_all()


_MD = MarkdownIt("commonmark")


def embedded_images(markdown: str) -> list[tuple[str, str, bool]]:
    """(alt text, url, is_image) of every image and link a CommonMark reader sees in a reply.

    The alt text is as written in the markdown source (escapes kept), so that a test can
    tell which characters the bot escaped."""
    found: list[tuple[str, str, bool]] = []
    for token in _MD.parse(markdown):
        children = token.children or []
        for index, child in enumerate(children):
            if child.type == "image":
                found.append((_source_alt(markdown, child), str(child.attrs["src"]), True))
            elif child.type == "link_open":
                text = []
                for inner in children[index + 1 :]:
                    if inner.type == "link_close":
                        break
                    text.append(inner.content)
                found.append(("".join(text), str(child.attrs["href"]), False))
    return found


def _source_alt(markdown: str, image: Any) -> str:
    """The alt text of `image` as it stands in the markdown source."""
    src = str(image.attrs["src"])
    for match in re.finditer(r"!\[((?:\\.|[^\]\\])*)\]\(([^)\s]+)\)", markdown):
        if match[2] == src:
            return match[1]
    return image.content


def uploaded_name(fake: FakeLemmy, url: str) -> str:
    """The pict-rs file name a reply's image URL points at (it must be on the fake)."""
    assert url.startswith(fake.base_url + "/"), url
    return url.rsplit("/", 1)[-1]


def all_read(fake: FakeLemmy) -> bool:
    """The bot's inbox has nothing unread (0.19: three inboxes; 1.0: one notification list)."""
    unread = fake.unread_for(fake.bot)
    if fake.api_version == "v4":
        return unread["notifications"] == 0
    return unread["mentions"] + unread["replies"] + unread["private_messages"] == 0


def answers_to(fake: FakeLemmy, comment: dict[str, Any]) -> list[dict[str, Any]]:
    """The bot's comments directly under `comment`."""
    parent = str(comment["id"])
    return [c for c in fake.comments_by(fake.bot) if c["path"].split(".")[-2] == parent]
