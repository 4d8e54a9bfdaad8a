"""Private messages on Lemmy 1.0 across crashes and lost answers (fake Lemmy over real HTTP).

Lemmy 1.0 lists a message the bot sent only when its recipient is local (notification rows
are written for local users only, lemmy `crates/api/api_utils/src/notify.rs`), so after a
crash the lookup cannot see a message to a remote user. What 1.0 does offer is its
`Idempotency-Key` middleware (`crates/routes/src/middleware/idempotency.rs`): a repeated key
is refused with 422 for at least 120 s. These tests pin the design built on it:

* a repeat inside that window carries the same key, and Lemmy refuses it: one message;
* after the window nothing can tell; the message is not sent again, the job waits for the
  operator (`delivery_unconfirmed`), and `queue retry` sends it on purpose;
* a local recipient's message is found by the lookup at any time;
* a request the server answered with a refusal gets a new key on the next attempt.
"""

from __future__ import annotations

import dataclasses

import pytest

from federation.errors import DeliveryUnconfirmed, OutcomeUnknown, TransientError
from federation.lemmy import UNKNOWN_PM, LemmyAdapter, fallback_token
from federation.types import OutgoingPost, Visibility
from fedibot.outbound.post_once import IntentState, PostKind, request_token
from fedibot.storage.models import JobState, ReplyState
from tests.outbound.conftest import LEASE, Process, World, crash_once


@pytest.fixture
def platform() -> str:
    return "lemmy-v4"


PM_PATH = "/api/v4/private_message"


def _pm_posts(world: World) -> list[dict]:
    return [r for r in world.fake.requests if (r.method, r.path) == ("POST", PM_PATH)]


async def _crash_after_sending(world: World, job_id: int) -> None:
    """A process sends the job's message, then dies before recording it."""
    first = await world.process()
    calls = crash_once(first.replier.outbound.store, "mark_posted")
    assert await first.reply_once() == 1
    assert calls == [1] and len(world.fake.messages_by(world.fake.bot)) == 1


async def _retry(world: World, process: Process, job_id: int) -> None:
    """The same process takes the job again when its retry is due."""
    job = await world.job(job_id)
    world.clock.advance(job.not_before - world.clock.now + 1)
    assert await process.reply_once() == 1


async def _restart_after(world: World, seconds: float) -> None:
    world.clock.advance(seconds)
    assert world.queue is not None
    assert await world.queue.requeue_expired() == 1
    second = await world.process()
    assert await second.reply_once() == 1


async def test_a_repeat_inside_lemmys_idempotency_window_is_refused_not_sent_twice(
    world: World,
) -> None:
    mention = await world.private_request("a red fox --n 2")
    job_id = await world.result_job(mention, images=2)
    await _crash_after_sending(world, job_id)
    await _restart_after(world, LEASE + 1)  # a supervisor restart: well inside 120 s

    assert len(world.fake.messages_by(world.fake.bot)) == 1
    first, repeat = _pm_posts(world)
    assert first.idempotency_key == repeat.idempotency_key
    assert first.idempotency_key is not None and len(first.idempotency_key) <= 32
    assert (first.status, repeat.status) == (200, 422)
    job = await world.job(job_id)
    assert (job.state, job.reply_remote_id) == (JobState.DONE, UNKNOWN_PM)


async def test_after_the_window_a_message_to_a_remote_user_waits_for_the_operator(
    world: World,
) -> None:
    mention = await world.private_request("a red fox --n 2")
    job_id = await world.result_job(mention, images=2)
    await _crash_after_sending(world, job_id)
    await _restart_after(world, 300)  # the bot was down for five minutes

    assert len(world.fake.messages_by(world.fake.bot)) == 1, "sent twice"
    assert len(_pm_posts(world)) == 1
    job = await world.job(job_id)
    assert (job.state, job.error_code) == (JobState.FAILED, DeliveryUnconfirmed.code)
    assert job.reply_state == ReplyState.NONE  # no apology message either

    assert world.queue is not None
    assert await world.queue.retry(job_id) is True  # the operator: send it anyway
    assert (await world.job(job_id)).state == JobState.GENERATED
    third = await world.process()
    assert await third.reply_once() == 1
    messages = world.fake.messages_by(world.fake.bot)
    assert len(messages) == 2
    job = await world.job(job_id)
    assert (job.state, job.reply_remote_id) == (JobState.DONE, f"pm:{messages[-1]['id']}")
    assert _pm_posts(world)[-1].status == 200


