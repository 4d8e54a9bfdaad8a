"""HTML of a status (as Mastodon-API servers send it) → the plain text of a request.

Built on the stdlib `html.parser`, which never executes anything and copes with broken
markup. `html_to_text` never raises and never returns markup: remote servers are not
trusted to send well-formed or friendly HTML.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping
from html.parser import HTMLParser
from typing import Any

log = logging.getLogger(__name__)

# Longer input is cut before parsing: statuses are a few KB; this only bounds hostile input.
MAX_INPUT_CHARS = 200_000

_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "blockquote",
        "pre",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "td",
        "th",
        "table",
        "hr",
        "section",
        "article",
        "header",
        "footer",
    }
)
_SKIP_CONTENT_TAGS = frozenset({"script", "style", "template", "noscript", "title", "head"})
_VOID_TAGS = frozenset(
    {
        "br",
        "hr",
        "img",
        "input",
        "meta",
        "link",
        "area",
        "base",
        "col",
        "embed",
        "source",
        "track",
        "wbr",
        "param",
    }
)
_WHITESPACE = re.compile(r"\s+")
# Anything that still looks like a tag once entities are decoded (e.g. "&lt;b&gt;").
_TAG_LIKE = re.compile(r"<([^<>]*)>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def html_to_text(
    content: str | None,
    mentions: Iterable[Mapping[str, Any]] = (),
    *,
    keep_mentions: bool = False,
    bot_account_id: str | None = None,
) -> str:
    """Plain text of a status' HTML `content`.

    - The h-card markup of the accounts in `mentions` (the status' `mentions[]`: dicts with
      `id`, `acct`, `url`, `username`) is removed. With `keep_mentions=True` every mentioned
      account except `bot_account_id` stays in the text as `@acct`.
    - Hashtags stay as words (`#tag`), entities are decoded, `<span class="invisible">`
      parts of links are dropped, line and paragraph breaks become spaces, whitespace is
      collapsed.
    - Never raises; no `<…>` sequence survives (decoded `&lt;b&gt;` becomes `‹b›`).
    """
    if not content:
        return ""
    try:
        text = str(content)[:MAX_INPUT_CHARS]
        parser = _StatusParser(list(mentions or ()), keep_mentions, bot_account_id)
        parser.feed(text)
        parser.close()
        out = parser.text()
    except Exception:  # html.parser has raised on odd declarations in the past
        log.debug("html.parser failed; falling back to tag stripping", exc_info=True)
        out = _fallback(str(content)[:MAX_INPUT_CHARS])
    return _finish(out)


def _finish(text: str) -> str:
    text = _CONTROL.sub(" ", text)
    text = _TAG_LIKE.sub(lambda m: "‹" + m.group(1) + "›", text)
    if _TAG_LIKE.search(text):  # nested leftovers such as "<!--‹p›>": no "<" may remain
        text = text.replace("<", "‹").replace(">", "›")
    return _WHITESPACE.sub(" ", text).strip()


def _fallback(text: str) -> str:
    text = re.sub(r"<[^>]*>?", " ", text)
    return html.unescape(text)


def _classes(attrs: list[tuple[str, str | None]]) -> set[str]:
    for name, value in attrs:
        if name == "class" and value:
            return set(value.split())
    return set()


def _attr(attrs: list[tuple[str, str | None]], wanted: str) -> str | None:
    for name, value in attrs:
        if name == wanted:
            return value
    return None


class _StatusParser(HTMLParser):
    """Collects text, dropping mention and invisible spans.

    Stack entries record, per open element, whether it started a dropped region, so that
    unbalanced or missing end tags cannot leave the parser in a dropping state forever
    (a region ends when its element closes, or at the end of the input).
    """

    def __init__(
        self, mentions: list[Mapping[str, Any]], keep_mentions: bool, bot_id: str | None
    ) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._stack: list[tuple[str, str]] = []  # (tag, role) role: "", "drop", "mention"
        self._drop_depth = 0
        self._mention_buffer: list[str] | None = None
        self._mention_href: str | None = None
        self._keep = keep_mentions
        self._bot_id = str(bot_id) if bot_id is not None else None
        self._by_url: dict[str, Mapping[str, Any]] = {}
        self._by_username: dict[str, Mapping[str, Any]] = {}
        for m in mentions:
            try:
                for key in ("url", "uri"):
                    if m.get(key):
                        self._by_url[str(m[key]).rstrip("/").lower()] = m
                if m.get("username"):
                    self._by_username.setdefault(str(m["username"]).lower(), m)
                if m.get("acct"):
                    self._by_username.setdefault(str(m["acct"]).lower(), m)
            except (AttributeError, TypeError):
                continue

    # -- parsing -------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self._emit(" ")
        if tag in _VOID_TAGS:
            return
        classes = _classes(attrs)
        role = ""
        if self._drop_depth == 0 and self._mention_buffer is None:
            if tag in _SKIP_CONTENT_TAGS or "invisible" in classes:
                role = "drop"
            elif tag == "a" and "mention" in classes and "hashtag" not in classes:
                role = "mention"
                self._mention_buffer = []
                self._mention_href = _attr(attrs, "href")
        elif tag in _SKIP_CONTENT_TAGS or "invisible" in classes:
            role = "drop"
        if role == "drop":
            self._drop_depth += 1
        self._stack.append((tag, role))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self._emit(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self._emit(" ")
        # Close up to the most recent matching element; ignore stray end tags.
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                for _, role in reversed(self._stack[i:]):
                    self._close_role(role)
                del self._stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if self._drop_depth:
            return
        if self._mention_buffer is not None:
            self._mention_buffer.append(data)
        else:
            self._parts.append(data)

    def close(self) -> None:
        super().close()
        for _, role in reversed(self._stack):
            self._close_role(role)
        self._stack.clear()

    # -- helpers -------------------------------------------------------------------------

    def _emit(self, text: str) -> None:
        if self._drop_depth:
            return
        if self._mention_buffer is not None:
            self._mention_buffer.append(text)
        else:
            self._parts.append(text)

    def _close_role(self, role: str) -> None:
        if role == "drop":
            self._drop_depth = max(0, self._drop_depth - 1)
        elif role == "mention":
            shown = "".join(self._mention_buffer or [])
            self._mention_buffer = None
            self._parts.append(self._render_mention(shown, self._mention_href))
            self._mention_href = None

    def _render_mention(self, shown: str, href: str | None) -> str:
        account = None
        if href:
            account = self._by_url.get(href.rstrip("/").lower())
        name = shown.strip().lstrip("@").strip().lower()
        if account is None and name:
            account = self._by_username.get(name)
        if account is None:
            # A mention link for an account the status does not list: keep what it shows.
            return " " + shown.strip() + " " if shown.strip() else " "
        is_bot = self._bot_id is not None and str(account.get("id")) == self._bot_id
        if self._keep and not is_bot:
            return " @" + str(account.get("acct") or name) + " "
        return " "

    def text(self) -> str:
        return "".join(self._parts)
