"""Nothing lost, nothing doubled: a backlog made while the bot was down, a stream cut in
the middle of a burst, a 429 on the status post, and the bot killed between uploading the
images and posting the status."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from generator.service import GeneratorService
from tests.e2e_mastodon.conftest import (
    Apps,
    HoldingMastodon,
    app_config,
    bot_statuses,
    eventually,
    raw_config,
    replies_to,
    settled,
)
from tests.e2e_mastodon.services import GatedService
from tests.e2e_support import run_then_sigkill


def _answered_once(fake: HoldingMastodon, request_ids: list[str]) -> None:
    answers = Counter(s["in_reply_to_id"] for s in bot_statuses(fake))
    assert set(answers) == set(request_ids)
    assert set(answers.values()) == {1}
    assert fake.count("POST", "/api/v1/statuses") == len(request_ids)  # no second try at all


async def test_200_mentions_made_while_the_bot_was_stopped_are_all_answered_once(
    fake: HoldingMastodon, apps: Apps
) -> None:
    # The bot ran before (a first start reads only the newest page: see test_receive).
    first = await apps.start()
    await eventually(lambda: first.adapters["main"].stream_synced.is_set())
    await apps.stop(first)
    requests = [
        fake.mention(f"user{i % 50}@remote{i % 7}.example", f"a small house number {i}")["id"]
        for i in range(200)
    ]
    before = fake.count("GET", "/api/v1/notifications")
    app = await apps.start()

    await eventually(lambda: len(bot_statuses(fake)) >= 200, timeout=90)
    stats = await settled(app, timeout=30)
    assert stats["done"] == 200
    _answered_once(fake, requests)
    # Caught up page by page with the min_id cursor (80 per page), not one by one.
    pages = [r for r in fake.requests if r.path == "/api/v1/notifications"][before:]
    assert 3 <= len(pages) < 20


async def test_stream_dropped_mid_burst_loses_nothing(fake: HoldingMastodon, apps: Apps) -> None:
    app = await apps.start(
        accounts=[
            {
                "platform": "mastodon",
                "name": "main",
                "base_url": fake.base_url,
                "access_token": fake.bot_token,
                "catch_up_interval_seconds": 3600,
            }
        ]
    )
    await fake.wait_for_streams(1)
    await eventually(lambda: fake.count("GET", "/api/v1/notifications") >= 2)  # start + connect

    fake.drop_streams(after_events=5)  # the stream dies after the first 5 of the burst
    dropped_at = time.time()
    requests = [
        fake.mention(f"user{i}@remote.example", f"a boat number {i}")["id"] for i in range(30)
    ]

    await eventually(lambda: len(bot_statuses(fake)) >= 30, timeout=40)
    await settled(app)
    _answered_once(fake, requests)
    assert fake.stream_connects >= 2  # reconnected
    # The 25 the stream never carried came from the catch-up after the reconnect.
    assert any(r.path == "/api/v1/notifications" and r.at > dropped_at for r in fake.requests)


async def test_429_with_a_reset_time_on_the_status_post_waits_then_succeeds(
    fake: HoldingMastodon, apps: Apps, data_dir: Path
) -> None:
    service = GatedService(GeneratorService(app_config(data_dir, fake).generator))
    requests = [
        fake.mention(f"user{i}@remote.example", f"a comet number {i}")["id"] for i in range(3)
    ]
    app = await apps.start(service=service)
    await eventually(service.waiting.is_set)

    # Mastodon answers 429 with an ISO reset time: 3 s after the first refused post, so the
    # refusal happens however long the renders take on a loaded machine.
    fake.exhaust("statuses", reset_in=3.0, from_first_refusal=True)
    service.open()

    await eventually(lambda: len(bot_statuses(fake)) >= 3, timeout=60)
    await settled(app)
    answers = Counter(s["in_reply_to_id"] for s in bot_statuses(fake))
    assert set(answers) == set(requests) and set(answers.values()) == {1}
    posts = [r for r in fake.requests if r.method == "POST" and r.path == "/api/v1/statuses"]
    refused = [r for r in posts if r.status == 429]
    accepted = [r for r in posts if r.status == 200]
    assert refused, "the status post never met the limit"
    [reset_at] = fake.buckets["statuses"].refused_until
    assert len(accepted) == 3
    assert all(r.at >= reset_at for r in accepted)  # it waited for the reset
    # ... and did not hammer the server meanwhile: one refusal per job at most.
    refused_keys = Counter(r.idempotency_key for r in refused)
    assert set(refused_keys.values()) == {1}
    jobs = await app.queue.list_jobs()
    assert {j.state for j in jobs} == {"done"}
    # A refused job went back to the queue and came again (the same post, same key); a job
    # that only met the learned budget may have waited in place instead.
    attempts = {await app.outbound.key(j.id, "result"): j.reply_attempts for j in jobs}
    assert set(refused_keys) <= set(attempts)
    assert all(attempts[key] >= 2 for key in refused_keys)
    assert {r.idempotency_key for r in accepted} == set(attempts)


@pytest.mark.parametrize("after_create", [False, True], ids=["before-status", "status-lost"])
async def test_bot_killed_between_media_upload_and_status_post_replies_once_after_restart(
    fake: HoldingMastodon, apps: Apps, data_dir: Path, tmp_path: Path, after_create: bool
) -> None:
    """A real `fedibot run` process is SIGKILLed while its status post is held open: either
    before the server created the status, or after (the bot never got the answer)."""
    fake.hold_statuses(after_create=after_create)
    request = fake.mention("alice@remote.example", "a kite over the sea --n 2")["id"]
    try:
        await run_then_sigkill(raw_config(data_dir, fake), tmp_path, lambda: fake.held >= 1)
        assert fake.count("POST", "/api/v2/media") == 2  # both images were uploaded
    finally:
        fake.release()
    assert len(bot_statuses(fake)) == (1 if after_create else 0)

    # Restarted later: the dead process's 5-minute reply lease has run out by then.
    app = await apps.start(clock=lambda: time.time() + 400)
    await eventually(lambda: replies_to(fake, request) or None, timeout=30)
    await settled(app)
    [reply] = bot_statuses(fake)
    assert reply["in_reply_to_id"] == request and len(reply["media_attachments"]) == 2
    [job] = await app.queue.list_jobs()
    assert (job.state, job.reply_remote_id) == ("done", reply["id"])
    posts = [r for r in fake.requests if r.method == "POST" and r.path == "/api/v1/statuses"]
    if after_create:  # found the reply it had posted; did not post or upload again
        assert len(posts) == 1 and fake.count("POST", "/api/v2/media") == 2
    else:  # the recorded uploads are reused: none repeated, none left orphaned
        assert len(posts) == 2 and fake.count("POST", "/api/v2/media") == 2
    assert fake.orphan_media() == []
    (key,) = {r.idempotency_key for r in posts}
    assert key is not None and key.endswith(f"-{job.id}-result")
