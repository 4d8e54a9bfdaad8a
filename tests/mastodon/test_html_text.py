"""html_to_text on recorded Mastodon HTML and on hostile input."""

from __future__ import annotations

import json
import re

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from federation.html_text import html_to_text
from tests.fixtures_path import MASTODON_CASSETTES

_TAG = re.compile(r"<[^<>]*>")


def _recorded_mention_statuses() -> list[dict]:
    """Every status with h-card mentions in the cassettes (REST bodies and SSE events)."""
    found: dict[str, dict] = {}
    for path in sorted(MASTODON_CASSETTES.glob("*.yaml")):
        if "202" in path.name:
            continue
        with open(path, encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        for interaction in data["interactions"]:
            body = interaction["response"]["body"].get("string")
            if not isinstance(body, str):
                continue
            for chunk in [body, *[ln[6:] for ln in body.split("\n") if ln.startswith("data: ")]]:
                try:
                    parsed = json.loads(chunk)
                except ValueError:
                    continue
                stack = [parsed]
                while stack:
                    item = stack.pop()
                    if isinstance(item, dict):
                        if "h-card" in str(item.get("content", "")) and item.get("mentions"):
                            found[item["content"]] = item
                        stack.extend(item.values())
                    elif isinstance(item, list):
                        stack.extend(item)
    return list(found.values())


def test_recorded_h_card_mentions_are_removed() -> None:
    statuses = _recorded_mention_statuses()
    assert len(statuses) >= 4  # the cassettes hold several distinct mention statuses
    texts = {html_to_text(s["content"], s["mentions"]) for s in statuses}
    assert texts == {
        "hello!",
        "same!",
        "todo funny text here",
        "beep beep I'm a jeep",
        "pssssst",
        "pssssst!",
    }


def test_recorded_entities_are_decoded() -> None:
    content = "<p>on the internet, nobody knows you&#39;re a plane</p>"
    assert html_to_text(content) == "on the internet, nobody knows you're a plane"


def test_other_mentions_kept_as_acct_when_asked() -> None:
    mentions = [
        {"id": "1", "username": "bot", "acct": "bot", "url": "https://bots.test/@bot"},
        {"id": "2", "username": "bob", "acct": "bob@far.test", "url": "https://far.test/@bob"},
    ]
    content = (
        '<p><span class="h-card" translate="no"><a href="https://bots.test/@bot" '
        'class="u-url mention">@<span>bot</span></a></span> draw <span class="h-card">'
        '<a href="https://far.test/@bob" class="u-url mention">@<span>bob</span></a></span>'
        " as a cat</p>"
    )
    assert html_to_text(content, mentions) == "draw as a cat"
    kept = html_to_text(content, mentions, keep_mentions=True, bot_account_id="1")
    assert kept == "draw @bob@far.test as a cat"


def test_hashtags_stay_words_and_invisible_link_parts_drop() -> None:
    content = (
        '<p>a <a href="https://x.test/tags/fox" class="mention hashtag" rel="tag">'
        '#<span>fox</span></a> see <a href="https://example.com/a/long/path" rel="nofollow">'
        '<span class="invisible">https://</span><span class="ellipsis">example.com/a/lo'
        '</span><span class="invisible">ng/path</span></a></p><p>next&amp;line<br>two</p>'
    )
    assert html_to_text(content) == "a #fox see example.com/a/lo next&line two"


def test_pleroma_style_mention_without_h_card_class_on_link_is_matched_by_href() -> None:
    mentions = [{"id": "9", "username": "bot", "acct": "bot", "url": "https://p.test/users/bot"}]
    content = (
        '<span class="h-card"><a class="u-url mention" data-user="9" '
        'href="https://p.test/users/bot" rel="ugc">@<span>bot</span></a></span> hi'
    )
    assert html_to_text(content, mentions) == "hi"


def test_unlisted_mention_link_stays_as_text() -> None:
    content = '<p><a href="https://z.test/@zed" class="u-url mention">@<span>zed</span></a> yo</p>'
    assert html_to_text(content, []) == "@zed yo"


def test_scripts_styles_and_tag_like_entities_leave_no_markup() -> None:
    content = "<p>x<script>alert(1)</script><style>p{}</style> &lt;b&gt;bold&lt;/b&gt; 1 &lt; 2</p>"
    out = html_to_text(content)
    assert out == "x ‹b›bold‹/b› 1 < 2"
    assert not _TAG.search(out)


def test_unbalanced_markup_does_not_swallow_text() -> None:
    assert html_to_text("<p>one <b>two</i> three</p></div></span>four") == "one two three four"
    assert html_to_text('<span class="invisible">gone') == ""
    assert html_to_text("plain & simple") == "plain & simple"
    assert html_to_text(None) == ""


_HTML_BITS = st.sampled_from(
    [
        "<p>",
        "</p>",
        "<br>",
        "<br/>",
        '<span class="invisible">',
        "</span>",
        "<a href='x'>",
        "</a>",
        '<span class="h-card">',
        '<a class="u-url mention" href="https://b.test/@bot">',
        "<script>",
        "</script>",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "<!DOCTYPE html>",
        "<?xml ?>",
        "&amp;",
        "&lt;",
        "&gt;",
        "&#39;",
        "&#x3c;",
        "&#0;",
        "&#xFFFFFF;",
        "&bogus;",
        "<",
        ">",
        "<<",
        "@bot",
        "#tag",
        "\x00",
        "\n",
        " ",
        "<img src=x onerror=alert(1)>",
        "<b",
        "</",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_HTML_BITS, st.text(max_size=8)), max_size=40))
def test_hostile_html_never_raises_and_leaves_no_markup(parts: list[str]) -> None:
    mentions = [{"id": "1", "username": "bot", "acct": "bot", "url": "https://b.test/@bot"}]
    out = html_to_text("".join(parts), mentions, keep_mentions=True, bot_account_id="2")
    assert isinstance(out, str)
    assert not _TAG.search(out)
    assert out == out.strip() and "  " not in out


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.characters(
            whitelist_categories=("L", "N", "P", "S", "Zs"), blacklist_characters="<>"
        ),
        max_size=60,
    )
)
def test_escaped_plain_text_comes_back_unchanged(text: str) -> None:
    import html as stdlib_html

    out = html_to_text(f"<p>{stdlib_html.escape(text)}</p>")
    assert out == " ".join(text.split())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["&amp;", "&quot;", "&#39;", "&eacute;", "&#233;", "&#x1F600;"]))
def test_entities_are_decoded(entity: str) -> None:
    import html as stdlib_html

    assert html_to_text(f"<p>a{entity}b</p>") == "a" + stdlib_html.unescape(entity) + "b"
