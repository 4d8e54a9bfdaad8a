"""Answering: comment replies with pict-rs images, private messages, pacing, errors, clean-up."""

from __future__ import annotations

from dataclasses import replace

import aiohttp
import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

from federation.errors import PermanentError, RemoteGone, TransientError
from federation.lemmy import LemmyAdapter, LockedPostError, SlidingWindow
from federation.markdown_safe import escape
from federation.types import MediaItem, Mention, OutgoingPost, Visibility
from tests.fakes.lemmy_server import FakeLemmy
from tests.lemmy.markdown_check import active_constructs, rendered_text


@pytest.fixture
def alice(fake: FakeLemmy) -> dict:
    return fake.add_user("alice", domain="remote.example")


async def receive(adapter: LemmyAdapter, sink) -> Mention:
    await adapter.catch_up(sink)
    return sink.mentions[-1]


def reply_to(mention: Mention, text: str, media=(), **kw) -> OutgoingPost:
    return OutgoingPost(
        text=text,
        visibility=mention.visibility,
        in_reply_to_id=mention.remote_id,
        media=tuple(media),
        recipient=mention.author,
        is_private_message=mention.is_private_message,
        context=dict(mention.context),
        idempotency_key=kw.pop("key", "job-1"),
        **kw,
    )


async def test_a_mention_is_answered_by_a_comment_with_images_and_alt_text(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    request = fake.mention(alice, "a cat in a hat")
    mention = await receive(adapter, sink)
    paths = images(2)
    media = [MediaItem(paths[0], "A cat [in] a *hat*"), MediaItem(paths[1], "Second cat")]
    result = await adapter.post(reply_to(mention, "Here you go!", media))

    [comment] = fake.comments_by(fake.bot)
    assert result.remote_id == str(comment["id"]) and result.url == comment["ap_id"]
    assert comment["path"] == f"{request['path']}.{comment['id']}"  # parent_id = the mention
    assert comment["post_id"] == request["post_id"]
    assert len(fake.images) == 2
    tokens = [t for block in _parse(comment["content"]) for t in block.children or []]
    shown = [(_alt(t), t.attrs["src"]) for t in tokens if t.type == "image"]
    assert [alt for alt, _ in shown] == ["A cat [in] a *hat*", "Second cat"]
    async with aiohttp.ClientSession() as http:
        for (_, url), path in zip(shown, paths, strict=True):
            async with http.get(url) as resp:
                assert resp.status == 200 and await resp.read() == path.read_bytes()
    assert rendered_text(comment["content"]).startswith("Here you go!")


async def test_a_private_message_is_answered_by_a_private_message_with_links(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    fake.private_message(alice, "a lighthouse")
    mention = await receive(adapter, sink)
    result = await adapter.post(reply_to(mention, "Done.", [MediaItem(images(1)[0], "Lighthouse")]))
    [pm] = fake.messages_by(fake.bot)
    assert result.remote_id == f"pm:{pm['id']}"
    assert pm["recipient_id"] == alice["id"]
    assert not fake.comments_by(fake.bot)
    tokens = [t for block in _parse(pm["content"]) for t in block.children or []]
    assert [t.type for t in tokens if t.type in ("image", "link_open")] == ["link_open"]
    [link] = [t for t in tokens if t.type == "link_open"]
    assert link.attrs["href"].rsplit("/", 1)[-1] in fake.images


async def test_an_injection_in_the_prompt_is_neutralised_in_the_reply(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    admin = fake.add_user("admin")
    prompt = (
        "[x](http://evil) ![i](u) @admin@lemmy.test !community@x **bold** <b>hi</b> "
        "`code` http://evil.example"
    )
    fake.mention(alice, prompt)
    mention = await receive(adapter, sink)
    assert (
        mention.text == "x i @admin@lemmy.test !community@x bold <b>hi</b> code http://evil.example"
    )
    assert fake.unread_for(admin)["mentions"] == 1  # alice's raw comment does ping admin
    text = f"Prompt: {escape(prompt)}"
    await adapter.post(reply_to(mention, text, [MediaItem(images(1)[0], f"alt {prompt}")]))
    [comment] = fake.comments_by(fake.bot)
    content = comment["content"]
    # Our one image is the only active construct; the prompt and the alt text are inert.
    assert active_constructs(content) == ["image"]
    assert f"Prompt: {prompt}" in rendered_text(content)
    assert fake.unread_for(admin)["mentions"] == 1  # the bot's reply pinged nobody


async def test_sensitive_replies_hide_the_images_in_a_spoiler(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    fake.mention(alice, "something spicy", nsfw=True)
    mention = await receive(adapter, sink)
    post = reply_to(mention, "Here.", [MediaItem(images(1)[0], "img")], sensitive=True)
    await adapter.post(replace(post, spoiler_text="NSFW: nudity"))
    [comment] = fake.comments_by(fake.bot)
    assert "::: spoiler NSFW\\: nudity\n![img](" in comment["content"]
    assert comment["content"].count(":::") == 2


async def test_a_deleted_mention_no_longer_exists_and_nothing_is_posted(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    request = fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    assert await adapter.request_exists(mention) is True
    fake.delete_comment(request["id"])
    assert await adapter.request_exists(mention) is False
    with pytest.raises(RemoteGone):
        await adapter.post(reply_to(mention, "x", [MediaItem(images(1)[0], "a")]))
    assert not fake.images and not fake.comments_by(fake.bot)


async def test_a_removed_mention_and_a_deleted_message_no_longer_exist(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    request = fake.mention(alice, "a cat")
    pm = fake.private_message(alice, "a dog")
    await adapter.catch_up(sink)
    by_id = {m.remote_id: m for m in sink.mentions}
    comment_mention, pm_mention = by_id[str(request["id"])], by_id[f"pm:{pm['id']}"]
    assert await adapter.request_exists(pm_mention) is True
    fake.remove_comment(request["id"])
    fake.delete_private_message(pm["id"])
    assert await adapter.request_exists(comment_mention) is False
    assert await adapter.request_exists(pm_mention) is False
    ghost = replace(comment_mention, remote_id="999999")
    assert await adapter.request_exists(ghost) is False


@pytest.mark.parametrize("fake_options", [{"rate_limits": {"image": (2, 1.0)}}])
async def test_a_spent_image_budget_delays_the_reply_until_the_window_frees(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    assert adapter.limits.image == (2, 1.0)
    now = [100.0]  # the adapter's window runs on a clock the test moves
    adapter._images = SlidingWindow(*adapter.limits.image, clock=lambda: now[0])
    fake.set_clock(lambda: now[0])  # the server's window moves with the same clock
    fake.mention(alice, "one")
    fake.mention(alice, "two")
    await adapter.catch_up(sink)
    first, second = sink.mentions
    await adapter.post(reply_to(first, "1", [MediaItem(p, "a") for p in images(2)]))
    assert adapter.estimated_wait(1) == pytest.approx(1.0)

    now[0] += 0.25
    later = reply_to(second, "2", [MediaItem(images(1)[0], "b")], key="job-2")
    with pytest.raises(TransientError) as info:
        await adapter.post(later)
    assert info.value.retry_after == pytest.approx(0.75)  # the window, not a guess
    assert len(fake.images) == 2 and len(fake.comments_by(fake.bot)) == 1  # nothing sent
    assert not [r for r in fake.requests if r.status == 429]  # paced, not refused

    now[0] += 0.75
    assert adapter.estimated_wait(1) == 0.0
    result = await adapter.post(later)
    assert len(fake.images) == 3
    assert result.remote_id == str(fake.comments_by(fake.bot)[-1]["id"])


async def test_a_rate_limit_error_from_the_server_is_transient(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    fake.mention(alice, "one")
    mention = await receive(adapter, sink)
    fake.set_rate_limit("image", 0, 60)  # stricter than what the adapter read at start
    with pytest.raises(TransientError) as info:
        await adapter.post(reply_to(mention, "1", [MediaItem(images(1)[0], "a")]))
    assert info.value.retry_after and info.value.retry_after > 0
    # 0.19: its own limiter answers 400 `rate_limit_error`; 1.0: 429 `too_many_requests`.
    expected = (400, "rate_limit_error") if fake.api_version == "v3" else (429, "too_many_requests")
    refused = [r for r in fake.requests if r.path.endswith("image")]
    assert [(r.status, r.response["error"]) for r in refused] == [expected]
    assert not fake.comments_by(fake.bot)


async def test_a_second_attempt_after_a_failed_comment_reuses_the_uploads(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    fake.mention(alice, "one")
    mention = await receive(adapter, sink)
    post = reply_to(mention, "1", [MediaItem(p, "a") for p in images(2)])
    fake.fail_next("POST", f"/api/{fake.api_version}/comment", 502)
    with pytest.raises(TransientError):
        await adapter.post(post)
    await adapter.post(post)
    assert len(fake.images) == 2 and len(fake.comments_by(fake.bot)) == 1


async def test_a_locked_post_is_answered_by_private_message(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    request = fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    fake.lock_post(request["post_id"])
    result = await adapter.post(reply_to(mention, "Here.", [MediaItem(images(1)[0], "a")]))
    [pm] = fake.messages_by(fake.bot)
    assert result.remote_id == f"pm:{pm['id']}" and pm["recipient_id"] == alice["id"]
    assert not fake.comments_by(fake.bot)


async def test_a_locked_post_is_skipped_when_configured(
    make_adapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    adapter = make_adapter(locked_post_fallback="skip")
    request = fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    fake.lock_post(request["post_id"])
    with pytest.raises(LockedPostError):
        await adapter.post(reply_to(mention, "Here."))
    assert not fake.messages_by(fake.bot) and not fake.comments_by(fake.bot)


async def test_find_existing_reply_finds_the_bots_earlier_reply_under_the_parent(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    request = fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    post = reply_to(mention, "Here.", key="job-7")
    assert await adapter.find_existing_reply(post) is None
    fake.create_comment(alice, request["post_id"], "me too", parent_id=request["id"])
    posted = await adapter.post(post)
    found = await adapter.find_existing_reply(post)
    assert found is not None and found.remote_id == posted.remote_id
    assert await adapter.find_existing_reply(replace(post, idempotency_key="job-8")) is None


async def test_find_existing_reply_without_a_key_takes_any_bot_reply_to_the_parent(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    request = fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    earlier = fake.create_comment(fake.bot, request["post_id"], "old", parent_id=request["id"])
    found = await adapter.find_existing_reply(reply_to(mention, "x", key=None))
    assert found is not None and found.remote_id == str(earlier["id"])


async def test_delete_removes_the_bots_comment(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    result = await adapter.post(reply_to(mention, "Here."))
    await adapter.delete(result.remote_id)
    [comment] = fake.comments_by(fake.bot)
    assert comment["deleted"] is True
    await adapter.delete(result.remote_id)  # deleting again is fine


async def test_server_errors_map_to_the_right_error_classes(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    post = reply_to(mention, "x", [MediaItem(images(1)[0], "a")])
    upload = "/pictrs/image" if fake.api_version == "v3" else "/api/v4/image"
    fake.fail_next("POST", upload, 413)
    with pytest.raises(PermanentError, match="larger than the instance accepts"):
        await adapter.post(post)
    fake.fail_next("POST", upload, 503)
    with pytest.raises(TransientError):
        await adapter.post(post)
    fake.fail_next("POST", f"/api/{fake.api_version}/comment", 400, "banned_from_community")
    with pytest.raises(PermanentError, match="banned_from_community") as info:
        await adapter.post(post)
    assert not isinstance(info.value, TransientError | RemoteGone)


async def test_an_unreachable_server_is_transient(make_adapter, unused_tcp_port: int) -> None:
    adapter = make_adapter(base_url=f"http://127.0.0.1:{unused_tcp_port}")
    with pytest.raises(TransientError):
        await adapter.start()


async def test_a_too_large_image_is_refused_by_the_fake_itself(
    make_adapter, fake: FakeLemmy, alice: dict, sink, images
) -> None:
    fake.max_upload_bytes = 10
    adapter = make_adapter()
    fake.mention(alice, "a cat")
    mention = await receive(adapter, sink)
    with pytest.raises(PermanentError, match="413"):
        await adapter.post(reply_to(mention, "x", [MediaItem(images(1)[0], "a")]))
    assert mention.visibility is Visibility.PUBLIC


def _parse(markdown: str) -> list[Token]:
    return MarkdownIt("commonmark").parse(markdown)


def _alt(image: Token) -> str:
    """The alt attribute a renderer writes: the image description's text."""
    return "".join(child.content for child in image.children or [])
