"""post(), find_existing_reply(), request_exists(), delete() against the fake server."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from federation.errors import AuthError, PermanentError, RemoteGone, TransientError
from federation.mastodon import MastodonAdapter, compose_status_text
from federation.types import MediaItem, Mention, OutgoingPost, Visibility
from tests.fakes.mastodon_server import FakeMastodon, _Bucket
from tests.mastodon.conftest import Collector, MakeAdapter


def _png(tmp_path: Path, name: str, color: str = "red") -> Path:
    path = tmp_path / name
    Image.new("RGB", (8, 8), color).save(path)
    return path


async def _request(
    fake: FakeMastodon, adapter: MastodonAdapter, visibility: str = "public", text: str = "a cat"
) -> Mention:
    fake.mention("alice@remote.test", text, visibility=visibility)
    sink = Collector()
    await adapter.catch_up(sink)
    return sink.mentions[-1]


def _reply(mention: Mention, text: str = "Here you go!", **kw) -> OutgoingPost:
    return OutgoingPost(
        text=text,
        visibility=kw.pop("visibility", mention.visibility),
        in_reply_to_id=mention.remote_id,
        recipient=mention.author,
        **kw,
    )


async def test_reply_with_images_alt_text_after_processing(
    fake: FakeMastodon, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    fake.media_polls_before_ready = 3  # 202, then 206, 206, 200
    adapter = await make_adapter()
    request = await _request(fake, adapter)
    images = tuple(
        MediaItem(_png(tmp_path, f"{i}.png", c), alt_text=f"image {i}: " + "x" * 2000)
        for i, c in enumerate(["red", "green", "blue"])
    )
    result = await adapter.post(
        _reply(request, "Here you go! cc @mallory@evil.test", media=images, idempotency_key="job-1")
    )

    assert len(fake.posted_statuses) == 1
    status = fake.posted_statuses[0]
    assert result.remote_id == status["id"] and result.url == status["url"]
    assert status["in_reply_to_id"] == request.remote_id
    assert status["visibility"] == "unlisted"  # public request → unlisted reply by default
    assert [m["acct"] for m in status["mentions"]] == ["alice@remote.test"]
    assert fake.post_params[0]["status"].startswith("@alice@remote.test Here you go!")
    assert fake.post_params[0]["idempotency_key"] == "job-1"
    attached = [m["id"] for m in status["media_attachments"]]
    assert attached == list(fake.media)  # in upload order
    for i, media in enumerate(fake.media.values()):
        assert media.description == (f"image {i}: " + "x" * 2000)[:1500]
        assert media.polls >= 3 and media.status_id == status["id"]
        assert media.mime_type == "image/png" and media.size > 0


@pytest.mark.parametrize(
    ("requested", "config_public", "expected"),
    [
        ("public", "unlisted", "unlisted"),
        ("public", "public", "public"),
        ("unlisted", "public", "unlisted"),
        ("private", "public", "direct"),  # followers-only → direct (docs/outbound.md)
        ("direct", "public", "direct"),
        ("direct", "unlisted", "direct"),
    ],
)
async def test_reply_visibility_is_never_wider_than_the_request(
    fake: FakeMastodon,
    make_adapter: MakeAdapter,
    requested: str,
    config_public: str,
    expected: str,
) -> None:
    adapter = await make_adapter(public_reply_visibility=config_public)
    request = await _request(fake, adapter, visibility=requested)
    assert request.visibility is Visibility(requested)
    await adapter.post(_reply(request))
    posted = fake.posted_statuses[-1]
    assert posted["visibility"] == expected
    assert Visibility(posted["visibility"]).rank >= Visibility(requested).rank
    assert [m["acct"] for m in posted["mentions"]] == ["alice@remote.test"]


async def test_server_widening_the_visibility_is_undone(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter()
    request = await _request(fake, adapter, visibility="direct")
    fake.visibility_override = "public"
    with pytest.raises(PermanentError, match="public"):
        await adapter.post(_reply(request))
    assert fake.posted_statuses[-1]["id"] not in fake.statuses  # deleted at once


async def test_same_idempotency_key_twice_posts_once(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter()
    request = await _request(fake, adapter)
    first = await adapter.post(_reply(request, idempotency_key="job-42"))
    second = await adapter.post(_reply(request, idempotency_key="job-42"))
    assert first == second
    assert len(fake.posted_statuses) == 1
    sent = [r.idempotency_key for r in fake.requests if r.path == "/api/v1/statuses"]
    assert sent == ["job-42", "job-42"]
    third = await adapter.post(_reply(request, idempotency_key="job-43"))
    assert third.remote_id != first.remote_id and len(fake.posted_statuses) == 2


async def test_long_text_fits_max_characters_and_keeps_the_mention(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    fake.max_characters = 120
    adapter = await make_adapter()
    request = await _request(fake, adapter)
    await adapter.post(_reply(request, "word " * 100, spoiler_text="cw: spiders"))
    text = fake.post_params[-1]["status"]
    assert len(text) + len("cw: spiders") <= 120
    assert text.startswith("@alice@remote.test word") and text.endswith("…")


def test_compose_status_text() -> None:
    acct = "alice@remote.test"
    assert compose_status_text("hi", acct, 500) == "@alice@remote.test hi"
    assert compose_status_text("@alice@remote.test hi", acct, 500) == "@alice@remote.test hi"
    assert compose_status_text("@alice hi", acct, 500) == "@alice@remote.test hi"
    assert compose_status_text("@alicex hi", acct, 500) == "@alice@remote.test @\u200balicex hi"
    assert compose_status_text("ping @bob@x.test and @carol", acct, 500) == (
        "@alice@remote.test ping @\u200bbob@x.test and @\u200bcarol"
    )
    assert compose_status_text("mail me@x.test", None, 500) == "mail me@x.test"
    cut = compose_status_text("abcdefghij" * 10, acct, 30)
    assert cut == "@alice@remote.test abcdefghij…" and len(cut) == 30


async def test_429_with_iso_reset_is_transient_then_succeeds_after_reset(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter()
    request = await _request(fake, adapter)
    # The reset is 4 s after the refusal, so a slow machine cannot let it pass unseen.
    fake.exhaust("statuses", reset_in=4.0, from_first_refusal=True)
    with pytest.raises(TransientError) as caught:
        await adapter.post(_reply(request, idempotency_key="k"))
    # The ISO reset (less the answer's way back, plus the Date header's rounding and up to
    # 1 s of jitter).
    assert 2.0 <= caught.value.retry_after <= 6.1
    posts = fake.count("POST", "/api/v1/statuses")
    # Asking again before the reset: the adapter knows the budget is spent.
    adapter.max_inline_wait = 0.0
    with pytest.raises(TransientError):
        await adapter.post(_reply(request, idempotency_key="k"))
    assert fake.count("POST", "/api/v1/statuses") == posts
    await asyncio.sleep(caught.value.retry_after)
    result = await adapter.post(_reply(request, idempotency_key="k"))
    assert fake.posted_statuses[-1]["id"] == result.remote_id


async def test_injected_429_with_only_a_reset_header(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    from tests.fakes.mastodon_server import iso_reset

    adapter = await make_adapter()
    request = await _request(fake, adapter)
    fake.fail_next(
        "^/api/v1/statuses$",
        429,
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": iso_reset(time.time() + 40)},
    )
    with pytest.raises(TransientError) as caught:
        await adapter.post(_reply(request))
    assert 38 <= caught.value.retry_after <= 42


async def test_status_budget_from_headers_holds_posts_without_asking(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    fake.buckets["statuses"] = _Bucket(limit=3, period=4.0)  # long enough for 3 slow posts
    adapter = await make_adapter()
    adapter.max_inline_wait = 0.1
    request = await _request(fake, adapter)
    for _ in range(3):
        await adapter.post(_reply(request))
    with pytest.raises(TransientError) as caught:
        await adapter.post(_reply(request))
    assert 0.0 < caught.value.retry_after <= 6.1  # 4 s + Date-header rounding + jitter
    assert fake.count("POST", "/api/v1/statuses") == 3  # the 4th never left
    await asyncio.sleep(caught.value.retry_after)
    await adapter.post(_reply(request))
    assert len(fake.posted_statuses) == 4


async def test_media_uploads_paced_to_30_per_30_minutes(
    fake: FakeMastodon, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    fake.media_polls_before_ready = 0
    adapter = await make_adapter()
    request = await _request(fake, adapter)
    four = tuple(MediaItem(_png(tmp_path, f"{i}.png"), alt_text="a") for i in range(4))
    for _ in range(7):
        await adapter.post(_reply(request, media=four))
    with pytest.raises(TransientError) as caught:
        await adapter.post(_reply(request, media=four))
    assert 1700 < caught.value.retry_after <= 1802
    assert len(fake.media) == 28  # nothing uploaded for the held post
    await adapter.post(_reply(request, media=four[:2]))  # two still fit
    assert len(fake.media) == 30


async def test_server_errors_map_to_adapter_errors(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter()
    request = await _request(fake, adapter)
    fake.fail_next("^/api/v1/statuses$", 503)
    with pytest.raises(TransientError) as caught:
        await adapter.post(_reply(request))
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    fake.fail_next("^/api/v1/statuses$", 403, body={"error": "This action is not allowed"})
    with pytest.raises(AuthError):
        await adapter.post(_reply(request))
    fake.fail_next("^/api/v1/statuses$", 422, body={"error": "Validation failed: nope"})
    with pytest.raises(PermanentError, match="nope") as refused:
        await adapter.post(_reply(request))
    assert not isinstance(refused.value, AuthError | RemoteGone)
    gone = OutgoingPost(
        text="hi", visibility=Visibility.PUBLIC, in_reply_to_id="1234567", recipient=request.author
    )
    with pytest.raises(RemoteGone):
        await adapter.post(gone)
    assert fake.posted_statuses == []
    await adapter.post(_reply(request))  # and it still works
    assert len(fake.posted_statuses) == 1


async def test_unreachable_server_is_transient(make_adapter: MakeAdapter) -> None:
    adapter = await make_adapter(
        start=False, base_url="http://127.0.0.1:9", request_timeout_seconds=2
    )
    with pytest.raises(TransientError):
        await adapter.start()


async def test_too_many_or_too_large_images_are_refused_before_upload(
    fake: FakeMastodon, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    fake.image_size_limit = 50
    adapter = await make_adapter()
    request = await _request(fake, adapter)
    small = MediaItem(_png(tmp_path, "a.png"), alt_text="a")
    with pytest.raises(PermanentError, match="takes 4"):
        await adapter.post(_reply(request, media=(small,) * 5))
    big = tmp_path / "big.png"
    Image.frombytes("RGB", (64, 64), bytes(range(256)) * 48).save(big)
    with pytest.raises(PermanentError, match="bytes"):
        await adapter.post(_reply(request, media=(MediaItem(big, alt_text="b"),)))
    assert fake.media == {} and fake.posted_statuses == []


async def test_find_existing_reply_after_a_restart(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter()
    request = await _request(fake, adapter)
    other = await _request(fake, adapter, text="another")
    fake.mention("zoe@remote.test", "me too", in_reply_to_id=request.remote_id)
    posted = await adapter.post(_reply(request))
    restarted = await make_adapter()
    assert await restarted.find_existing_reply(_reply(request)) == posted
    assert await restarted.find_existing_reply(_reply(other)) is None
    fake.delete_status(request.remote_id)
    assert await restarted.find_existing_reply(_reply(request)) is None


async def test_request_exists_until_deleted_and_delete_own_post(
    fake: FakeMastodon, make_adapter: MakeAdapter
) -> None:
    adapter = await make_adapter()
    request = await _request(fake, adapter)
    assert await adapter.request_exists(request) is True
    posted = await adapter.post(_reply(request))
    fake.delete_status(request.remote_id)
    assert await adapter.request_exists(request) is False
    assert posted.remote_id in fake.statuses
    await adapter.delete(posted.remote_id)
    assert posted.remote_id not in fake.statuses
    await adapter.delete(posted.remote_id)  # already gone: fine


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400), limit=st.integers(min_value=25, max_value=600))
def test_composed_text_fits_and_mentions_only_the_recipient(text: str, limit: int) -> None:
    import re

    out = compose_status_text(text, "alice@remote.test", limit)
    assert len(out) <= limit
    assert out.startswith("@alice@remote.test")
    live = re.findall(r"(?<![\w/])@[A-Za-z0-9_]", out)
    assert live == ["@a"]  # only the leading mention can notify anyone


async def test_a_text_notice_is_never_taken_for_the_image_result(
    fake: FakeMastodon, make_adapter: MakeAdapter, tmp_path: Path
) -> None:
    adapter = await make_adapter()
    request = await _request(fake, adapter)
    notice = await adapter.post(_reply(request, "Your images will follow in about 20 minutes."))
    result = _reply(request, media=(MediaItem(_png(tmp_path, "a.png"), "alt"),))
    restarted = await make_adapter()
    assert await restarted.find_existing_reply(result) is None
    posted = await restarted.post(result)
    assert await restarted.find_existing_reply(result) == posted
    assert await restarted.find_existing_reply(_reply(request, "notice")) == notice
