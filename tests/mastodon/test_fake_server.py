"""The fake answers Mastodon.py the way the recorded server did."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import requests
import yaml
from mastodon import Mastodon
from PIL import Image

from tests.fakes.mastodon_server import FakeMastodon, templates
from tests.fixtures_path import MASTODON_CASSETTES


def _client(fake: FakeMastodon) -> Mastodon:
    return Mastodon(
        access_token=fake.bot_token,
        api_base_url=fake.base_url,
        ratelimit_method="throw",
        request_timeout=10,
    )


async def test_entities_carry_every_recorded_field(fake: FakeMastodon) -> None:
    status = fake.mention("alice@remote.test", "hi #cats")
    assert set(status) == set(templates()["status"])
    assert set(status["account"]) == set(templates()["account"])
    api = _client(fake)
    notes = await asyncio.to_thread(api.notifications, types=["mention"])
    raw = (
        await asyncio.to_thread(
            requests.get,
            fake.base_url + "/api/v1/notifications",
            timeout=5,
            headers={"Authorization": f"Bearer {fake.bot_token}"},
        )
    ).json()
    assert set(raw[0]) == set(templates()["notification"])
    assert isinstance(raw[0]["id"], str) and isinstance(raw[0]["status"]["id"], str)
    assert notes[0].status.tags[0].name == "cats"
    assert '<span class="h-card" translate="no"><a href="' in raw[0]["status"]["content"]
    assert 'class="mention hashtag" rel="tag">#<span>cats</span></a>' in raw[0]["status"]["content"]


async def test_link_pagination_works_with_mastodon_py(fake: FakeMastodon) -> None:
    for i in range(7):
        fake.mention("alice@remote.test", f"n{i}")
    fake.notify("follow", "bob@remote.test")
    all_ids = [n.id for n in fake.notifications if n.type == "mention"]
    api = _client(fake)
    first = await asyncio.to_thread(api.notifications, types=["mention"], limit=4)
    assert [n.id for n in first] == list(reversed(all_ids))[:4]  # newest first
    older = await asyncio.to_thread(api.fetch_next, first)
    assert [n.id for n in older] == list(reversed(all_ids))[4:]
    assert await asyncio.to_thread(api.fetch_next, older) == []
    # min_id gives the oldest entries after it, newest first; fetch_previous goes newer.
    low = await asyncio.to_thread(api.notifications, types=["mention"], min_id="0", limit=3)
    assert [n.id for n in low] == list(reversed(all_ids[:3]))
    newer = await asyncio.to_thread(api.fetch_previous, low)
    assert [n.id for n in newer] == list(reversed(all_ids[3:6]))
    response = await asyncio.to_thread(
        requests.get,
        fake.base_url + "/api/v1/notifications?types[]=mention&limit=2",
        headers={"Authorization": f"Bearer {fake.bot_token}"},
        timeout=5,
    )
    link = response.headers["Link"]
    assert 'rel="next"' in link and 'rel="prev"' in link and "types%5B%5D=mention" in link


async def test_every_response_has_iso_ratelimit_headers(fake: FakeMastodon) -> None:
    def get(path: str) -> requests.Response:
        return requests.get(
            fake.base_url + path, timeout=5, headers={"Authorization": f"Bearer {fake.bot_token}"}
        )

    for path in (
        "/api/v2/instance",
        "/api/v1/instance/",
        "/api/v1/notifications",
        "/api/v1/statuses/1",
        "/api/v1/accounts/verify_credentials",
    ):
        response = await asyncio.to_thread(get, path)
        assert response.headers["x-ratelimit-limit"] == "300"
        assert response.headers["x-ratelimit-reset"].endswith("Z")
        assert "T" in response.headers["x-ratelimit-reset"]
    fake.exhaust("api", reset_in=30)
    limited = await asyncio.to_thread(get, "/api/v1/notifications")
    assert limited.status_code == 429 and limited.headers["x-ratelimit-remaining"] == "0"


async def test_media_202_then_processed_and_idempotent_status(
    fake: FakeMastodon, tmp_path: Path
) -> None:
    fake.media_polls_before_ready = 2
    image = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(image)
    api = _client(fake)
    media = await asyncio.to_thread(api.media_post, str(image), description="alt")
    assert media.url is None
    assert (await asyncio.to_thread(api.media, media)).url is None  # 206 while processing
    assert (await asyncio.to_thread(api.media, media)).url is not None
    one = await asyncio.to_thread(api.status_post, "x", media_ids=[media], idempotency_key="same")
    two = await asyncio.to_thread(api.status_post, "x", media_ids=[media], idempotency_key="same")
    assert one.id == two.id and len(fake.posted_statuses) == 1
    deleted = await asyncio.to_thread(api.status_delete, one)
    assert deleted.text == "x"


async def test_stream_frames_match_the_recording(fake: FakeMastodon) -> None:
    with open(MASTODON_CASSETTES / "stream_user_direct.yaml", encoding="utf-8") as fh:
        recorded = yaml.safe_load(fh)["interactions"][-1]["response"]["body"]["string"]
    received: list[bytes] = []

    def read() -> None:
        with requests.get(
            fake.base_url + "/api/v1/streaming/user",
            stream=True,
            timeout=5,
            headers={"Authorization": f"Bearer {fake.bot_token}"},
        ) as r:
            assert r.headers["Content-Type"] == "text/event-stream"
            for chunk in r.iter_content(chunk_size=None):
                received.append(chunk)
                if b"event: delete" in b"".join(received):
                    return

    reader = asyncio.create_task(asyncio.to_thread(read))
    await fake.wait_for_streams(1)
    status = fake.mention("alice@remote.test", "pssst", visibility="direct")
    fake.delete_status(status["id"])
    await asyncio.wait_for(reader, 10)
    text = b"".join(received).decode()
    assert text.startswith(recorded[:3])  # ":)\n"
    frames = [f for f in text.split("\n\n") if "event:" in f]
    for frame in frames:
        event, data = frame.strip().split("\n")[-2:]
        assert event.startswith("event: ") and data.startswith("data: ")
    notification = json.loads(frames[0].split("data: ", 1)[1])
    assert notification["type"] == "mention" and notification["status"]["id"] == status["id"]
    assert frames[-1].endswith(f"event: delete\ndata: {status['id']}")
    assert f"event: delete\ndata: {recorded.split('event: delete')[1].split()[1]}" in recorded


async def test_stream_health_and_instance_point_mastodon_py_at_the_fake(
    fake: FakeMastodon,
) -> None:
    api = _client(fake)
    assert await asyncio.to_thread(api.stream_healthy)
    v1 = await asyncio.to_thread(api.instance_v1)
    assert v1.urls.streaming_api == f"ws://127.0.0.1:{fake.port}"
    assert (await asyncio.to_thread(api.retrieve_mastodon_version)) == fake.version