async def test_a_message_to_a_local_user_is_found_after_any_time(world: World) -> None:
    mention = await world.private_request("a red fox", local=True)
    job_id = await world.result_job(mention, images=1)
    await _crash_after_sending(world, job_id)
    await _restart_after(world, 3600)

    (message,) = world.fake.messages_by(world.fake.bot)
    assert len(_pm_posts(world)) == 1  # found by the lookup: not even a repeat
    job = await world.job(job_id)
    assert (job.state, job.reply_remote_id) == (JobState.DONE, f"pm:{message['id']}")


async def test_a_lost_answer_is_repeated_with_the_same_key_and_refused(world: World) -> None:
    """A proxy's 504 after Lemmy sent the message: the retry repeats the key; Lemmy says 422."""
    mention = await world.private_request("a red fox")
    job_id = await world.result_job(mention, images=1)
    world.fake.fail_next("POST", PM_PATH, 504, after=True)
    process = await world.process()
    assert await process.reply_once() == 1
    job = await world.job(job_id)
    assert job.state == JobState.GENERATED  # held for a retry, not failed
    intent = await process.replier.outbound.store.get(job_id, PostKind.RESULT)
    assert intent is not None and intent.send_token == _pm_posts(world)[0].idempotency_key

    world.clock.advance(job.not_before - world.clock.now + 1)
    assert await process.reply_once() == 1
    assert len(world.fake.messages_by(world.fake.bot)) == 1
    assert [r.status for r in _pm_posts(world)] == [504, 422]
    assert (await world.job(job_id)).state == JobState.DONE


async def test_a_refused_send_is_retried_with_a_new_key(world: World) -> None:
    """Lemmy answered (a 500 of its own): nothing was sent, and the earlier key is spent on
    the server, so the next attempt must not repeat it (a 422 would be taken for sent)."""
    mention = await world.private_request("a red fox")
    job_id = await world.result_job(mention, images=1)
    world.fake.fail_next("POST", PM_PATH, 500, "unknown")
    process = await world.process()
    assert await process.reply_once() == 1
    intent = await process.replier.outbound.store.get(job_id, PostKind.RESULT)
    assert intent is not None and intent.send_token is None  # settled: the server answered

    job = await world.job(job_id)
    world.clock.advance(job.not_before - world.clock.now + 1)
    assert await process.reply_once() == 1
    refused, sent = _pm_posts(world)
    assert (refused.status, sent.status) == (500, 200)
    assert refused.idempotency_key != sent.idempotency_key
    assert sent.idempotency_key == request_token(intent.key, 1)
    (message,) = world.fake.messages_by(world.fake.bot)
    intent = await process.replier.outbound.store.get(job_id, PostKind.RESULT)
    assert intent is not None
    assert (intent.state, intent.remote_id) == (IntentState.POSTED, f"pm:{message['id']}")


async def test_a_comment_reply_after_a_crash_is_found_by_its_marker_not_doubled(
    world: World,
) -> None:
    """Comments are found by their marker before anything is sent again."""
    mention = await world.request("a red fox")
    job_id = await world.result_job(mention, images=1)
    first = await world.process()
    crash_once(first.replier.outbound.store, "mark_posted")
    assert await first.reply_once() == 1
    await _restart_after(world, LEASE + 1)
    (comment,) = world.fake.comments_by(world.fake.bot)
    job = await world.job(job_id)
    assert (job.state, job.reply_remote_id) == (JobState.DONE, str(comment["id"]))


def test_request_tokens_fit_lemmys_32_characters_and_differ_per_attempt() -> None:
    key = "fedibot-" + "f" * 32 + "-123456789-wait_again"
    tokens = {request_token(key, attempt) for attempt in range(100)}
    assert len(tokens) == 100
    assert all(len(t) == 32 for t in tokens)
    assert request_token(key, 3) == request_token(key, 3)


