"""Idempotency keys are unique per install: a reset database starts job ids at 1 again, and
the server still holds the old `job 1` key's response (Akkoma: for 6 hours, for all users)."""

from __future__ import annotations

import pytest

from fedibot.outbound.post_once import PostKind, PostOnce
from fedibot.storage.database import Database
from fedibot.storage.install import install_id
from fedibot.storage.migrate import upgrade
from tests.outbound.conftest import World


@pytest.mark.parametrize("platform", ["mastodon"])
async def test_a_reset_database_does_not_receive_the_old_job_1(world: World, tmp_path) -> None:
    world.fake.idempotency_scope = "global"  # Akkoma: one key space, for every account
    first_request = await world.request("help")
    assert await world.help_job(first_request) == 1
    first = await world.process()
    assert await first.reply_once() == 1
    old_key = world.fake.post_params[-1]["idempotency_key"]

    await world.open_database(tmp_path / "reset.db")  # the operator starts over
    second_request = await world.request("help")
    assert await world.help_job(second_request) == 1  # job 1 again
    second = await world.process()
    assert await second.reply_once() == 1
    new_key = world.fake.post_params[-1]["idempotency_key"]

    assert old_key != new_key and old_key.endswith("-1-help") and new_key.endswith("-1-help")
    assert old_key in world.fake._idempotency_cache  # still cached there (6 h, every account)
    replies = {s["in_reply_to_id"]: s["id"] for s in world.bot_posts()}
    assert set(replies) == {first_request.remote_id, second_request.remote_id}
    job = await world.job(1)
    assert job.reply_remote_id == replies[second_request.remote_id]  # not the old status


async def test_the_install_id_is_made_once_per_database(tmp_path) -> None:
    one = Database(f"sqlite:///{tmp_path / 'one.db'}")
    two = Database(f"sqlite:///{tmp_path / 'two.db'}")
    try:
        for db in (one, two):
            await upgrade(db)
        first = await install_id(one)
        assert first == await install_id(one) and len(first) == 12
        assert await install_id(two) != first
        key = await PostOnce(one).key(7, PostKind.WAIT)
        assert key == f"fedibot-{first}-7-wait"
    finally:
        await one.dispose()
        await two.dispose()
