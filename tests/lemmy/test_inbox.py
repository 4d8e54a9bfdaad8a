"""Polling the bot's inbox: mentions, replies and private messages become Mentions, read once."""

from __future__ import annotations

import asyncio

import pytest

from federation.lemmy import IdleBackoff, LemmyAdapter
from federation.types import Mention, Visibility
from tests.fakes.lemmy_server import FakeLemmy


@pytest.fixture
def alice(fake: FakeLemmy) -> dict:
    return fake.add_user(
        "alice", domain="remote.example", bio="I like **cats**", display_name="Alice"
    )


def unread(fake: FakeLemmy) -> int:
    counts = fake.unread_for(fake.bot)
    return (
        counts["notifications"]
        if fake.api_version == "v4"
        else (counts["mentions"] + counts["replies"] + counts["private_messages"])
    )


async def test_a_mention_becomes_a_mention_with_the_right_fields(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    comment = fake.mention(alice, "a **red** fox in snow", nsfw=True)
    assert await adapter.catch_up(sink) == 1
    [mention] = sink.mentions
    assert mention.platform == "lemmy" and mention.bot_account == "main"
    assert mention.remote_id == str(comment["id"])
    assert mention.in_reply_to_id is None  # top-level comment on the post
    assert mention.text == "a red fox in snow"
    assert mention.visibility is Visibility.PUBLIC
    assert mention.sensitive is True
    assert mention.is_private_message is False
    assert mention.url == comment["ap_id"]
    assert mention.created_at.tzinfo is not None
    assert mention.author.acct == "alice@remote.example"
    assert mention.author.id == str(alice["id"])
    assert mention.author.display_name == "Alice"
    assert mention.author.note_text == "I like cats"
    ctx = mention.context
    assert ctx["post_id"] == comment["post_id"] and ctx["comment_id"] == comment["id"]
    assert ctx["post_nsfw"] is True and ctx["community_nsfw"] is False
    assert ctx["post_locked"] is False
    assert ctx["inbox_type"] == ("notification" if fake.api_version == "v4" else "person_mention")
    assert isinstance(ctx["inbox_id"], int)


async def test_nsfw_community_makes_the_mention_sensitive_and_parent_comes_from_path(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    carol = fake.add_user("carol")
    first = fake.mention(carol, "hello", community_nsfw=True)
    fake.mention(alice, "draw this thread", parent=first)  # carol also mentioned the bot
    await adapter.catch_up(sink)
    nested = next(m for m in sink.mentions if m.author.acct == "alice@remote.example")
    assert nested.in_reply_to_id == str(first["id"])
    assert nested.sensitive is True and nested.context["community_nsfw"] is True
    carols = next(m for m in sink.mentions if m.author.acct == "carol@lemmy.test")
    assert carols.in_reply_to_id is None


async def test_items_are_marked_read_only_after_the_sink_returned(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict
) -> None:
    fake.mention(alice, "one")
    fake.private_message(alice, "two")
    unread_during_sink: list[int] = []

    async def sink(mention: Mention) -> None:
        unread_during_sink.append(unread(fake))

    assert await adapter.catch_up(sink) == 2
    assert unread_during_sink == [2, 1]
    assert unread(fake) == 0


async def test_a_failing_sink_leaves_the_item_unread_and_it_comes_again(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    comment = fake.mention(alice, "a cat")
    sink.fail = True
    assert await adapter.catch_up(sink) == 0
    assert sink.calls == 1 and unread(fake) == 1
    sink.fail = False
    assert await adapter.catch_up(sink) == 1
    assert [m.remote_id for m in sink.mentions] == [str(comment["id"])]
    assert unread(fake) == 0
    assert await adapter.catch_up(sink) == 0  # read now: not delivered a third time


async def test_killed_between_enqueue_and_mark_read_is_delivered_again_after_restart(
    make_adapter, fake: FakeLemmy, alice: dict
) -> None:
    """The queue dedupes by remote id, so the redelivery after a restart is handled once."""
    comment = fake.mention(alice, "a cat")
    queued: dict[str, Mention] = {}

    async def dying_sink(mention: Mention) -> None:
        queued.setdefault(mention.remote_id, mention)  # durably queued …
        raise asyncio.CancelledError  # … and the process dies before the ack

    first = make_adapter()
    with pytest.raises(asyncio.CancelledError):
        await first.catch_up(dying_sink)
    await first.close()
    assert unread(fake) == 1

    seen_after_restart: list[str] = []

    async def sink(mention: Mention) -> None:
        seen_after_restart.append(mention.remote_id)
        queued.setdefault(mention.remote_id, mention)

    assert await make_adapter().catch_up(sink) == 1
    assert seen_after_restart == [str(comment["id"])]
    assert list(queued) == [str(comment["id"])]
    assert unread(fake) == 0


async def test_a_reply_that_also_mentions_the_bot_is_delivered_once(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    request = fake.mention(alice, "a cat")
    bot_reply = fake.create_comment(fake.bot, request["post_id"], "here", parent_id=request["id"])
    await adapter.catch_up(sink)
    sink.mentions.clear()
    again = fake.reply_to_bot(alice, bot_reply, f"@{fake.bot['name']}@lemmy.test again")
    assert unread(fake) == 2  # one mention + one reply entry for the same comment
    assert await adapter.catch_up(sink) == 1
    [mention] = sink.mentions
    assert mention.remote_id == str(again["id"])
    assert mention.in_reply_to_id == str(bot_reply["id"])
    assert mention.text == "again"
    assert mention.context["inbox_kinds"] == ["mention", "reply"]
    assert len(mention.context["inbox_items"]) == 2
    assert unread(fake) == 0


async def test_a_plain_reply_to_the_bots_comment_is_delivered(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    request = fake.mention(alice, "a cat")
    bot_reply = fake.create_comment(fake.bot, request["post_id"], "here", parent_id=request["id"])
    await adapter.catch_up(sink)
    delete = fake.reply_to_bot(alice, bot_reply, "delete")
    await adapter.catch_up(sink)
    assert sink.mentions[-1].remote_id == str(delete["id"])
    assert sink.mentions[-1].text == "delete"
    assert sink.mentions[-1].context["inbox_kinds"] == ["reply"]


async def test_a_private_message_becomes_a_direct_mention(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    pm = fake.private_message(alice, "draw a lighthouse")
    assert await adapter.catch_up(sink) == 1
    [mention] = sink.mentions
    assert mention.remote_id == f"pm:{pm['id']}"
    assert mention.visibility is Visibility.DIRECT
    assert mention.is_private_message is True
    assert mention.text == "draw a lighthouse"
    assert mention.context["creator_id"] == alice["id"]
    assert mention.author.acct == "alice@remote.example"


async def test_items_deleted_before_the_poll_are_marked_read_but_not_delivered(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    comment = fake.mention(alice, "never mind")
    fake.delete_comment(comment["id"])
    assert await adapter.catch_up(sink) == 0
    assert sink.calls == 0 and unread(fake) == 0


async def test_an_idle_v3_poll_costs_one_unread_count_request(
    adapter: LemmyAdapter, fake: FakeLemmy, sink
) -> None:
    if fake.api_version != "v3":
        pytest.skip("1.0 polls its single notification list instead")
    before = len(fake.requests)
    assert await adapter.catch_up(sink) == 0
    assert [r.path for r in fake.requests[before:]] == ["/api/v3/user/unread_count"]


async def test_listen_polls_until_cancelled_and_delivers_new_items(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    task = asyncio.create_task(adapter.listen(sink))
    pm = fake.private_message(alice, "late")
    deadline = asyncio.get_running_loop().time() + 30
    while not (sink.mentions and unread(fake) == 0):  # delivered and acknowledged
        assert asyncio.get_running_loop().time() < deadline, "never delivered"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [m.remote_id for m in sink.mentions] == [f"pm:{pm['id']}"]
    assert unread(fake) == 0


def test_idle_backoff_doubles_while_idle_up_to_the_max_and_resets_on_traffic() -> None:
    backoff = IdleBackoff(15, 120)
    assert [backoff.after_poll(0) for _ in range(5)] == [30, 60, 120, 120, 120]
    assert backoff.after_poll(3) == 15
    assert backoff.after_failure(retry_after=90) == 90
    assert backoff.after_failure() == 60