async def test_a_locked_posts_message_has_its_own_key_and_its_repeat_is_refused(
    world: World,
) -> None:
    """The comment is refused as locked (its key is now spent on the server); the message
    that answers instead carries a key of its own, so it goes out, and when its answer is
    lost, the repeat is recognised (422) instead of sent twice."""
    mention = await world.request("a red fox")
    job_id = await world.result_job(mention, images=1)
    world.fake.fail_next("POST", "/api/v4/comment", 400, "locked")
    world.fake.fail_next("POST", PM_PATH, 504, after=True)
    process = await world.process()
    assert await process.reply_once() == 1
    (comment_try,) = world.fake.requests_to("POST", "/api/v4/comment")
    (message,) = _pm_posts(world)
    assert comment_try.status == 400 and message.status == 504
    assert message.idempotency_key == fallback_token(str(comment_try.idempotency_key))
    assert len(world.fake.messages_by(world.fake.bot)) == 1  # sent; the answer was lost
    job = await world.job(job_id)
    assert job.state == JobState.GENERATED
    assert job.not_before - world.clock.now <= 110  # back while Lemmy remembers the key

    world.fake.lock_post(int(mention.context["post_id"]))  # as the server said
    world.clock.advance(job.not_before - world.clock.now + 1)
    assert await process.reply_once() == 1
    assert [r.status for r in _pm_posts(world)] == [504, 422]
    assert len(world.fake.messages_by(world.fake.bot)) == 1
    job = await world.job(job_id)
    assert (job.state, job.reply_remote_id) == (JobState.DONE, UNKNOWN_PM)


@pytest.mark.parametrize("status", [502, 504, 520, 524])
async def test_a_proxys_lost_answer_is_an_unknown_outcome_repeated_in_time(
    world: World, status: int
) -> None:
    """nginx 502/504, Cloudflare 520/524 after Lemmy sent the message: the retry comes
    back while Lemmy remembers the key (half the time left), repeats it, gets 422."""
    mention = await world.private_request("a red fox")
    job_id = await world.result_job(mention, images=1)
    world.fake.fail_next("POST", PM_PATH, status, after=True)
    process = await world.process()
    assert await process.reply_once() == 1
    job = await world.job(job_id)
    assert job.state == JobState.GENERATED
    assert job.not_before - world.clock.now <= 55  # within half of the 110 s window
    world.clock.advance(job.not_before - world.clock.now + 1)
    assert await process.reply_once() == 1
    assert [r.status for r in _pm_posts(world)] == [status, 422]
    assert len(world.fake.messages_by(world.fake.bot)) == 1


async def test_a_repeat_that_fails_before_its_create_keeps_the_earlier_call_unknown(
    world: World,
) -> None:
    """The locked post's message was sent but its answer lost; on the retry the parent's
    check fails (a timeout): nothing was decided, so the key is kept, and the next retry
    still repeats it instead of sending a second message."""
    mention = await world.request("a red fox")
    job_id = await world.result_job(mention, images=1)
    world.fake.fail_next("POST", "/api/v4/comment", 400, "locked")
    world.fake.fail_next("POST", PM_PATH, 504, after=True)
    process = await world.process()
    assert await process.reply_once() == 1
    world.fake.lock_post(int(mention.context["post_id"]))
    first_key = _pm_posts(world)[0].idempotency_key
    # the replier's "does the request still exist" passes; the parent's check times out once
    world.fake.fail_next("GET", "/api/v4/comment", 504, skip=1)
    await _retry(world, process, job_id)
    await _retry(world, process, job_id)
    intent = await process.replier.outbound.store.get(job_id, PostKind.RESULT)
    assert intent is not None and intent.state == IntentState.POSTED
    assert len(world.fake.messages_by(world.fake.bot)) == 1
    assert [(r.status, r.idempotency_key) for r in _pm_posts(world)] == [
        (504, first_key),
        (422, first_key),
    ]


