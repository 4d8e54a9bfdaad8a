"""A prompt full of markdown, links, images, HTML and mentions comes back inert in the reply."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e_lemmy.conftest import Apps, answers_to, embedded_images, eventually, settled
from tests.fakes.lemmy_server import FakeLemmy
from tests.lemmy.markdown_check import active_constructs, rendered_text

# The user escaped the markdown in their own comment, so it reaches the prompt literally.
# `x@admin@lemmy.ml` survives the prompt parser (which drops free-standing @mentions) but
# would still be seen by Lemmy's server-side mention scanner if it went out unescaped.
INJECTION = (
    r"a cat \[x\]\(http://evil.example\) \!\[i\]\(http://evil.example/i.png\) "
    r"@admin@lemmy.ml x@admin@lemmy.ml \*\*bold\*\* \<b\>html\</b\>"
)
LITERAL = (
    "a cat [x](http://evil.example) ![i](http://evil.example/i.png) "
    "x@admin@lemmy.ml **bold** <b>html</b>"
)


@pytest.fixture
def fake_options() -> dict[str, Any]:
    return {"hostname": "lemmy.ml"}  # so that @admin@lemmy.ml is a real local user


def _mentions_of(fake: FakeLemmy, person: dict[str, Any], by: dict[str, Any]) -> list[Any]:
    return [
        m
        for m in fake.person_mentions.values()
        if m["recipient_id"] == person["id"]
        and fake.comments[m["comment_id"]]["creator_id"] == by["id"]
    ]


async def test_markdown_link_image_html_and_mention_injection_is_neutralised(
    fake: FakeLemmy, apps: Apps
) -> None:
    admin = fake.add_user("admin")
    mallory = fake.add_user("mallory", domain="remote.example")
    request = fake.mention(mallory, INJECTION)
    assert _mentions_of(fake, admin, mallory)  # the scanner does see raw mentions
    app = await apps.start()

    [reply] = await eventually(lambda: answers_to(fake, request))
    await settled(app)
    [job] = await app.queue.list_jobs()
    assert job.state == "done" and job.prompt == LITERAL  # the injection reached the prompt

    content = reply["content"]
    assert _mentions_of(fake, admin, fake.bot) == []  # the bot pinged nobody
    assert active_constructs(content) == ["image"]  # only the bot's own image is active
    [(alt, url, is_image)] = embedded_images(content)
    assert is_image and url.startswith(fake.base_url + "/")
    assert "evil.example" not in url
    visible = rendered_text(content)
    assert LITERAL in visible  # shown exactly as typed, as text
    assert "http://evil.example" in alt.replace("\\", "")  # the alt text is escaped too
