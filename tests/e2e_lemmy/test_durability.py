"""Whole-app durability on Lemmy: a crash before mark-as-read, and a request deleted before
the answer (both API versions)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e_lemmy.conftest import Apps, all_read, answers_to, eventually, settled
from tests.fakes.lemmy_server import FakeLemmy

MARK_READ = {
    "v3": "/api/v3/user/mention/mark_as_read",
    "v4": "/api/v4/account/notification/mark_as_read",
}


@pytest.mark.parametrize("replied_before_crash", [False, True], ids=["queued", "replied"])
async def test_killed_between_enqueue_and_mark_read_is_handled_once_after_restart(
    fake: FakeLemmy, apps: Apps, replied_before_crash: bool
) -> None:
    """The first process queues the job (and, in one case, even answers it) but dies before the
    inbox item is marked read; the next process sees the item again and must not answer twice."""
    alice = fake.add_user("alice", domain="remote.example")
    mention = fake.mention(alice, "a windmill in a tulip field")
    path = MARK_READ[fake.api_version]
    fake.fail_next("POST", path, 503, times=1_000_000)

    first = await apps.start(with_worker=replied_before_crash)
    await eventually(lambda: fake.requests_to("POST", path))  # queued, then marking read failed
    job = await first.queue.find("lemmy", "main", str(mention["id"]))
    assert job is not None
    if replied_before_crash:
        await eventually(lambda: answers_to(fake, mention))
    else:
        assert job.state == "queued" and answers_to(fake, mention) == []
    await apps.stop(first)  # the crash: the item is still unread on the server
    assert not all_read(fake)
    assert all(r.status == 503 for r in fake.requests_to("POST", path))
    fake.clear_failures()

    second = await apps.start()
    await eventually(lambda: all_read(fake))
    await eventually(lambda: answers_to(fake, mention))
    stats = await settled(second)
    assert len(answers_to(fake, mention)) == 1
    assert len(fake.comments_by(fake.bot)) == 1
    [only] = await second.queue.list_jobs()
    assert only.id == job.id and only.state == "done"
    assert stats["done"] == 1 and sum(stats.values()) == 1
    assert len(fake.images) == 1


@pytest.mark.parametrize("how", ["deleted", "removed"])
async def test_mention_deleted_before_the_answer_is_cancelled_and_nothing_posted(
    fake: FakeLemmy, apps: Apps, how: str
) -> None:
    alice = fake.add_user("alice", domain="remote.example")
    mention = fake.mention(alice, "a castle on a hill")
    listener = await apps.start(with_worker=False)
    job = await eventually(lambda: listener.queue.find("lemmy", "main", str(mention["id"])))
    await eventually(lambda: all_read(fake))
    await apps.stop(listener)
    if how == "deleted":
        fake.delete_comment(mention["id"])  # by its author
    else:
        fake.remove_comment(mention["id"])  # by a moderator

    app = await apps.start()
    await eventually(lambda: _state(app, job.id, "cancelled"))
    await settled(app)
    assert fake.comments_by(fake.bot) == [] and fake.messages_by(fake.bot) == []
    assert fake.images == {}  # nothing uploaded either
    row = await app.queue.get(job.id)
    assert row.reply_remote_id is None


async def _state(app: Any, job_id: int, state: str) -> bool:
    row = await app.queue.get(job_id)
    return row is not None and row.state == state