async def test_a_lookup_failing_after_the_422_keeps_the_key_for_the_next_try(
    world: World,
) -> None:
    mention = await world.private_request("a red fox")
    job_id = await world.result_job(mention, images=1)
    world.fake.fail_next("POST", PM_PATH, 504, after=True)
    process = await world.process()
    assert await process.reply_once() == 1
    adapter = process.adapter
    assert isinstance(adapter, LemmyAdapter)
    real = adapter.find_existing_reply
    calls: list[int] = []

    async def flaky(post: OutgoingPost):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:  # the look after the 422 (the first is find_post's)
            raise TransientError("lookup failed")
        return await real(post)

    adapter.find_existing_reply = flaky  # type: ignore[method-assign]
    await _retry(world, process, job_id)
    await _retry(world, process, job_id)
    assert len(world.fake.messages_by(world.fake.bot)) == 1
    assert [r.status for r in _pm_posts(world)] == [504, 422, 422]
    assert (await world.job(job_id)).reply_remote_id == UNKNOWN_PM


async def test_a_repeat_whose_time_ran_out_before_it_left_is_not_sent(world: World) -> None:
    """The time left for a repeated key is checked right before the create request."""
    mention = await world.private_request("a red fox")
    process = await world.process()
    adapter = process.adapter
    post = OutgoingPost(
        text="x",
        visibility=Visibility.DIRECT,
        recipient=mention.author,
        is_private_message=True,
        context=dict(mention.context),
        request_token="t" * 32,
        request_token_ttl=0.0,
    )
    with pytest.raises(OutcomeUnknown):
        await adapter.post(post)
    assert _pm_posts(world) == []
    fresh = await adapter.post(dataclasses.replace(post, request_token_ttl=None))
    assert fresh.remote_id.startswith("pm:") and len(_pm_posts(world)) == 1


class _NoAnswer:
    """An adapter whose create request never gets an answer."""

    name = "main"
    platform = "stub"
    idempotency_window = 110.0

    async def find_post(self, post: OutgoingPost, lookup: object) -> None:
        return None

    async def post(self, post: OutgoingPost) -> object:
        raise OutcomeUnknown("timed out")


async def test_an_unanswered_create_is_retried_within_half_the_time_left(world: World) -> None:
    from fedibot.outbound.post_once import PostOnce

    mention = await world.private_request("a red fox")
    job_id = await world.result_job(mention, images=1)
    assert world.db is not None
    once = PostOnce(world.db, world.clock)
    post = OutgoingPost(text="x", visibility=Visibility.DIRECT)
    with pytest.raises(OutcomeUnknown) as first:
        await once.send(_NoAnswer(), job_id, PostKind.RESULT, post)  # type: ignore[arg-type]
    assert first.value.retry_within == 55.0
    world.clock.advance(100)  # 10 s of the window left
    with pytest.raises(OutcomeUnknown) as second:
        await once.send(_NoAnswer(), job_id, PostKind.RESULT, post)  # type: ignore[arg-type]
    assert second.value.retry_within == 5.0
    world.clock.advance(9)  # 1 s left: too little to be of use
    with pytest.raises(OutcomeUnknown) as third:
        await once.send(_NoAnswer(), job_id, PostKind.RESULT, post)  # type: ignore[arg-type]
    assert third.value.retry_within is None


async def test_a_failed_check_before_a_first_create_settles_nothing_was_sent(
    world: World,
) -> None:
    """Only a create request can leave a post behind: a proxy's 504 on the parent's check
    is an ordinary transient error, and the first try's token is forgotten."""
    mention = await world.request("a red fox")
    job_id = await world.result_job(mention, images=1)
    process = await world.process()
    once = process.replier.outbound
    post = OutgoingPost(
        text="x",
        visibility=Visibility.UNLISTED,
        in_reply_to_id=mention.remote_id,
        recipient=mention.author,
        context=dict(mention.context),
    )
    world.fake.fail_next("GET", "/api/v4/comment", 504)
    with pytest.raises(TransientError) as failed:
        await once.send(process.adapter, job_id, PostKind.RESULT, post)
    assert not isinstance(failed.value, OutcomeUnknown)
    intent = await once.store.get(job_id, PostKind.RESULT)
    assert intent is not None and intent.attempts == 1 and intent.send_token is None
    assert world.fake.requests_to("POST", "/api/v4/comment") == []
