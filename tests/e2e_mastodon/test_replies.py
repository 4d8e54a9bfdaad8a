"""Whole-app replies on Mastodon: images with alt text in the right thread and visibility,
help, bad options, opted-out requesters, and generation failures answered privately."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.e2e_mastodon.conftest import (
    Apps,
    HoldingMastodon,
    bot_statuses,
    eventually,
    posted_text,
    replies_to,
    settled,
)
from tests.e2e_mastodon.services import FailingService


async def test_mention_gets_one_reply_with_n_images_and_alt_text_mentioning_only_the_requester(
    fake: HoldingMastodon, apps: Apps
) -> None:
    fake.add_user("someone@else.example")
    request = fake.mention(
        "alice@remote.example", "a red fox with @someone@else.example #tag --n 2"
    )
    assert [m["acct"] for m in request["mentions"]][1:] == ["someone@else.example"]
    app = await apps.start()

    [reply] = await eventually(lambda: replies_to(fake, request["id"]))
    stats = await settled(app)
    assert stats["done"] == 1 and len(bot_statuses(fake)) == 1
    assert reply["in_reply_to_id"] == request["id"]
    assert reply["visibility"] == "unlisted"  # a public request gets an unlisted reply
    # The prompt is echoed without the third party, and its hashtag is not live.
    text = posted_text(fake, reply["id"])
    assert "a red fox with #\u200btag" in text and "someone" not in text
    assert [m["acct"] for m in reply["mentions"]] == ["alice@remote.example"]
    assert reply["tags"] == []
    [job] = await app.queue.list_jobs()
    assert job.state == "done" and job.reply_remote_id == reply["id"]
    images = await app.queue.images(job.id)
    attachments = reply["media_attachments"]
    assert len(images) == 2 and len(attachments) == 2
    stored = await app.queue.image_bytes(job.id, images)
    for row, media in zip(images, attachments, strict=True):
        alt = media["description"]
        assert alt.startswith("AI-generated image") and "a red fox" in alt
        assert f"Seed: {row.seed}" in alt
        assert fake.media[media["id"]].size == len(stored[row.index])  # the very PNG
    assert len(fake.media) == 2
    # fedibot-<install id>-<job>-<kind> (docs/outbound.md)
    key = fake.post_params[0]["idempotency_key"]
    assert re.fullmatch(rf"fedibot-[0-9a-f]{{12}}-{job.id}-result", key), key


async def test_dm_gets_a_direct_reply(fake: HoldingMastodon, apps: Apps) -> None:
    request = fake.mention("bob@remote.example", "a lighthouse at dusk", visibility="direct")
    app = await apps.start()

    [reply] = await eventually(lambda: replies_to(fake, request["id"]))
    await settled(app)
    assert reply["visibility"] == "direct"
    assert [m["acct"] for m in reply["mentions"]] == ["bob@remote.example"]
    assert len(reply["media_attachments"]) == 1
    assert [s["visibility"] for s in bot_statuses(fake)] == ["direct"]


async def test_dm_whose_generation_fails_gets_a_direct_error_reply_never_a_public_one(
    fake: HoldingMastodon, apps: Apps
) -> None:
    request = fake.mention("bob@remote.example", "a lighthouse at dusk", visibility="direct")
    service = FailingService()
    app = await apps.start(service=service, queue={"max_attempts": 2})

    [reply] = await eventually(lambda: replies_to(fake, request["id"]))
    await settled(app)
    assert service.calls == 2  # tried again once before giving up
    [job] = await app.queue.list_jobs()
    assert (job.state, job.error_code, job.reply_state) == ("failed", "generation_failed", "sent")
    assert reply["visibility"] == "direct"
    assert [m["acct"] for m in reply["mentions"]] == ["bob@remote.example"]
    text = posted_text(fake, reply["id"])
    assert "Sorry" in text and "CUDA" not in text  # friendly, no internals
    assert reply["media_attachments"] == [] and fake.media == {}
    assert [s["visibility"] for s in bot_statuses(fake)] == ["direct"]


async def test_followers_only_mention_gets_direct_replies_only(
    fake: HoldingMastodon, apps: Apps
) -> None:
    image = fake.mention("carol@remote.example", "a quiet garden --n 2", visibility="private")
    bad = fake.mention("carol@remote.example", "a cat --n 9", visibility="private")
    asks_help = fake.mention("carol@remote.example", "help", visibility="private")
    app = await apps.start(
        accounts=[
            {
                "platform": "mastodon",
                "name": "main",
                "base_url": fake.base_url,
                "access_token": fake.bot_token,
                "public_reply_visibility": "public",
            }
        ]
    )

    await eventually(lambda: len(bot_statuses(fake)) >= 3)
    await settled(app)
    answered = {s["in_reply_to_id"] for s in bot_statuses(fake)}
    assert answered == {image["id"], bad["id"], asks_help["id"]}
    assert len(bot_statuses(fake)) == 3
    # a followers-only reply would reach the bot's followers: direct (docs/outbound.md)
    assert {s["visibility"] for s in bot_statuses(fake)} == {"direct"}
    assert {p["visibility"] for p in fake.post_params} == {"direct"}


async def test_help_gets_the_usage_and_n_9_gets_the_allowed_range(
    fake: HoldingMastodon, apps: Apps
) -> None:
    asks_help = fake.mention("alice@remote.example", "help")
    bad = fake.mention("alice@remote.example", "a cat in a hat --n 9")
    app = await apps.start()

    [usage] = await eventually(lambda: replies_to(fake, asks_help["id"]))
    [refusal] = await eventually(lambda: replies_to(fake, bad["id"]))
    await settled(app)
    text = posted_text(fake, usage["id"])
    assert "Mention me with what you want to see" in text and "--n 1-4" in text
    text = posted_text(fake, refusal["id"])
    assert "--n must be a whole number from 1 to 4" in text and "9" in text
    assert [m["acct"] for m in refusal["mentions"]] == ["alice@remote.example"]
    assert fake.media == {} and len(bot_statuses(fake)) == 2  # nothing generated
    states = sorted((j.kind, j.state, j.error_code) for j in await app.queue.list_jobs())
    assert states == [("help", "done", None), ("mention", "rejected", "bad_option")]


async def test_nobot_or_noai_in_the_profile_note_means_nothing_generated_nothing_posted(
    fake: HoldingMastodon, apps: Apps, data_dir: Path
) -> None:
    fake.add_user("carol@remote.example", note="Artist. #nobot please")
    fake.add_user("dave@remote.example", note="Photographer (#NoAI)")
    fake.mention("carol@remote.example", "a portrait of me")
    fake.mention("dave@remote.example", "a portrait of me", visibility="direct")
    app = await apps.start()
    # Alice asks after them: once she has her answer, theirs were long handled.
    await eventually(lambda: len(fake.requests) and fake.open_streams)
    later = fake.mention("alice@remote.example", "a teapot")

    await eventually(lambda: replies_to(fake, later["id"]))
    await settled(app)
    assert [s["in_reply_to_id"] for s in bot_statuses(fake)] == [later["id"]]
    jobs: dict[str, Any] = {j.requester: j for j in await app.queue.list_jobs()}
    for acct in ("carol@remote.example", "dave@remote.example"):
        refused = jobs[acct]
        assert (refused.state, refused.error_code, refused.reply_state) == (
            "rejected",
            "opted_out",
            "none",
        )
        assert not (data_dir / "images" / str(refused.id)).exists()
        assert await app.queue.images(refused.id) == []
    assert len(fake.media) == 1  # Alice's only
