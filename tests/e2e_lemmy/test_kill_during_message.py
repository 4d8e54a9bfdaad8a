"""A real `fedibot run` is SIGKILLed after Lemmy 1.0 created its private message to a remote
user and before the answer arrived; the restarted bot must not send the message twice.

Lemmy 1.0 cannot list that message (no notification row for a remote recipient), so the
restart relies on the repeated `Idempotency-Key` inside the server's memory of it, and past
that memory waits for the operator (`delivery_unconfirmed`). The restarted App runs on a
clock anchored at the recorded send time, so "how long the bot was down" is set by the
test, not by how fast this machine restarts.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from federation.lemmy import UNKNOWN_PM
from tests.e2e_lemmy.conftest import BOT_PASSWORD, RATE_LIMITS, Apps, eventually, raw_config
from tests.e2e_support import run_then_sigkill
from tests.fakes.lemmy_server import FakeLemmy

PM_PATH = "/api/v4/private_message"


class HoldingLemmy(FakeLemmy):
    """Creates the next private message, then holds the answer until `release()`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gate: asyncio.Event | None = asyncio.Event()
        self.held = 0

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.set()

    async def _h_pm_create(self, request: web.Request) -> web.Response:
        response = await super()._h_pm_create(request)
        gate = self._gate
        if gate is not None:
            self.held += 1
            await gate.wait()
        return response


class ServerClock:
    """The fake's clock for its idempotency memory: stands still unless a test moves it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server_clock() -> ServerClock:
    return ServerClock()


@pytest.fixture
async def fake(server_clock: ServerClock) -> AsyncIterator[FakeLemmy]:
    server = HoldingLemmy("v4", bot_password=BOT_PASSWORD, rate_limits=dict(RATE_LIMITS))
    server.set_clock(server_clock)
    async with server:
        yield server


@pytest.mark.parametrize("down_for", [30, 600], ids=["restarted-at-once", "down-10-minutes"])
async def test_killed_after_lemmy_created_the_message_it_is_never_sent_twice(
    fake: HoldingLemmy,
    server_clock: ServerClock,
    apps: Apps,
    data_dir: Path,
    tmp_path: Path,
    down_for: float,
) -> None:
    raw = raw_config(data_dir, fake)
    # The held answer must not time out on the bot's side before the test kills it.
    raw["accounts"][0]["request_timeout_seconds"] = 600
    alice = fake.add_user("alice", domain="remote.example")
    fake.private_message(alice, "a lighthouse at dusk")
    try:
        await run_then_sigkill(raw, tmp_path, lambda: fake.held >= 1)
    finally:
        fake.release()
    assert len(fake.messages_by(fake.bot)) == 1  # on the server; the bot never heard

    with sqlite3.connect(data_dir / "fedibot.db") as db:
        token, started = db.execute(
            "SELECT send_token, send_started_at FROM outbound_posts WHERE kind = 'result'"
        ).fetchone()
    assert token is not None and started is not None
    restarted_at = time.monotonic()
    app = await apps.start(clock=lambda: started + down_for + time.monotonic() - restarted_at)
    server_clock.now += down_for

    async def finished() -> Any:
        [job] = await app.queue.list_jobs()
        return job if job.state in ("done", "failed") else None

    job = await eventually(finished, timeout=60)
    assert len(fake.messages_by(fake.bot)) == 1, "the message was sent twice"
    posts = fake.requests_to("POST", PM_PATH)
    if down_for < 110:  # inside Lemmy's memory of the key: the repeat is refused
        assert [r.status for r in posts] == [200, 422]
        assert {r.idempotency_key for r in posts} == {token}
        assert (job.state, job.reply_remote_id) == ("done", UNKNOWN_PM)
    else:  # nobody can tell whether it went out: the operator decides
        assert len(posts) == 1
        assert (job.state, job.error_code) == ("failed", "delivery_unconfirmed")
