"""The adapter against each Mastodon-API server the fake imitates (Mastodon, GoToSocial,
Akkoma, Pleroma): detection, streaming, catch-up, media, language, 403s, rate limits."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from federation.base import MemoryCursorStore
from federation.errors import AuthError, ReplyForbidden, TransientError
from federation.mastodon import MastodonAdapter
from federation.mastodon_config import MastodonAccountConfig
from federation.mastodon_flavour import (
    Software,
    detect_flavour,
    mime_accepted,
    normalise_language,
)
from federation.types import MediaItem, OutgoingPost, Visibility
from tests.e2e_support import eventually
from tests.fakes.mastodon_flavours import AKKOMA, FLAVOURS, GOTOSOCIAL, MASTODON, PLEROMA
from tests.fakes.mastodon_server import FakeMastodon, ServerFlavour, templates
from tests.mastodon.conftest import Collector, run_listener, stop

KEY = "mastodon:main:notifications"
EXPECTED = {
    "mastodon": (Software.MASTODON, templates()["instance_v2"]["version"], "sse"),
    "gotosocial": (Software.GOTOSOCIAL, "0.20.0", "websocket"),
    "akkoma": (Software.AKKOMA, "3.16.0", "websocket"),
    "pleroma": (Software.PLEROMA, "2.9.1", "websocket"),
}

Make = Callable[..., Awaitable[tuple[FakeMastodon, MastodonAdapter]]]


@pytest.fixture
async def served() -> AsyncIterator[Make]:
    """`await served(flavour, **fake_options)` → (started fake, started adapter)."""
    fakes: list[FakeMastodon] = []
    adapters: list[MastodonAdapter] = []

    async def make(
        flavour: ServerFlavour, *, start: bool = True, **options: Any
    ) -> tuple[FakeMastodon, MastodonAdapter]:
        fake = FakeMastodon(flavour=flavour, heartbeat_interval=0.2, **options)
        await fake.start()
        fakes.append(fake)
        config = MastodonAccountConfig(
            name="main",
            base_url=fake.base_url,
            access_token=fake.bot_token,
            request_timeout_seconds=10,
            catch_up_interval_seconds=3600,
        )
        adapter = MastodonAdapter(config, MemoryCursorStore())
        adapter.media_poll_initial_delay = 0.01
        adapter.stream_read_timeout = 5.0
        adapter.reconnect_backoff.base = 0.05
        adapters.append(adapter)
        if start:
            await adapter.start()
        return fake, adapter

    yield make
    for adapter in adapters:
        await adapter.close()
    for fake in fakes:
        await fake.close()


def _png(tmp_path: Path) -> Path:
    path = tmp_path / "out.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    return path


def _reply(request: dict[str, Any], adapter: MastodonAdapter, **fields: Any) -> OutgoingPost:
    mention = adapter._to_mention(request, None)
    assert mention is not None
    values: dict[str, Any] = {
        "text": "here you go",
        "visibility": Visibility.UNLISTED,
        "in_reply_to_id": request["id"],
        "recipient": mention.author,
        "idempotency_key": f"fedibot-job-{request['id']}",
    }
    values.update(fields)
    return OutgoingPost(**values)


async def _streamed(fake: FakeMastodon, adapter: MastodonAdapter, collector: Collector) -> None:
    """A mention made once the stream is open and its after-connect catch-up has run
    reaches the sink with no catch-up request after it: the stream delivered it."""
    await asyncio.wait_for(adapter.stream_synced.wait(), 10)
    before = fake.count("GET", "/api/v1/notifications")
    request = fake.mention("alice@remote.test", "a cat on a stream")
    await collector.wait_for(1)
    assert collector.ids == [request["id"]]
    assert fake.count("GET", "/api/v1/notifications") == before


# ------------------------------------------------------------------------- pure rules


def test_detection_from_the_instance_version_strings() -> None:
    cases = [
        ({"version": "4.3.0"}, None, Software.MASTODON, "4.3.0"),
        ({"version": "4.3.0+glitch"}, None, Software.MASTODON, "4.3.0+glitch"),
        (
            {"version": "0.17.0 git-ccbba1e", "source_url": "https://x/gotosocial"},
            None,
            Software.GOTOSOCIAL,
            "0.17.0",
        ),
        (None, {"version": "0.17.0 git-ccbba1e"}, Software.GOTOSOCIAL, "0.17.0"),
        (None, {"version": "2.7.2 (compatible; Akkoma 3.13.2)"}, Software.AKKOMA, "3.13.2"),
        (
            {"version": "2.7.2 (compatible; Pleroma 2.9.1)"},
            None,
            Software.PLEROMA,
            "2.9.1",
        ),
    ]
    for v2, v1, software, version in cases:
        flavour = detect_flavour(v2, v1)
        assert (flavour.software, flavour.version) == (software, version), (v2, v1)
    akkoma = detect_flavour(None, {"version": "2.7.2 (compatible; Akkoma 3.13.2)"})
    assert akkoma.notification_type_param == "include_types[]"
    assert akkoma.notifications_page == 40


def test_language_is_normalised_to_what_each_server_takes() -> None:
    assert normalise_language("en-US", "alpha2") == "en"
    assert normalise_language("zh-Hant", "alpha2") == "zh"
    assert normalise_language("ckb", "alpha2") is None  # no ISO 639-1 code: left out
    assert normalise_language("eng", "alpha2") == "en"
    assert normalise_language("zh-Hant", "mastodon") == "zh-TW"
    assert normalise_language("pt-BR", "mastodon") == "pt"
    assert normalise_language("ckb", "mastodon") == "ckb"
    assert normalise_language("en_US", "bcp47") == "en-US"
    assert normalise_language("not a tag!", "bcp47") is None
    assert normalise_language(None, "mastodon") is None


def test_octet_stream_and_wildcards_accept_images() -> None:
    assert mime_accepted("image/png", ("application/octet-stream",))
    assert mime_accepted("image/png", ("image/*",))
    assert mime_accepted("image/png", ())
    assert not mime_accepted("image/png", ("image/jpeg", "image/gif"))


# --------------------------------------------------------------------- against fakes


@pytest.mark.parametrize("name", sorted(FLAVOURS))
async def test_each_flavour_is_detected_and_streams_mentions(
    name: str, served: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake, adapter = await served(FLAVOURS[name])
    software, version, mode = EXPECTED[name]
    assert (adapter.flavour.software, adapter.flavour.version) == (software, version)
    collector = Collector()
    task = await run_listener(adapter, collector)
    try:
        await _streamed(fake, adapter, collector)
        assert adapter.receive_mode == mode
        assert f"over {'SSE' if mode == 'sse' else 'WebSocket'} streaming" in caplog.text
    finally:
        await stop(task)
    # Never a token in a URL where the server takes it elsewhere, never one in the logs.
    assert all("access_token" not in r.query for r in fake.requests)
    assert fake.bot_token not in caplog.text
    if mode == "websocket":
        assert fake.count("GET", "/api/v1/streaming/user") == 0  # not even tried
        assert "websocket" in adapter.describe().lower()


async def test_akkoma_gets_the_token_in_the_websocket_protocol(served: Make) -> None:
    fake, adapter = await served(AKKOMA)
    task = await run_listener(adapter, Collector())
    try:
        await fake.wait_for_streams(1)
        [conn] = fake._streams
        assert conn.kind == "websocket" and conn.token_place == "protocol"
    finally:
        await stop(task)


async def test_a_query_token_only_server_is_reached_and_the_token_stays_out_of_logs(
    served: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    query_only = dataclasses.replace(AKKOMA, name="query-only", ws_token_places=("query",))
    fake, adapter = await served(query_only)
    collector = Collector()
    task = await run_listener(adapter, collector)
    try:
        await _streamed(fake, adapter, collector)
        [conn] = fake._streams
        assert conn.token_place == "query"
    finally:
        await stop(task)
    assert fake.bot_token not in caplog.text


async def test_sse_not_served_is_found_once_and_websocket_used(
    served: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    no_sse = dataclasses.replace(MASTODON, name="mastodon-no-sse", sse=False)
    fake, adapter = await served(no_sse)
    collector = Collector()
    task = await run_listener(adapter, collector)
    try:
        await _streamed(fake, adapter, collector)
        assert adapter.receive_mode == "websocket"
        assert adapter.stream_not_served == {"sse": 404}
        fake.drop_streams()  # a reconnect goes straight to the WebSocket
        await fake.wait_for_streams(1)
    finally:
        await stop(task)
    sse_tries = fake.count("GET", "/api/v1/streaming/user")
    assert sse_tries == 1
    assert caplog.text.count("sse streaming not served") == 1


async def test_no_streaming_at_all_falls_back_to_polling(
    served: Make, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    mute = dataclasses.replace(GOTOSOCIAL, name="no-streaming", websocket=False)
    fake, adapter = await served(mute)
    adapter.poll_interval = 0.2
    collector = Collector()
    task = await run_listener(adapter, collector)
    try:
        await eventually(lambda: adapter.receive_mode == "polling")  # both kinds refused
        request = fake.mention("alice@remote.test", "polled")
        await collector.wait_for(1)
        assert collector.ids == [request["id"]]
        assert adapter.receive_mode == "polling"
        assert adapter.stream_not_served == {"websocket": 404, "sse": 404}
        assert "polling every 0.2s" in adapter.describe()
    finally:
        await stop(task)
    assert caplog.text.count("no streaming API works") == 1


async def test_akkoma_catch_up_uses_include_types_and_pages_of_40(served: Make) -> None:
    fake, adapter = await served(AKKOMA)  # strict: an unknown parameter would be a 400
    collector = Collector()
    assert await adapter.catch_up(collector) == 0
    for i in range(3):
        fake.notify("favourite", f"fan{i}@remote.test")
    made = [fake.mention("alice@remote.test", f"prompt {i}")["id"] for i in range(100)]
    assert await adapter.catch_up(collector) == 100
    assert collector.ids == made
    pages = [r for r in fake.requests if r.path == "/api/v1/notifications"]
    assert all(r.status == 200 for r in pages)
    assert all(r.query["include_types[]"] == ["mention"] for r in pages)
    assert all("types[]" not in r.query and r.query["limit"] == ["40"] for r in pages)
    assert len(pages) == 1 + 4  # the first look, then 40 + 40 + 20 and an empty page


async def test_the_fake_akkoma_refuses_types_as_strict_akkoma_does(served: Make) -> None:
    """The fake can fail: Mastodon's `types[]` is a 400 on a strict Akkoma."""
    _fake, adapter = await served(AKKOMA)
    adapter.flavour = dataclasses.replace(adapter.flavour, notification_type_param="types[]")
    with pytest.raises(Exception, match="400"):
        await adapter.catch_up(Collector())


