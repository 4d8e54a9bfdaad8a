"""The one visibility rule (federation.visibility.reply_visibility) and its users."""

from __future__ import annotations

import pytest

from federation.types import Visibility
from federation.visibility import reply_visibility

V = Visibility


@pytest.mark.parametrize(
    ("requested", "cap", "expected"),
    [
        (V.PUBLIC, V.PUBLIC, V.PUBLIC),
        (V.PUBLIC, V.UNLISTED, V.UNLISTED),
        (V.UNLISTED, V.PUBLIC, V.UNLISTED),
        (V.UNLISTED, V.UNLISTED, V.UNLISTED),
        # followers-only: a followers-only reply reaches the BOT's followers, so: direct
        (V.PRIVATE, V.PUBLIC, V.DIRECT),
        (V.PRIVATE, V.UNLISTED, V.DIRECT),
        (V.DIRECT, V.PUBLIC, V.DIRECT),
    ],
)
def test_reply_visibility(requested: V, cap: V, expected: V) -> None:
    assert reply_visibility(requested, cap) is expected
    assert reply_visibility(requested, cap).rank >= requested.rank  # never wider


def test_no_platform_branches_in_the_application() -> None:
    """Escaping and visibility mapping belong to the adapters: the outbound code never asks
    which platform it talks to."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "fedibot" / "outbound"
    for path in root.glob("*.py"):
        text = path.read_text()
        assert "platform ==" not in text and '"lemmy"' not in text, path
        assert "markdown_safe" not in text, path


@pytest.mark.parametrize("platform", ["mastodon"])
async def test_a_followers_only_request_gets_a_direct_reply(world) -> None:
    mention = await world.request("a red fox", visibility="private")
    job_id = await world.result_job(mention, images=1)
    process = await world.process()
    assert await process.reply_once() == 1
    (reply,) = world.bot_posts()
    assert reply["visibility"] == "direct"
    job = await world.job(job_id)
    assert job.reply_remote_id == reply["id"]


@pytest.mark.parametrize("platform", ["lemmy"])
async def test_on_lemmy_a_private_post_goes_as_a_private_message(world) -> None:
    """Lemmy has neither direct nor followers-only comments: such a post is a message."""
    from federation.types import OutgoingPost

    process = await world.process()
    recipient = world.requester
    post = OutgoingPost(
        text="only for you",
        visibility=V.PRIVATE,
        context={"creator_id": recipient["id"]},
    )
    result = await process.adapter.post(post)
    assert result.remote_id.startswith("pm:")
    assert world.fake.messages_by(world.fake.bot)[0]["recipient_id"] == recipient["id"]
