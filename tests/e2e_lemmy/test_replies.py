"""Whole-app replies on Lemmy: a mention gets a comment with images, a private message gets a
private message; help, bad options and #nobot requesters (both API versions)."""

from __future__ import annotations

import aiohttp
import pytest

from federation.markdown_safe import unescape
from tests.e2e_lemmy.conftest import (
    Apps,
    all_read,
    answers_to,
    embedded_images,
    eventually,
    settled,
    uploaded_name,
)
from tests.fakes.lemmy_server import FakeLemmy


async def test_mention_gets_one_comment_reply_with_uploaded_images_and_alt_text(
    fake: FakeLemmy, apps: Apps
) -> None:
    alice = fake.add_user("alice", domain="remote.example")
    mention = fake.mention(alice, "a red fox in the snow --n 2")
    app = await apps.start()

    replies = await eventually(lambda: fake.comments_by(fake.bot))
    stats = await settled(app)
    assert stats["done"] == 1 and len(fake.comments_by(fake.bot)) == 1
    reply = replies[0]
    assert reply["path"] == f"{mention['path']}.{reply['id']}"  # parent_id = the mention
    assert reply["post_id"] == mention["post_id"]

    [job] = await app.queue.list_jobs()
    assert job.state == "done" and job.reply_remote_id == str(reply["id"])
    assert job.requester == "alice@remote.example" and job.prompt == "a red fox in the snow"
    images = await app.queue.images(job.id)
    embedded = embedded_images(reply["content"])
    assert len(images) == 2 and len(embedded) == 2
    stored = await app.queue.image_bytes(job.id, images)
    async with aiohttp.ClientSession() as http:
        for row, (alt, url, is_image) in zip(images, embedded, strict=True):
            assert is_image
            assert alt.startswith("AI\\-generated image") and "red fox in the snow" in alt
            assert f"Seed\\: {row.seed}" in alt
            assert uploaded_name(fake, url) in fake.images  # really uploaded to pict-rs
            async with http.get(url) as resp:  # and served back: the very PNG generated
                assert resp.status == 200
                assert await resp.read() == stored[row.index]
    assert len(fake.images) == 2
    await eventually(lambda: all_read(fake))


async def test_private_message_gets_a_private_message_reply_and_nothing_public(
    fake: FakeLemmy, apps: Apps
) -> None:
    bob = fake.add_user("bob", domain="remote.example")
    request = fake.private_message(bob, "a lighthouse at dusk --n 2")
    app = await apps.start()

    sent = await eventually(lambda: fake.messages_by(fake.bot))
    stats = await settled(app)
    assert stats["done"] == 1
    assert len(fake.messages_by(fake.bot)) == 1
    [message] = sent
    assert message["recipient_id"] == bob["id"]
    links = embedded_images(message["content"])
    assert len(links) == 2
    assert all(
        not is_image and uploaded_name(fake, url) in fake.images for _, url, is_image in links
    )
    assert "![" not in message["content"]
    assert fake.comments_by(fake.bot) == []  # nothing public: no comment, no post
    assert [p for p in fake.posts.values() if p["creator_id"] == fake.bot["id"]] == []
    [job] = await app.queue.list_jobs()
    assert job.visibility == "direct" and job.reply_remote_id == f"pm:{message['id']}"
    await eventually(lambda: all_read(fake))
    assert fake.api_version == "v4" or request["read"]  # 1.0 marks the notification instead


async def test_a_private_request_in_a_comment_is_answered_by_private_message(
    fake: FakeLemmy, apps: Apps
) -> None:
    bob = fake.add_user("bob", domain="remote.example")
    fake.mention(bob, "a secret garden --private")
    app = await apps.start()

    [message] = await eventually(lambda: fake.messages_by(fake.bot))
    stats = await settled(app)
    assert stats["done"] == 1
    assert message["recipient_id"] == bob["id"]
    assert len(embedded_images(message["content"])) == 1
    assert fake.comments_by(fake.bot) == []  # nothing in the public thread


async def test_help_gets_the_usage_and_a_bad_option_gets_the_allowed_range(
    fake: FakeLemmy, apps: Apps
) -> None:
    alice = fake.add_user("alice", domain="remote.example")
    asks_help = fake.mention(alice, "help")
    bad = fake.mention(alice, "a cat in a hat --n 9")
    app = await apps.start()

    await eventually(lambda: len(fake.comments_by(fake.bot)) >= 2)
    await settled(app)
    by_parent = {c["path"].split(".")[-2]: c for c in fake.comments_by(fake.bot)}
    assert len(fake.comments_by(fake.bot)) == 2
    usage = by_parent[str(asks_help["id"])]["content"]
    assert "Mention me with what you want to see" in usage and "--n 1-4" in usage
    # the error quotes what the user wrote, so it is markdown-escaped: compare what renders
    refusal = unescape(by_parent[str(bad["id"])]["content"])
    assert "--n must be a whole number from 1 to 4" in refusal and "'9'" in refusal
    assert fake.images == {}  # neither generated anything
    states = sorted((j.kind, j.state, j.error_code) for j in await app.queue.list_jobs())
    assert states == [("help", "done", None), ("mention", "rejected", "bad_option")]


async def test_a_requester_with_nobot_in_their_bio_gets_nothing(
    fake: FakeLemmy, apps: Apps
) -> None:
    carol = fake.add_user("carol", domain="remote.example", bio="Artist. **#nobot** please")
    alice = fake.add_user("alice", domain="remote.example")
    fake.mention(carol, "a portrait of me")
    app = await apps.start()
    # Alice asks after Carol: once Alice has her answer, Carol's request was long handled.
    await eventually(lambda: all_read(fake))
    later = fake.mention(alice, "a teapot")

    answered = await eventually(lambda: fake.comments_by(fake.bot))
    await settled(app)
    assert [c["path"].split(".")[-2] for c in answered] == [str(later["id"])]
    assert fake.messages_by(fake.bot) == []
    jobs = {j.requester: j for j in await app.queue.list_jobs()}
    refused = jobs["carol@remote.example"]
    assert (refused.state, refused.error_code, refused.reply_state) == (
        "rejected",
        "opted_out",
        "none",
    )
    assert len(fake.images) == 1  # Alice's only


@pytest.mark.parametrize("api_version", ["v3"])  # the check is the same on both APIs
async def test_images_are_classified_by_nudenet_before_the_reply(
    fake: FakeLemmy, apps: Apps
) -> None:
    alice = fake.add_user("alice", domain="remote.example")
    mention = fake.mention(alice, "a bowl of fruit")
    app = await apps.start(generator={"safety": {"classifier": "nudenet"}})

    [reply] = await eventually(lambda: answers_to(fake, mention), timeout=60)
    await settled(app)
    [job] = await app.queue.list_jobs()
    [image] = await app.queue.images(job.id)
    assert image.safety["classifier"] == "nudenet" and isinstance(image.safety["labels"], dict)
    assert job.safety == {"flagged": image.flagged, "classifier": "nudenet"}
    # An unflagged image is shown directly; a flagged one would sit in a spoiler block.
    assert ("::: spoiler" in reply["content"]) == image.flagged
