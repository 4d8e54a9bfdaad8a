"""What counts as "active" markdown in a Lemmy reply, checked with a real CommonMark parser.

markdown-it-py (CommonMark, plus GFM strikethrough/tables as lemmy-ui enables) parses the
text; any token that would render a link, image, HTML, code, emphasis or block structure is
active. Linkify and Lemmy's mention scanners are not part of markdown-it-py's install here, so
their inputs are checked directly: linkify only looks at plain `text` tokens (escaped
characters arrive as separate `text_special` tokens), and Lemmy's server scans the raw
markdown for `@name@domain`.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt

_MD = MarkdownIt("commonmark").enable(["strikethrough", "table"]).disable("text_join")
INLINE_ACTIVE = {
    "link_open",
    "image",
    "html_inline",
    "code_inline",
    "strong_open",
    "em_open",
    "s_open",
    "autolink",
    "hardbreak",
}
BLOCK_ACTIVE = {
    "html_block",
    "heading_open",
    "bullet_list_open",
    "ordered_list_open",
    "blockquote_open",
    "fence",
    "code_block",
    "hr",
    "table_open",
}
LEMMY_MENTION = re.compile(r"@(?P<name>[\w.]+)@(?P<domain>[a-zA-Z0-9._:-]+)")
COMMUNITY_MENTION = re.compile(r"!\w+@[\w.-]+")
SPOILER = re.compile(r"(^|\n) {0,3}:::")  # lemmy-ui's spoiler container
LINKIFY_INPUT = re.compile(r"://|www\.|\w@[\w-]+\.\w|mailto:", re.IGNORECASE)


def active_constructs(markdown: str, *, blocks: bool = True) -> list[str]:
    """Names of the active constructs in `markdown` (empty: it renders as plain text)."""
    found = [f"lemmy-mention {m.group(0)}" for m in LEMMY_MENTION.finditer(markdown)]
    if blocks and SPOILER.search(markdown):
        found.append("lemmy-spoiler")
    for token in _MD.parse(markdown):
        if blocks and token.type in BLOCK_ACTIVE:
            found.append(token.type)
        for child in token.children or []:
            if child.type in INLINE_ACTIVE:
                found.append(child.type)
            if child.type == "text":
                if LINKIFY_INPUT.search(child.content):
                    found.append(f"linkify {child.content!r}")
                if COMMUNITY_MENTION.search(child.content):
                    found.append(f"community {child.content!r}")
    return found


def rendered_text(markdown: str) -> str:
    """The visible text of `markdown` (what a reader sees)."""
    parts = []
    for token in _MD.parse(markdown):
        for child in token.children or []:
            if child.type in ("text", "text_special"):
                parts.append(child.content)
            elif child.type == "softbreak":
                parts.append("\n")
    return "".join(parts)
