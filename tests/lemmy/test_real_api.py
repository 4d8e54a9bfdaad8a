"""What the real Lemmy API does and the adapter got wrong before (issue 11), on both versions.

Each test here failed against the adapter as it was (commit f17b1a2) with the rebuilt fake —
1.0 enum casing, 1.0 DELETE routes, notifications that must be marked read, cursor paging,
finding a private message already sent — and passes now.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from federation.errors import AuthError, PermanentError, TransientError
from federation.lemmy import UNKNOWN_PM, LemmyAdapter, RateLimited
from federation.types import Mention
from tests.fakes.lemmy_server import FakeLemmy
from tests.lemmy.conftest import BOT_PASSWORD, Collector
from tests.lemmy.test_posting import receive, reply_to


@pytest.fixture
def alice(fake: FakeLemmy) -> dict:
    return fake.add_user("alice", domain="remote.example")


@pytest.fixture
def carol(fake: FakeLemmy) -> dict:
    """A user on the bot's own instance (1.0 keeps a notification row for her messages)."""
    return fake.add_user("carol")


def unread(fake: FakeLemmy) -> int:
    counts = fake.unread_for(fake.bot)
    if fake.api_version == "v4":
        return counts["notifications"]
    return counts["mentions"] + counts["replies"] + counts["private_messages"]


# --- finding an earlier reply (the second attempt of every deferred reply) -------------------


async def test_the_second_attempt_of_a_reply_finds_the_first_instead_of_failing(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    """1.0 accepts only snake_case enums (`all`, `new`); `All`/`New` answered 400 for good."""
    fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    post = reply_to(mention, "Here.", key="job-42")
    posted = await adapter.post(post)
    found = await adapter.find_existing_reply(post)  # as the queue does before a retry
    assert found is not None and found.remote_id == posted.remote_id
    [listing] = fake.requests_to("GET", "/comment/list")
    assert listing.status == 200
    expected = {"v3": ("All", "New"), "v4": ("all", "new")}[fake.api_version]
    assert (listing.query["type_"], listing.query["sort"]) == expected


async def test_the_fake_refuses_wrongly_cased_enums_like_lemmy(fake: FakeLemmy) -> None:
    """The fake itself must answer like the server, or the test above proves nothing."""
    import aiohttp

    wrong = "all" if fake.api_version == "v3" else "All"
    url = f"{fake.base_url}/api/{fake.api_version}/comment/list"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, params={"type_": wrong}) as resp,
    ):
        body = await resp.json()
    assert resp.status == 400
    assert body["error"] == "unknown" and f"unknown variant `{wrong}`" in body["message"]


async def test_the_servers_explanation_of_a_refusal_reaches_the_error(
    adapter: LemmyAdapter, fake: FakeLemmy
) -> None:
    from federation.errors import PermanentError
    from federation.lemmy_api import Call

    wrong = "all" if fake.api_version == "v3" else "All"
    call = Call("GET", f"/api/{fake.api_version}/comment/list", params={"type_": wrong})
    with pytest.raises(PermanentError, match=f"unknown variant `{wrong}`"):
        await adapter._request(call)


# --- deleting ------------------------------------------------------------------------------


