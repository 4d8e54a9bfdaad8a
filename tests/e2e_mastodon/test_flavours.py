"""The whole request path on each Mastodon-API server the fake imitates: a mention that
arrives over the server's streaming API (SSE on Mastodon, WebSocket on GoToSocial, Akkoma
and Pleroma — never catch-up) gets exactly one image reply; a GoToSocial reply the
requester's interaction policy forbids ends the job quietly with the reason recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from federation.mastodon import MastodonAdapter
from tests.e2e_mastodon.conftest import (
    Apps,
    HoldingMastodon,
    bot_statuses,
    eventually,
    replies_to,
    settled,
)
from tests.fakes.mastodon_flavours import FLAVOURS, GOTOSOCIAL

STREAM = {
    "mastodon": "sse",
    "gotosocial": "websocket",
    "akkoma": "websocket",
    "pleroma": "websocket",
}
LANGUAGE = {"mastodon": "en", "gotosocial": "en-US", "akkoma": "en", "pleroma": "en"}


@pytest.fixture(params=sorted(FLAVOURS))
def fake_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    return {"flavour": FLAVOURS[request.param]}


def _accounts(fake: HoldingMastodon) -> list[dict[str, Any]]:
    return [
        {
            "platform": "mastodon",
            "name": "main",
            "base_url": fake.base_url,
            "access_token": fake.bot_token,
            "request_timeout_seconds": 10,
            "catch_up_interval_seconds": 3600,  # only the stream can deliver in time
        }
    ]


async def test_a_streamed_mention_gets_exactly_one_image_reply(
    fake: HoldingMastodon, apps: Apps
) -> None:
    app = await apps.start(accounts=_accounts(fake))
    adapter = app.adapters["main"]
    assert isinstance(adapter, MastodonAdapter)
    await asyncio.wait_for(adapter.stream_synced.wait(), 20)
    assert adapter.receive_mode == STREAM[fake.flavour.name]
    assert adapter.flavour.software.value == fake.flavour.name
    polls_before = fake.count("GET", "/api/v1/notifications")

    request = fake.mention("alice@remote.example", "a red fox in the snow", language="en-US")
    [reply] = await eventually(lambda: replies_to(fake, request["id"]))
    stats = await settled(app)

    assert fake.count("GET", "/api/v1/notifications") == polls_before  # the stream did it
    assert stats["done"] == 1 and len(bot_statuses(fake)) == 1
    assert len(reply["media_attachments"]) == 1
    assert [m["acct"] for m in reply["mentions"]] == ["alice@remote.example"]
    [job] = await app.queue.list_jobs()
    assert job.state == "done" and job.reply_remote_id == reply["id"]
    # The request's "en-US" as each server takes it (Akkoma/Pleroma: ISO 639-1 only).
    assert [p.get("language") for p in fake.post_params] == [LANGUAGE[fake.flavour.name]]


@pytest.mark.parametrize("fake_options", [{"flavour": GOTOSOCIAL}])
async def test_a_reply_the_interaction_policy_forbids_ends_quietly(
    fake: HoldingMastodon, apps: Apps
) -> None:
    request = fake.mention("alice@remote.example", "a red fox")
    fake.reply_forbidden.add(request["id"])
    app = await apps.start(accounts=_accounts(fake))

    await eventually(lambda: _finished(app))
    await settled(app)
    [job] = await app.queue.list_jobs()
    assert (job.state, job.error_code, job.reply_state) == ("failed", "reply_forbidden", "none")
    assert "permission to reply" in (job.error_message or "")
    assert bot_statuses(fake) == []  # no reply, no error reply, nothing public
    forbidden = [r for r in fake.requests if r.path == "/api/v1/statuses"]
    assert [r.status for r in forbidden] == [403]  # tried once, never again


async def _finished(app: Any) -> list[Any]:
    return [j for j in await app.queue.list_jobs() if j.state == "failed"]
