"""The replier keeps going when the database hiccups."""

from __future__ import annotations

import asyncio

from fedibot.config.loader import parse_config
from fedibot.moderation.policy import Policy
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.outbound.replier import Replier
from fedibot.queue.jobs import JobQueue


async def test_a_failing_pass_does_not_stop_the_replier(sqlite_db, tmp_path):
    config = parse_config({"data_dir": str(tmp_path), "replies": {"poll_seconds": 0.01}})
    queue = JobQueue(sqlite_db)
    policy = Policy(sqlite_db, config.policy, config.quotas, PromptFilter(config.prompt_filter))
    replier = Replier(queue, {}, policy, config)
    calls = 0
    real = queue.claim_replies

    async def flaky(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionError("database restarting")
        return await real(*args, **kwargs)

    queue.claim_replies = flaky  # type: ignore[method-assign]
    task = asyncio.ensure_future(replier.run())
    while calls < 5:
        await asyncio.sleep(0.01)
    assert not task.done()  # survived two failed passes and kept polling
    replier.request_stop()
    await asyncio.wait_for(task, 60)