async def test_akkoma_limits_come_from_the_v1_instance(served: Make) -> None:
    fake, adapter = await served(
        AKKOMA, max_characters=5000, image_size_limit=16_000_000, description_limit=5000
    )
    assert fake.count("GET", "/api/v2/instance") >= 1  # asked: 404
    assert adapter.limits.max_characters == 5000
    assert adapter.limits.image_size_limit == 16_000_000
    assert adapter.limits.description_limit == 5000


async def test_pleroma_takes_png_although_it_lists_only_octet_stream(
    served: Make, tmp_path: Path
) -> None:
    fake, adapter = await served(PLEROMA)
    assert adapter.limits.supported_mime_types == ("application/octet-stream",)
    request = fake.mention("alice@remote.test", "a fox")
    media = (MediaItem(_png(tmp_path), "a fox", "image/png"),)
    result = await adapter.post(_reply(request, adapter, media=media))
    [status] = fake.posted_statuses
    assert status["id"] == result.remote_id and len(status["media_attachments"]) == 1
    assert fake.count("POST", "/api/v1/media") == 1  # Mastodon.py's choice for API level 2.7.2
    assert "media /api/v1/media (application/octet-stream)" in adapter.describe()


@pytest.mark.parametrize(
    ("asked", "sent"), [("en-US", "en"), ("zh-Hant", "zh"), ("ckb", None), ("de", "de")]
)
async def test_akkoma_gets_two_letter_languages_only(
    served: Make, asked: str, sent: str | None
) -> None:
    fake, adapter = await served(AKKOMA)
    request = fake.mention("alice@remote.test", "a fox")
    await adapter.post(_reply(request, adapter, language=asked))
    assert fake.post_params[-1].get("language") == sent
    assert fake.count("POST", "/api/v1/statuses") == 1


