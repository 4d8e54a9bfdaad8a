"""Receiving mentions: catch-up paging and cursor, streaming, reconnects, filtering, edits."""

from __future__ import annotations

import asyncio

import pytest

from federation.base import MemoryCursorStore
from federation.types import Visibility
from tests.fakes.mastodon_server import FakeMastodon
from tests.mastodon.conftest import Collector, MakeAdapter, run_listener, stop

KEY = "mastodon:main:notifications"


async def _stream_ready(fake: FakeMastodon) -> None:
    """Wait until the adapter's stream is open and its after-connect catch-up was served:
    from then on, with a long catch-up interval, only the stream can deliver."""
    await fake.wait_for_streams(1)
    opened = fake.stream_connects

    async def served() -> None:
        while not any(
            r.path == "/api/v1/notifications" and r.served_at is not None and r.at > stream_at
            for r in fake.requests
        ):
            await asyncio.sleep(0.01)

    stream_at = max(r.at for r in fake.requests if r.path == "/api/v1/streaming/user")
    await asyncio.wait_for(served(), 60)
    assert fake.stream_connects == opened


async def test_catch_up_pages_through_200_mentions_in_order_and_resumes(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    fake.add_user("alice@remote.test")
    store = MemoryCursorStore()
    adapter = await make_adapter(store=store)
    assert await adapter.catch_up(collector) == 0  # the first start: nothing there yet
    assert store.values[KEY] == "0"  # so everything that comes is new
    made = [fake.mention("alice@remote.test", f"prompt {i}")["id"] for i in range(200)]
    assert await adapter.catch_up(collector) == 200
    assert collector.ids == made
    assert [m.text for m in collector.mentions[:3]] == ["prompt 0", "prompt 1", "prompt 2"]
    pages = fake.count("GET", "/api/v1/notifications")
    assert pages == 1 + 4  # the first look, then 80 + 80 + 40 and an empty page
    last_notification = collector.mentions[-1].context["notification_id"]
    assert store.values[KEY] == last_notification

    # A fresh adapter (a restart) with the same store delivers only what is new.
    restarted = await make_adapter(store=store)
    again = Collector()
    assert await restarted.catch_up(again) == 0
    newer = fake.mention("alice@remote.test", "one more")["id"]
    assert await restarted.catch_up(again) == 1
    assert again.ids == [newer]


async def test_a_first_start_reads_one_page_and_answers_only_recent_mentions(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    """No cursor yet (a new install on an old account): one request for the newest page,
    nothing older than `first_start_lookback`, never the whole history."""
    fake.add_user("old@remote.test")
    old = [fake.mention("old@remote.test", f"ancient {i}")["id"] for i in range(150)]
    for notification in fake.notifications:
        notification.created_at -= 2 * 86400  # two days ago
    fresh = [fake.mention("new@remote.test", f"fresh {i}")["id"] for i in range(3)]
    store = MemoryCursorStore()
    adapter = await make_adapter(store=store)
    assert await adapter.catch_up(collector) == 3
    assert collector.ids == fresh and not set(old) & set(collector.ids)
    assert fake.count("GET", "/api/v1/notifications") == 1
    [request] = [r for r in fake.requests if r.path == "/api/v1/notifications"]
    assert "min_id" not in request.query and request.query["limit"] == ["80"]
    newest = max((n.id for n in fake.notifications), key=int)
    assert store.values[KEY] == newest
    assert await adapter.catch_up(collector) == 0  # from the cursor on: nothing new


async def test_cursor_does_not_pass_a_mention_the_sink_refused(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector, cursors
) -> None:
    ids = [fake.mention("bob@remote.test", f"p{i}")["id"] for i in range(3)]
    collector.fail_on = {ids[1]}
    adapter = await make_adapter()
    with pytest.raises(RuntimeError):
        await adapter.catch_up(collector)
    assert collector.ids == ids[:1]
    assert cursors.values[KEY] == collector.mentions[0].context["notification_id"]
    assert await adapter.catch_up(collector) == 2
    assert collector.ids == ids


async def test_mention_fields_dm_visibility_and_profile_note(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    fake.add_user("carol", note="I make art. #nobot", display_name="Carol")  # a local user
    fake.add_user("dave@remote.test")
    first = fake.mention(
        "carol",
        "a fox &amp; @dave@remote.test",
        visibility="direct",
        spoiler_text="cw",
        language="de",
    )
    reply = fake.mention(
        "dave@remote.test", "again", in_reply_to_id=first["id"], visibility="private"
    )
    adapter = await make_adapter()
    await adapter.catch_up(collector)
    dm, private = collector.mentions
    assert dm.visibility is Visibility.DIRECT and private.visibility is Visibility.PRIVATE
    assert dm.author.acct == "carol@fake.test" and dm.author.display_name == "Carol"
    assert dm.author.opted_out and dm.author.note_text == "I make art. #nobot"
    assert dm.text == "a fox &amp; @dave@remote.test"
    assert dm.context["mentions"] == ["dave@remote.test"]
    assert (dm.spoiler_text, dm.sensitive, dm.language) == ("cw", True, "de")
    assert dm.created_at.tzinfo is not None and dm.platform == "mastodon"
    assert dm.bot_account == "main" and dm.remote_id == first["id"]
    assert private.in_reply_to_id == first["id"] and private.remote_id == reply["id"]


async def test_mention_arrives_over_the_stream(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    adapter = await make_adapter()
    task = await run_listener(adapter, collector)
    try:
        await _stream_ready(fake)
        gets = fake.count("GET", "/api/v1/notifications")
        status = fake.mention("erin@remote.test", "a lighthouse at night")
        await collector.wait_for(1)
        assert collector.ids == [status["id"]]
        assert collector.mentions[0].text == "a lighthouse at night"
        assert fake.count("GET", "/api/v1/notifications") == gets  # not via catch-up
    finally:
        await stop(task)


async def test_stream_dropped_mid_burst_loses_nothing(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector, cursors
) -> None:
    adapter = await make_adapter()
    task = await run_listener(adapter, collector)
    try:
        await _stream_ready(fake)
        fake.drop_streams(after_events=10)
        made = [fake.mention("frank@remote.test", f"burst {i}")["id"] for i in range(50)]
        await collector.wait_for(50)
        await asyncio.sleep(0.3)  # anything extra would show up now
        assert sorted(collector.ids, key=int) == made
        assert len(collector.ids) == len(set(collector.ids))  # no needless duplicates
        assert fake.stream_connects >= 2  # it reconnected
        await fake.wait_for_streams(1)
        # The cursor catches up with the burst once the post-reconnect catch-up ran.
        deadline = asyncio.get_running_loop().time() + 60
        while cursors.values.get(KEY) != collector.mentions[-1].context["notification_id"]:
            if asyncio.get_running_loop().time() > deadline:
                break  # the assertion below says what the cursor is
            await asyncio.sleep(0.02)
        last = max(int(m.context["notification_id"]) for m in collector.mentions)
        assert cursors.values[KEY] == str(last)
    finally:
        await stop(task)


async def test_own_statuses_boosts_and_other_notifications_are_ignored(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    adapter = await make_adapter()
    task = await run_listener(adapter, collector)
    try:
        await _stream_ready(fake)
        fake.add_user("gina@remote.test", followed=True)
        wanted = fake.mention("gina@remote.test", "wanted")  # also an `update` (followed)
        fake.mention("fedibot", "talking to myself")  # a mention notification of its own post
        boost = fake.boost("hank@remote.test", wanted["id"])  # an `update` carrying a reblog
        fake.notify("mention", "hank@remote.test", boost["id"])  # a "mention" that is a boost
        fake.notify("follow", "hank@remote.test")
        fake.notify("favourite", "hank@remote.test", wanted["id"])
        last = fake.mention("gina@remote.test", "last")
        await collector.wait_for(2)
        await adapter.catch_up(collector)
        await asyncio.sleep(0.2)
        assert collector.ids == [wanted["id"], last["id"]]
    finally:
        await stop(task)


async def test_status_edited_before_catch_up_is_delivered_edited(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    status = fake.mention("ivy@remote.test", "a red car")
    fake.edit_status(status["id"], "a blue car")
    adapter = await make_adapter()
    await adapter.catch_up(collector)
    assert [m.text for m in collector.mentions] == ["a blue car"]
    assert collector.mentions[0].edited_at is not None


async def test_stream_mention_edited_while_waiting_is_delivered_edited(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    adapter = await make_adapter()
    adapter.refetch_after_seconds = 0.0  # always re-fetch: deterministic under any load
    task = await run_listener(adapter, collector)
    try:
        await _stream_ready(fake)
        collector.gate = asyncio.Event()  # the sink is busy with the first mention
        first = fake.mention("jay@remote.test", "first")
        second = fake.mention("kim@remote.test", "a green hat")
        await asyncio.sleep(0.1)
        fake.edit_status(second["id"], "a yellow hat", push=False)  # stranger: no event
        await asyncio.sleep(0.3)
        collector.gate.set()
        await collector.wait_for(2)
        assert collector.ids == [first["id"], second["id"]]
        assert collector.mentions[1].text == "a yellow hat"
    finally:
        await stop(task)


async def test_status_update_event_redelivers_the_new_form(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    adapter = await make_adapter()
    task = await run_listener(adapter, collector)
    try:
        await _stream_ready(fake)
        status = fake.mention("lou@remote.test", "a castle")
        await collector.wait_for(1)
        fake.edit_status(status["id"], "a sand castle")
        await collector.wait_for(2)
        assert [m.text for m in collector.mentions] == ["a castle", "a sand castle"]
        assert collector.mentions[1].remote_id == status["id"]
        assert collector.mentions[1].edited_at is not None
    finally:
        await stop(task)


async def test_deleted_before_catch_up_is_not_delivered(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    gone = fake.mention("max@remote.test", "never mind")
    kept = fake.mention("max@remote.test", "keep me")
    fake.delete_status(gone["id"])
    adapter = await make_adapter()
    await adapter.catch_up(collector)
    assert collector.ids == [kept["id"]]


async def test_listen_without_streaming_polls(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    adapter = await make_adapter(use_streaming=False, catch_up_interval_seconds=5)
    adapter.config.catch_up_interval_seconds = 0.2  # faster than config allows, for the test
    task = await run_listener(adapter, collector)
    try:
        await asyncio.sleep(0.1)
        status = fake.mention("ned@remote.test", "polled")
        await collector.wait_for(1)
        assert collector.ids == [status["id"]]
        assert fake.stream_connects == 0
    finally:
        await stop(task)


async def test_listen_delivers_the_backlog_then_live_mentions_once(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    backlog = [fake.mention("olga@remote.test", f"old {i}")["id"] for i in range(30)]
    adapter = await make_adapter()
    task = await run_listener(adapter, collector)
    try:
        await collector.wait_for(30)
        await _stream_ready(fake)
        live = fake.mention("olga@remote.test", "new")["id"]
        await collector.wait_for(31)
        await asyncio.sleep(0.2)
        assert collector.ids == [*backlog, live]
    finally:
        await stop(task)


async def test_revoked_token_ends_listen_with_auth_error(
    fake: FakeMastodon, make_adapter: MakeAdapter, collector: Collector
) -> None:
    from federation.errors import AuthError

    adapter = await make_adapter(use_streaming=False)
    fake.tokens.clear()  # the operator revoked the token
    with pytest.raises(AuthError):
        await asyncio.wait_for(adapter.listen(collector), 60)


async def test_two_accounts_on_two_servers_in_one_process(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    from federation.base import MemoryCursorStore
    from federation.mastodon import MastodonAdapter
    from federation.mastodon_config import MastodonAccountConfig

    store = MemoryCursorStore()
    async with FakeMastodon(
        domain="other.test", bot_username="artbot", heartbeat_interval=0.2
    ) as other:
        first = await make_adapter(name="one", store=store)
        second = MastodonAdapter(
            MastodonAccountConfig(
                name="two",
                base_url=other.base_url,
                access_token=other.bot_token,
                catch_up_interval_seconds=3600,
            ),
            store,
        )
        await second.start()
        sinks = Collector(), Collector()
        tasks = [await run_listener(first, sinks[0]), await run_listener(second, sinks[1])]
        try:
            await fake.wait_for_streams(1)
            await other.wait_for_streams(1)
            a = fake.mention("pia@remote.test", "for one")["id"]
            b = other.mention("pia@remote.test", "for two")["id"]
            await sinks[0].wait_for(1)
            await sinks[1].wait_for(1)
            await asyncio.sleep(0.2)
            assert sinks[0].ids == [a] and sinks[1].ids == [b]
            assert {m.bot_account for m in sinks[0].mentions} == {"one"}
            assert {m.bot_account for m in sinks[1].mentions} == {"two"}
            # Cursors move in catch-up (the stream alone proves no absence of gaps); the
            # catch-up does not hand over again what the stream already delivered.
            assert await first.catch_up(sinks[0]) == 0
            assert await second.catch_up(sinks[1]) == 0
            assert len(sinks[0].ids) == len(sinks[1].ids) == 1
            assert set(store.values) == {"mastodon:one:notifications", "mastodon:two:notifications"}
        finally:
            for task in tasks:
                await stop(task)
            await second.close()