async def test_delete_removes_the_bots_comment_and_private_message(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    """1.0 deletes with `DELETE /api/v4/comment` and `DELETE /api/v4/private_message`."""
    fake.mention(alice, "a cat")
    fake.private_message(alice, "a dog")
    await adapter.catch_up(sink)
    comment_mention, pm_mention = sink.mentions
    comment = await adapter.post(reply_to(comment_mention, "Here."))
    pm = await adapter.post(reply_to(pm_mention, "There."))
    await adapter.delete(comment.remote_id)
    await adapter.delete(pm.remote_id)
    [stored_comment] = fake.comments_by(fake.bot)
    [stored_pm] = fake.messages_by(fake.bot)
    assert stored_comment["deleted"] is True and stored_pm["deleted"] is True
    deletes = [(r.method, r.path, r.status) for r in fake.requests if "delete" in r.path.lower()]
    deletes += [(r.method, r.path, r.status) for r in fake.requests if r.method == "DELETE"]
    assert (
        sorted(deletes)
        == {
            "v3": [
                ("POST", "/api/v3/comment/delete", 200),
                ("POST", "/api/v3/private_message/delete", 200),
            ],
            "v4": [
                ("DELETE", "/api/v4/comment", 200),
                ("DELETE", "/api/v4/private_message", 200),
            ],
        }[fake.api_version]
    )


async def test_deleting_a_comment_twice_is_not_an_error(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    """Lemmy refuses to delete a deleted comment (0.19 `couldnt_update_comment`, 1.0
    `couldnt_update`); the adapter checks the comment and takes it as done."""
    fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    result = await adapter.post(reply_to(mention, "Here."))
    await adapter.delete(result.remote_id)
    await adapter.delete(result.remote_id)
    refused = [r for r in fake.requests if r.status == 400]
    assert [r.response["error"] for r in refused] == [
        "couldnt_update_comment" if fake.api_version == "v3" else "couldnt_update"
    ]


# --- notifications the bot does not answer, and paging ----------------------------------------


async def test_notifications_the_bot_does_not_answer_are_marked_read_and_do_not_hide_mentions(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    """1.0 also notifies moderator actions, subscriptions and mentions inside a post. Left
    unread they filled the first page of 50 for good, and the mentions behind them were lost."""
    if fake.api_version == "v3":
        pytest.skip("0.19 has no such inbox entries")
    wanted = fake.mention(alice, "a lighthouse")  # the oldest: behind everything else
    for _ in range(20):
        fake.mod_action(alice)
        fake.subscribed_post(alice)
        fake.mention_in_post(alice, "look at my post")
    assert unread(fake) == 61
    assert await adapter.catch_up(sink) == 1
    assert [m.remote_id for m in sink.mentions] == [str(wanted["id"])]
    assert unread(fake) == 0
    assert await adapter.catch_up(sink) == 0  # nothing comes back


class PickySink(Collector):
    """Fails (the queue is down for this author) for mentions by one person."""

    def __init__(self, refuse: str) -> None:
        super().__init__()
        self.refuse = refuse

    async def __call__(self, mention: Mention) -> None:
        self.calls += 1
        if mention.author.acct.startswith(f"{self.refuse}@"):
            raise RuntimeError("cannot queue this one now")
        self.mentions.append(mention)


async def test_items_left_unread_do_not_hide_the_ones_on_later_pages(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """The inbox is read page by page (0.19 `page`, 1.0 `page_cursor` from `next_page`)
    before anything is marked read, so 55 items the sink refuses do not hide the 56th."""
    bob = fake.add_user("bob", domain="remote.example")
    wanted = fake.mention(alice, "the oldest request")
    for index in range(55):
        fake.mention(bob, f"spam {index}")
    sink = PickySink("bob")
    with caplog.at_level(logging.CRITICAL, logger="federation.lemmy"):
        assert await adapter.catch_up(sink) == 1
    assert [m.remote_id for m in sink.mentions] == [str(wanted["id"])]
    assert sink.calls == 56
    assert unread(fake) == 55  # bob's stay unread for the next poll
    if fake.api_version == "v4":
        pages = fake.requests_to("GET", "/account/notification/list")
        assert [("page_cursor" in r.query) for r in pages] == [False, True]


# --- private messages already sent ------------------------------------------------------------


async def test_a_private_message_sent_before_a_crash_is_found_on_retry(
    adapter: LemmyAdapter, fake: FakeLemmy, carol: dict, sink
) -> None:
    """After a crash between sending and recording, the retry must find the message (by its
    marker) instead of sending it again. 0.19 lists the conversation with `creator_id`; 1.0
    lists it as notifications with `type_=private_message&creator_id=` (local recipients)."""
    fake.private_message(carol, "a dog")
    mention = await receive(adapter, sink)
    post = reply_to(mention, "There.", key="job-pm-1")
    assert await adapter.find_existing_reply(post) is None
    sent = await adapter.post(post)
    found = await adapter.find_existing_reply(post)
    assert found is not None and found.remote_id == sent.remote_id
    other_job = reply_to(mention, "There.", key="job-pm-2")
    assert await adapter.find_existing_reply(other_job) is None
    lookups = [r for r in fake.requests if r.query.get("creator_id") == str(carol["id"])]
    assert lookups and all(r.status == 200 for r in lookups)


async def test_a_locked_post_fallback_message_is_found_on_retry(
    adapter: LemmyAdapter, fake: FakeLemmy, carol: dict, sink
) -> None:
    request = fake.mention(carol, "a cat")
    mention = await receive(adapter, sink)
    fake.lock_post(request["post_id"])
    post = reply_to(mention, "Here.", key="job-locked")
    sent = await adapter.post(post)
    assert sent.remote_id.startswith("pm:")
    found = await adapter.find_existing_reply(post)
    assert found is not None and found.remote_id == sent.remote_id


async def test_a_deleted_private_message_request_no_longer_exists(
    adapter: LemmyAdapter, fake: FakeLemmy, carol: dict, sink
) -> None:
    pm = fake.private_message(carol, "a dog")
    fake.private_message(fake.add_user("dave"), "unrelated")
    await adapter.catch_up(sink)
    mention = next(m for m in sink.mentions if m.remote_id == f"pm:{pm['id']}")
    assert await adapter.request_exists(mention) is True
    fake.delete_private_message(pm["id"])
    assert await adapter.request_exists(mention) is False
    lookups = [r for r in fake.requests if r.query.get("creator_id") == str(carol["id"])]
    assert len(lookups) == 2


# --- tokens and rate limits -------------------------------------------------------------------


async def test_an_expired_token_is_401_incorrect_login_and_renewed(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, caplog: pytest.LogCaptureFixture
) -> None:
    fake.mention(alice, "a cat")
    old_token = adapter._jwt
    fake.expire_tokens()
    with caplog.at_level(logging.DEBUG):
        assert await adapter.catch_up(sink) == 1
    [refused] = [r for r in fake.requests if r.status == 401]
    assert refused.response == {"error": "incorrect_login"}
    assert fake.login_count == 2 and adapter._jwt != old_token
    logged = caplog.text
    assert old_token and adapter._jwt
    assert old_token not in logged and adapter._jwt not in logged
    assert BOT_PASSWORD not in logged


async def test_a_bad_token_on_a_public_route_is_ignored_like_lemmy_does(fake: FakeLemmy) -> None:
    import aiohttp

    headers = {"Authorization": "Bearer not-a-token"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{fake.base_url}/api/{fake.api_version}/site", headers=headers) as resp,
    ):
        body = await resp.json()
    assert resp.status == 200 and "my_user" not in body


async def test_a_wrong_password_is_401_and_an_auth_error_without_the_password(
    make_adapter, fake: FakeLemmy
) -> None:
    with pytest.raises(AuthError) as info:
        await make_adapter(password="hunter2-wrong").start()
    assert "hunter2-wrong" not in str(info.value)
    [login] = [r for r in fake.requests if r.path.endswith("login")]
    assert (login.status, login.response) == (401, {"error": "incorrect_login"})


async def test_the_servers_rate_limit_answer_is_a_transient_error(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    """0.19: 400 `rate_limit_error`; 1.0: 429 `too_many_requests` (with Retry-After)."""
    fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    fake.set_rate_limit("comment", 0, 60)
    with pytest.raises(RateLimited) as info:
        await adapter.post(reply_to(mention, "Here."))
    assert isinstance(info.value, TransientError) and info.value.retry_after
    [refused] = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/comment")]
    if fake.api_version == "v3":
        assert (refused.status, refused.response) == (400, {"error": "rate_limit_error"})
    else:
        assert (refused.status, refused.response) == (429, {"error": "too_many_requests"})
        assert info.value.retry_after >= 60


async def test_1_0_rate_limits_are_read_from_their_1_0_field_names(
    make_adapter, fake: FakeLemmy
) -> None:
    fake.set_rate_limit("comment", 3, 90)
    fake.set_rate_limit("image", 2, 45)
    adapter = make_adapter()
    await adapter.start()
    [site] = [r for r in fake.requests if r.path.endswith("/site") and r.status == 200][-1:]
    served = site.response["site_view"]["local_site_rate_limit"]
    if fake.api_version == "v4":
        assert (served["comment_max_requests"], served["comment_interval_seconds"]) == (3, 90)
        assert "comment" not in served and "comment_per_second" not in served
    else:
        assert (served["comment"], served["comment_per_second"]) == (3, 90)
    assert adapter.limits.comment == (3, 90.0) and adapter.limits.image == (2, 45.0)


async def test_an_empty_422_is_a_repeat_only_where_the_key_was_sent(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    """1.0 answers a repeated `Idempotency-Key` with an empty 422. 0.19 has no such
    middleware and is never sent the header, so its 422 is an ordinary refusal."""
    fake.private_message(alice, "a dog")
    mention = await receive(adapter, sink)
    post = replace(reply_to(mention, "There.", key="job-422"), request_token="k" * 32)
    path = f"/api/{fake.api_version}/private_message"
    fake.fail_next("POST", path, 422, empty=True)
    if fake.api_version == "v4":
        found = await adapter.post(post)  # taken for a repeat of a message that arrived
        assert found.remote_id == UNKNOWN_PM
    else:
        with pytest.raises(PermanentError) as refused:
            await adapter.post(post)
        assert refused.value.create_refused
    (sent,) = fake.requests_to("POST", path)
    assert sent.idempotency_key == ("k" * 32 if fake.api_version == "v4" else None)
    assert sent.status == 422 and fake.messages_by(fake.bot) == []