async def test_a_language_the_server_refuses_is_dropped_and_the_post_stays_single(
    served: Make,
) -> None:
    """Akkoma 422s a code outside its ISO 639-1 list and caches that 422 under the
    Idempotency-Key: the retry goes without language under a key of its own, and a
    repeat of the whole post (a crash and retry) still makes one status."""
    fake, adapter = await served(AKKOMA)
    request = fake.mention("alice@remote.test", "a fox")
    reply = _reply(request, adapter, language="qq")  # well-formed, no such language
    first = await adapter.post(reply)
    assert [p.get("language") for p in fake.post_params] == [None]
    keys = [r.idempotency_key for r in fake.requests if r.path == "/api/v1/statuses"]
    assert keys == [reply.idempotency_key, f"{reply.idempotency_key}-nolang"]
    again = await adapter.post(reply)
    assert again.remote_id == first.remote_id
    assert len(fake.posted_statuses) == 1 and fake.idempotency_replays == 2


async def test_gotosocial_reply_policy_403_is_reply_forbidden_not_auth(served: Make) -> None:
    fake, adapter = await served(GOTOSOCIAL)
    request = fake.mention("alice@remote.test", "a fox")
    fake.reply_forbidden.add(request["id"])
    with pytest.raises(ReplyForbidden) as caught:
        await adapter.post(_reply(request, adapter))
    assert caught.value.code == "reply_forbidden"
    assert not isinstance(caught.value, AuthError)
    assert "permission to reply" in str(caught.value)
    assert fake.bot_token not in str(caught.value)
    # A 403 about the bot itself stays an authentication failure.
    fake.fail_next(
        "^/api/v1/statuses$", 403, body={"error": "Forbidden: token has insufficient scope"}
    )
    other = fake.mention("bob@remote.test", "a dog")
    with pytest.raises(AuthError) as auth:
        await adapter.post(_reply(other, adapter))
    assert not isinstance(auth.value, ReplyForbidden)


