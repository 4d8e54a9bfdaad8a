"""Uploads are recorded before the post and reused, never repeated: a bot killed between
uploading and posting leaves no orphan upload and no duplicate reply."""

from __future__ import annotations

from tests.outbound.conftest import LEASE, World, crash_once


async def _killed_after_uploading(world: World, images: int) -> int:
    mention = await world.request("a red fox --n 2")
    job_id = await world.result_job(mention, images=images)
    first = await world.process()
    crash_once(first.adapter, "post")  # uploads done and recorded; the status never sent
    assert await first.reply_once() == 1
    assert world.bot_posts() == [] and world.uploads() == images
    world.clock.advance(LEASE + 1)
    assert await world.queue.requeue_expired() == 1  # type: ignore[union-attr]
    return job_id


async def test_a_crash_between_upload_and_post_reuses_the_uploads(world: World) -> None:
    await _killed_after_uploading(world, images=2)
    second = await world.process()
    assert await second.reply_once() == 1
    (reply,) = world.bot_posts()
    assert world.has_media(reply)
    assert world.uploads() == 2  # nothing uploaded twice
    assert world.orphans() == []


async def test_an_upload_the_server_dropped_is_made_again(world: World) -> None:
    await _killed_after_uploading(world, images=2)
    if world.platform == "mastodon":  # cleaned up by the server meanwhile
        world.fake.media.pop(next(iter(world.fake.media)))
    else:
        world.fake.images.pop(next(iter(world.fake.images)))
    second = await world.process()
    assert await second.reply_once() == 1
    (reply,) = world.bot_posts()
    assert world.has_media(reply)
    assert world.uploads() == 3  # only the dropped one again
    assert world.orphans() == []
