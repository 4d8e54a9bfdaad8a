"""Whole-app pacing on Lemmy: a spent image budget holds replies in the queue, drops none."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.e2e_lemmy.conftest import RATE_LIMITS, Apps, answers_to, eventually, settled
from tests.fakes.lemmy_server import FakeLemmy


@pytest.fixture
def fake_options() -> dict[str, Any]:
    # Two uploads per 3 s: the fourth request of a burst must wait for the window to pass.
    return {"rate_limits": {**RATE_LIMITS, "image": (2, 3.0)}}


async def test_spent_image_budget_delays_replies_but_drops_none(
    fake: FakeLemmy, apps: Apps
) -> None:
    users = [fake.add_user(f"user{i}", domain="remote.example") for i in range(4)]
    mentions = [fake.mention(user, f"a small boat number {i}") for i, user in enumerate(users)]
    app = await apps.start(quotas={"user_jobs_in_flight": 0})

    await eventually(lambda: len(fake.comments_by(fake.bot)) == 4, timeout=30)
    stats = await settled(app, timeout=30)
    assert stats["done"] == 4 and stats["failed"] == 0 and stats["cancelled"] == 0
    for mention in mentions:
        assert len(answers_to(fake, mention)) == 1
    assert len(fake.comments_by(fake.bot)) == 4 and len(fake.images) == 4
    jobs = await app.queue.list_jobs()
    held_back = [j for j in jobs if j.reply_attempts > 1]
    assert len(held_back) >= 2  # only two images fit the first window: the rest waited
    published = sorted(datetime.fromisoformat(c["published"]) for c in fake.comments_by(fake.bot))
    assert (published[2] - published[0]).total_seconds() >= 2.5  # the third waited for the window
    uploads = [r for r in fake.requests_to("POST", "image") if r.status < 400]
    assert len(uploads) == 4  # every image uploaded exactly once


@pytest.mark.parametrize(
    "fake_options", [{"rate_limits": {**RATE_LIMITS, "image": (1, 60.0)}}], indirect=False
)
async def test_requester_held_back_by_the_image_budget_is_told_how_long_once(
    fake: FakeLemmy, apps: Apps
) -> None:
    users = [fake.add_user(f"user{i}", domain="remote.example") for i in range(2)]
    mentions = [
        fake.mention(user, prompt)
        for user, prompt in zip(users, ("a lighthouse", "a harbour"), strict=True)
    ]
    app = await apps.start(
        quotas={"user_jobs_in_flight": 0}, replies={"poll_seconds": 0.05, "notify_wait_seconds": 5}
    )
    await eventually(lambda: all(len(answers_to(fake, m)) == 1 for m in mentions), timeout=30)
    answers = [answers_to(fake, m)[0] for m in mentions]
    with_image = [a for a in answers if "![" in a["content"]]
    notices = [a for a in answers if "![" not in a["content"]]
    assert len(with_image) == 1 and len(notices) == 1  # one image fits the window, one waits
    assert "about 1 minute" in notices[0]["content"]

    async def held_back() -> list:
        return [
            j
            for j in await app.queue.list_jobs()
            if j.params.get("wait_notice_sent") and j.state == "generated"
        ]

    assert len(await eventually(held_back)) == 1  # back in the queue, waiting for the window
    waiting = mentions[answers.index(notices[0])]
    # A further retry inside the window does not tell them again.
    await app.replier.process_once()
    assert len(answers_to(fake, waiting)) == 1
