"""Pictures of Lemmy requests (docs/picture-input.md): an image in the comment's markdown is
an attachment; the post's image counts only when the comment asks for `--strength`; the
adapter vouches for its own instance and the requester's, and the fetcher (real HTTP to the
fake's pict-rs) gets the bytes from there and refuses other hosts."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from federation.attachments import AttachmentError, fetch_attachment
from federation.lemmy import LemmyAdapter
from tests.fakes.lemmy_server import FakeLemmy

OWN_SERVER = ("127.0.0.1",)  # the fake Lemmy is the bot's own server: a trusted address


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def alice(fake: FakeLemmy) -> dict:
    return fake.add_user("alice", domain="remote.example")


async def test_an_image_in_the_comment_markdown_is_fetched_from_the_instance(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    url = fake.add_image(alice, png())
    fake.mention(alice, f"a cat ![my cat]({url}) --strength 0.5")
    assert await adapter.catch_up(sink) == 1
    [mention] = sink.mentions
    [attachment] = mention.attachments
    assert attachment.url == url and attachment.description == "my cat"
    assert attachment.source == "comment" and attachment.kind == "image"
    assert mention.media_hosts[0] == fake.base_url.split("//", 1)[1]
    assert "remote.example" in mention.media_hosts
    fetched = await fetch_attachment(attachment, mention.media_hosts, trusted=OWN_SERVER)
    assert fetched.data == png() and fetched.content_type == "image/png"


async def test_the_posts_image_counts_only_with_strength(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    url = fake.add_image(alice, png())
    post = fake.add_post(
        alice, "my photo", url=url, url_content_type="image/png", alt_text="a photo of my cat"
    )
    fake.mention(alice, "a fox", post=post)
    fake.mention(alice, "a fox --strength 0.4", post=post)
    assert await adapter.catch_up(sink) == 2
    plain, with_strength = sorted(sink.mentions, key=lambda m: int(m.remote_id))
    assert plain.attachments == ()
    [attachment] = with_strength.attachments
    assert attachment.url == url and attachment.source == "post"
    assert attachment.description == "a photo of my cat" and attachment.kind == "image"
    fetched = await fetch_attachment(
        attachment, with_strength.media_hosts, trusted=OWN_SERVER
    )
    assert fetched.data == png()


async def test_an_image_on_another_host_is_never_fetched(
    adapter: LemmyAdapter, fake: FakeLemmy, alice: dict, sink
) -> None:
    fake.mention(alice, "a cat ![x](http://203.0.113.7/pictrs/image/a.png) --strength 0.5")
    assert await adapter.catch_up(sink) == 1
    [mention] = sink.mentions
    with pytest.raises(AttachmentError) as caught:
        await fetch_attachment(mention.attachments[0], mention.media_hosts)
    assert caught.value.code == "picture_foreign_host"