async def test_akkoma_throttled_without_headers_is_transient_with_backoff(served: Make) -> None:
    fake, adapter = await served(AKKOMA)
    request = fake.mention("alice@remote.test", "a fox")
    fake.fail_next("^/api/v1/statuses$", 429)
    with pytest.raises(TransientError) as caught:
        await adapter.post(_reply(request, adapter))
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    last = [r for r in fake.requests if r.path == "/api/v1/statuses"][-1]
    assert last.status == 429


async def test_gotosocial_rate_limit_reset_is_understood(served: Make) -> None:
    fake, adapter = await served(GOTOSOCIAL)
    request = fake.mention("alice@remote.test", "a fox")
    fake.exhaust("statuses", reset_in=600)
    with pytest.raises(TransientError) as caught:
        await adapter.post(_reply(request, adapter))
    assert caught.value.retry_after is not None and caught.value.retry_after > 500


async def test_akkoma_local_and_list_requests_are_answered_privately(served: Make) -> None:
    fake, adapter = await served(AKKOMA)
    for visibility in ("local", "list"):
        status = fake.mention("alice@remote.test", "a fox", visibility=visibility)
        mention = adapter._to_mention(status, None)
        assert mention is not None and mention.visibility is Visibility.DIRECT
        assert adapter.reply_visibility(mention.visibility) is Visibility.DIRECT


@pytest.mark.parametrize("name", ["gotosocial", "akkoma"])
async def test_doctor_line_names_flavour_version_and_stream(name: str, served: Make) -> None:
    fake, adapter = await served(FLAVOURS[name])
    assert await adapter.probe_stream() == "websocket"
    line = adapter.describe()
    _software, version, _mode = EXPECTED[name]
    assert adapter.flavour.name in line and version in line
    assert "streaming over WebSocket" in line
    page = "include_types[], 40 per page" if name == "akkoma" else "types[], 80 per page"
    assert page in line
    assert fake.bot_token not in line


@pytest.mark.parametrize("name", sorted(FLAVOURS))
async def test_doctor_inspects_an_account_without_changing_it(name: str, served: Make) -> None:
    from federation.mastodon_inspect import inspect_account

    fake, adapter = await served(FLAVOURS[name], start=False)
    line = await inspect_account(adapter.config)
    software, version, mode = EXPECTED[name]
    assert line.startswith(f"logged in as fedibot@{fake.domain}; ")
    assert software.value in line.lower()
    assert version in line
    assert ("streaming over SSE" if mode == "sse" else "streaming over WebSocket") in line
    assert fake.bot["bot"] is False  # doctor changes nothing
    assert not any(r.method == "PATCH" for r in fake.requests)
    assert fake.bot_token not in line


async def test_a_refused_websocket_subscription_is_reported_and_mentions_still_arrive(
    served: Make, caplog: pytest.LogCaptureFixture
) -> None:
    """Mastodon refuses a subscription the token's scopes do not allow over the open socket
    (`{"error": ..., "status": 401}`, streaming/index.js); the bot says so and keeps
    receiving by catch-up instead of waiting on a silent stream."""
    caplog.set_level(logging.INFO)
    ws_only = dataclasses.replace(MASTODON, name="mastodon-ws-only", sse=False)
    fake, adapter = await served(ws_only)
    fake.stream_subscription_error = ("Access token does not have the required scopes", 401)
    collector = Collector()
    task = await run_listener(adapter, collector)
    try:
        await fake.wait_for_streams(1)
        # the start's catch-up and the one closing the gap when the stream "connected" are
        # done: only a later catch-up (after the refused stream ended) can see this mention
        await eventually(lambda: fake.count("GET", "/api/v1/notifications") >= 2)
        fake.mention("alice@remote.example", "@fedibot a red fox")
        await eventually(lambda: collector.mentions)
    finally:
        await stop(task)
    assert "refused the subscription: Access token does not have the required scopes" in (
        caplog.text
    )
    assert [m.text for m in collector.mentions] == ["a red fox"]
