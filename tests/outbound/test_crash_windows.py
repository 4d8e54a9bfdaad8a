"""Crash windows of the one way out: for every kind of post, on a fake Mastodon and a fake
Lemmy (real HTTP), the bot dies after the server accepted the post and before it recorded
it; it is retried after the idempotency key's lifetime (Mastodon: 1 hour) has passed. The
server must end with exactly one post, and the job must point at it."""

from __future__ import annotations

import pytest

from fedibot.outbound.post_once import IntentState, PostKind
from fedibot.storage.models import JobState, ReplyState
from tests.outbound.conftest import LEASE, Process, World, crash_once


async def _crash_while_posting(world: World, job_id: int, *, block: bool = False) -> Process:
    """A process posts job `job_id` and dies between the server's answer and the record."""
    first = await world.process()
    if block:
        first.block_images()
    calls = crash_once(first.replier.outbound.store, "mark_posted")
    assert await first.reply_once() == 1
    assert calls == [1], "the post never reached the record step"
    return first


async def _restart(world: World, *, block: bool = False) -> Process:
    """Later (lease and idempotency key expired), a new process takes the job again."""
    world.expire_idempotency_keys()
    world.clock.advance(LEASE + 1)
    assert world.queue is not None
    assert await world.queue.requeue_expired() == 1
    second = await world.process()
    if block:
        second.block_images()
    assert await second.reply_once() == 1
    return second


async def _assert_recorded(world: World, job_id: int, kind: str, remote_id: str) -> None:
    assert world.queue is not None
    process = world._processes[-1]
    intent = await process.replier.outbound.store.get(job_id, kind)
    assert intent is not None
    assert (intent.state, intent.remote_id) == (IntentState.POSTED, remote_id)
    assert intent.attempts == 2


async def test_result(world: World) -> None:
    mention = await world.request("a red fox --n 2")
    job_id = await world.result_job(mention, images=2)
    await _crash_while_posting(world, job_id)
    assert len(world.bot_posts()) == 1  # on the server, unknown to the bot
    await _restart(world)
    (post,) = world.bot_posts()
    assert world.has_media(post)
    job = await world.job(job_id)
    assert (job.state, job.reply_remote_id) == (JobState.DONE, _remote_id(world, post))
    await _assert_recorded(world, job_id, PostKind.RESULT, _remote_id(world, post))
    assert world.uploads() == 2 and world.orphans() == []
    if world.platform == "mastodon":  # found on the server: not even a second request
        assert world.fake.count("POST", "/api/v1/statuses") == 1


async def test_help(world: World) -> None:
    mention = await world.request("help")
    job_id = await world.help_job(mention)
    await _crash_while_posting(world, job_id)
    await _restart(world)
    (post,) = world.bot_posts()
    job = await world.job(job_id)
    assert (job.state, job.reply_remote_id) == (JobState.DONE, _remote_id(world, post))
    await _assert_recorded(world, job_id, PostKind.HELP, _remote_id(world, post))


async def test_error_reply(world: World) -> None:
    mention = await world.request("a cat --steps 999")
    job_id = await world.error_job(mention)
    await _crash_while_posting(world, job_id)
    await _restart(world)
    (post,) = world.bot_posts()
    job = await world.job(job_id)
    assert (job.reply_state, job.reply_remote_id) == (ReplyState.SENT, _remote_id(world, post))
    await _assert_recorded(world, job_id, PostKind.ERROR, _remote_id(world, post))


async def test_wait_notice(world: World) -> None:
    mention = await world.request("a red fox")
    job_id = await world.result_job(mention, images=1)
    await _crash_while_posting(world, job_id, block=True)  # dies recording the notice
    (notice,) = world.bot_posts()
    assert not world.has_media(notice)
    await _restart(world, block=True)  # still waiting: the notice is found, not repeated
    assert [_remote_id(world, p) for p in world.bot_posts()] == [_remote_id(world, notice)]
    job = await world.job(job_id)
    assert job.state == JobState.GENERATED and job.params["wait_notice_sent"]
    # the budget is back: the images go out, and the notice is not taken for them
    world.clock.advance(60)
    third = await world.process()
    assert await third.reply_once() == 1
    posts = world.bot_posts()
    assert [world.has_media(p) for p in posts] == [False, True]
    job = await world.job(job_id)
    assert (job.state, job.reply_remote_id) == (JobState.DONE, _remote_id(world, posts[1]))


@pytest.mark.parametrize("platform", ["mastodon"])  # campaigns post statuses: Mastodon only
async def test_campaign_run(world: World) -> None:
    job_id = await world.campaign_job()
    await _crash_while_posting(world, job_id)
    assert len(world.bot_posts()) == 1
    await _restart(world)
    (post,) = world.bot_posts()
    assert post["in_reply_to_id"] is None and world.has_media(post)
    job = await world.job(job_id)
    assert (job.state, job.reply_remote_id) == (JobState.DONE, post["id"])
    await _assert_recorded(world, job_id, PostKind.CAMPAIGN, post["id"])
    assert world.fake.count("POST", "/api/v1/statuses") == 1
    assert world.orphans() == []


def _remote_id(world: World, post: dict) -> str:
    if world.platform == "mastodon":
        return str(post["id"])
    return f"pm:{post['id']}" if "recipient_id" in post else str(post["id"])
