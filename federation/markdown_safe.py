"""Markdown safety for Lemmy: escape user text so it renders literally, and read markdown as text.

`escape(text)` is what the application calls on a user's prompt before putting it into a reply
(and what the Lemmy adapter calls on alt texts). The escaped text renders exactly as the user
typed it, but cannot start a link, an image, emphasis, code, an HTML tag, a heading or list, a
spoiler block, nor a `@user@instance` / `!community@instance` mention:

* every markdown-active ASCII punctuation character gets a backslash (CommonMark renders
  `\\x` as a literal `x` for any ASCII punctuation), which also splits `http://…`, `www.…`
  and `a@b.c` so linkifiers and Lemmy's server-side mention scanner (`@name@domain`, run on
  the raw markdown) no longer see them;
* line breaks become spaces, so the text cannot open a block (quote, list, code fence);
* control characters and the invisible bidi/zero-width characters are dropped.
"""

from __future__ import annotations

import re
import unicodedata

# ASCII punctuation that means something to CommonMark, GFM, lemmy-ui's plugins (spoilers,
# sub/superscript, emoji `:name:`) or linkifiers. `,` `'` `"` `?` `;` `%` stay as they are.
ACTIVE_CHARS = frozenset("\\`*_{}[]()<>#+-.!|~^:@&=$/")

LINE_BREAKS = re.compile("\r\n|\r|\n|\u2028|\u2029|\x0b|\x0c|\x85")
_KEEP = frozenset("\t\u200c\u200d")  # tab, and the joiners some scripts and emoji need


def _visible(ch: str) -> bool:
    """Drop control and format characters (zero-width spaces, bidi overrides, BOM...)."""
    return ch in _KEEP or unicodedata.category(ch) not in ("Cc", "Cf")


def escape(text: str) -> str:
    """Return `text` as markdown that renders literally (one line, no active syntax)."""
    text = "".join(filter(_visible, LINE_BREAKS.sub(" ", text)))
    return "".join("\\" + ch if ch in ACTIVE_CHARS else ch for ch in text)


def unescape(markdown: str) -> str:
    """Undo `escape` (backslash escapes of ASCII punctuation only, as CommonMark does)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown)


_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s.*$", re.MULTILINE)
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1")
_CODE = re.compile(r"`+([^`]*)`+")
_BLOCK_PREFIX = re.compile(r"^\s{0,3}(?:>\s?|#{1,6}\s+|[-*+]\s+|\d+[.)]\s+)", re.MULTILINE)
_SPOILER = re.compile(r"^\s*:::.*$", re.MULTILINE)


def to_plain_text(markdown: str) -> str:
    """Roughly turn a Lemmy comment's markdown into plain text (links keep their text)."""
    # Park escaped characters in the private-use area so the patterns below cannot see them.
    text = re.sub(r"\\([!-/:-@\[-`{-~])", lambda m: chr(0xE000 + ord(m[1])), markdown)
    text = _REF_DEF.sub("", text)
    text = _SPOILER.sub("", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _CODE.sub(r"\1", text)
    text = _BLOCK_PREFIX.sub("", text)
    text = _EMPHASIS.sub(r"\2", text)
    text = re.sub("[\ue000-\ue07f]", lambda m: chr(ord(m[0]) - 0xE000), text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n".join(line for line in lines if line).strip()
