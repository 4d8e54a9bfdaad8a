"""markdown_safe.escape: user text renders literally and cannot inject markup or mentions."""

from __future__ import annotations

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from federation.markdown_safe import escape, to_plain_text, unescape
from tests.lemmy.markdown_check import active_constructs, rendered_text

INJECTIONS = [
    "[x](http://evil)",
    "![i](u)",
    "@admin@lemmy.ml",
    "!community@x.y",
    "**bold**",
    "<img src=x onerror=alert(1)>",
    "<b>hi</b>",
    "`code`",
    "```\nfence\n```",
    "# heading",
    "> quote",
    "- item",
    "1. item",
    "http://evil.example/x",
    "www.evil.example",
    "mail admin@evil.example",
    "[ref]: http://evil\n\n[ref]",
    "::: spoiler x\nhidden\n:::",
    "~~strike~~",
    "_em_ *em*",
    "line1\n\n---\nline2",
]


def test_the_checker_sees_each_injection_unescaped() -> None:
    """Guard for the checker itself: every sample is active when NOT escaped."""
    for sample in INJECTIONS:
        assert active_constructs(sample), sample


def test_escaped_injections_are_inert_and_read_as_typed() -> None:
    for sample in INJECTIONS:
        escaped = escape(sample)
        assert active_constructs(f"Prompt: {escaped}") == [], (sample, escaped)
        assert active_constructs(escaped) == [], (sample, escaped)
        expected = sample.replace("\n", " ")
        assert rendered_text(f"Prompt: {escaped}") == f"Prompt: {expected}"


def test_a_realistic_prompt_with_every_trick_is_neutralised() -> None:
    prompt = (
        "a cat [x](http://evil) ![i](u) @admin@lemmy.ml !community@x **bold** "
        "<script>alert(1)</script> `rm -rf` \n# pwned"
    )
    escaped = escape(prompt)
    assert active_constructs(f"Here is your image for: {escaped}") == []
    assert "@admin@" not in escaped and "](" not in escaped


def test_escape_is_one_line_and_drops_invisible_characters() -> None:
    assert escape("a\nb\r\nc\u2028d") == "a b c d"
    assert escape("a\u200bb\u202ec\x00d") == "abcd"


def test_to_plain_text_reads_links_images_and_escapes() -> None:
    text = to_plain_text("**Hi** [@imagebot@lemmy.test](https://lemmy.test/u/imagebot) a \\*cat\\*")
    assert text == "Hi @imagebot@lemmy.test a *cat*"
    assert to_plain_text("> quoted\n\n![alt](http://x/y.png)") == "quoted\nalt"


PIECES = [
    *"abc xyz019@!#[]()<>*_`~^:.-+=|&;/\\\"'{}$%?\n\t\u200b",
    "http://",
    "www.",
    "admin@lemmy.ml",
    "](",
    "![",
    "**",
    "<b>",
    "&amp;",
    ":::",
    "    ",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=3), max_size=30).map("".join))
def test_escaped_output_never_has_an_active_link_image_or_mention(text: str) -> None:
    escaped = escape(text)
    # Inside a sentence (how replies use it) nothing at all is active.
    assert active_constructs(f"Prompt: {escaped}") == []
    # Standalone, at least no link, image, HTML, emphasis or mention (blocks need a line start).
    assert active_constructs(escaped, blocks=False) == []
    # And it still says what the user typed.
    normal = "".join(
        ch
        for ch in re.sub("\r\n|[\r\n\x0b\x0c\x85\u2028\u2029]", " ", text)
        if ch == "\t" or unicodedata.category(ch) not in ("Cc", "Cf") or ch in "\u200c\u200d"
    )
    assert unescape(escaped) == normal
