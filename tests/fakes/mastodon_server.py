"""`FakeMastodon`: a stateful aiohttp Mastodon on 127.0.0.1 built from recorded traffic.

Every entity the fake sends starts as a real response body recorded by Mastodon.py's test
suite against a real Mastodon 4.6 (`../shared/fixtures/mastodon/cassettes`), with ids,
accounts and content patched in, so every field a real server sends is there. Like the
real server it uses string ids, `Link` pagination, `x-ratelimit-*` headers with an ISO-8601
reset on every response, h-card mention HTML, 202 media uploads that need polling,
`Idempotency-Key`, and SSE streaming in the recorded wire format.

`flavour=` (`tests.fakes.mastodon_flavours`) makes it GoToSocial, Akkoma or Pleroma instead:
WebSocket-only streaming with each server's token places, `include_types[]` and page caps,
strict parameters, global idempotency, no or other rate-limit headers, v1-only instances,
octet-stream media lists, two-letter languages, interaction-policy 403s — each shape names
its source in that module.

Test controls: `add_user`, `mention`, `edit_status`, `delete_status`, `boost`, `notify`,
`push_event`, `drop_streams`, `fail_next`, `exhaust`; inspection: `posted_statuses`,
`post_params`, `media`, `requests`, `policy`, `bot`, `statuses`.
"""

from __future__ import annotations

import asyncio
import copy
import html
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from urllib.parse import urlencode

import yaml
from aiohttp import web

from tests.fakes.mastodon_flavours import ISO_639_1, MASTODON, ServerFlavour
from tests.fixtures_path import MASTODON_CASSETTES

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MENTION_RE = re.compile(
    r"(?<![\w/])@([A-Za-z0-9_]+(?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)(?:@([\w.-]+\w))?"
)
_HASHTAG_RE = re.compile(r"(?<![\w/&#])#(\w+)")


# ------------------------------------------------------------------------------ recordings


@cache
def _interactions(name: str) -> list[dict[str, Any]]:
    with open(MASTODON_CASSETTES / name, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Loader)["interactions"]


def _body(name: str, index: int) -> Any:
    return json.loads(_interactions(name)[index]["response"]["body"]["string"])


@cache
def templates() -> dict[str, Any]:
    """The recorded bodies every fake entity is patched from."""
    mention_status = _body("notifications_mentions_only.yaml", 0)
    image = _body("media_post_multiple.yaml", 0)
    pending = _body("media_post_async_202.yaml", 0)  # the real 202 body (a video)
    return {
        "status": mention_status,
        "account": mention_status["account"],
        "credential_account": _body("status_reply.yaml", 1),
        "notification": _body("notifications_mentions_only.yaml", 1)[0],
        "media_image": image,
        "media_pending_keys": sorted(pending.keys()),
        "instance_v1": _body("media_post_multiple.yaml", 1),
        "instance_v2": _body("instance.yaml", 0),
        "policy": _body("notifications_policy.yaml", 0),
        "context": _body("status_context.yaml", 1),
        "not_found": _body("status_delete_media.yaml", 7),
    }


def iso(ts: float) -> str:
    """Mastodon's timestamp format: `2026-08-01T13:51:42.823Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_reset(ts: float) -> str:
    """`x-ratelimit-reset` format: `2026-08-01T13:55:00.940463Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def gts_reset(ts: float) -> str:
    """GoToSocial's reset: util.FormatISO8601 of a whole second, "2006-01-02T15:04:05.000Z"
    (gotosocial internal/util/time.go, internal/middleware/ratelimit.go)."""
    return datetime.fromtimestamp(int(ts) + 1, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---------------------------------------------------------------------------------- state


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    idempotency_key: str | None
    at: float
    status: int = 0
    served_at: float | None = None


@dataclass
class FakeMedia:
    id: str
    description: str | None
    size: int
    mime_type: str
    file_name: str
    polls_left: int
    status_id: str | None = None
    polls: int = 0
    # a requester's picture (add_picture): served at its url; `url` overrides where the
    # entity says it lives (a foreign host), `kind` is the entity's `type`
    data: bytes | None = None
    url: str | None = None
    kind: str = "image"


@dataclass
class _Failure:
    pattern: re.Pattern[str]
    method: str | None
    status: int
    headers: dict[str, str]
    body: Any
    times: int


@dataclass
class _Bucket:
    limit: int
    period: float
    remaining: int = -1
    reset_at: float = 0.0
    # `exhaust(..., from_first_refusal=True)`: the reset is set this many seconds after the
    # first refused request, so the refusal happens however slow the machine is.
    pending_reset: float | None = None
    refused_until: list[float] = field(default_factory=list)  # each exhaustion's reset time

    def refresh(self, now: float) -> None:
        if now >= self.reset_at or self.remaining < 0:
            self.remaining = self.limit
            self.reset_at = now + self.period


@dataclass
class _StreamConn:
    kind: str = "sse"  # or "websocket"
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    sent: int = 0
    drop_after: int | None = None
    token_place: str = "header"


@dataclass
class _Notification:
    id: str
    type: str
    account_id: str
    status_id: str | None
    created_at: float


class FakeMastodon:
    """A Mastodon server for tests. `async with FakeMastodon() as fake:` starts it."""

    def __init__(
        self,
        *,
        domain: str = "fake.test",
        bot_username: str = "fedibot",
        bot_token: str = "bot-token-s3cret",
        version: str | None = None,
        max_characters: int = 500,
        max_media_attachments: int = 4,
        description_limit: int | None = 1500,
        image_size_limit: int = 16777216,
        media_polls_before_ready: int = 1,
        heartbeat_interval: float = 0.5,
        policy_supported: bool = True,
        instance_v2_supported: bool | None = None,
        limits: dict[str, tuple[int, float]] | None = None,
        flavour: ServerFlavour = MASTODON,
    ) -> None:
        self.flavour = flavour
        self.domain = domain
        self.bot_token = bot_token
        if flavour is MASTODON:
            self.version = version or templates()["instance_v2"]["version"]
        else:
            self.version = version or flavour.version
        self.max_characters = max_characters
        self.max_media_attachments = max_media_attachments
        self.description_limit = description_limit
        self.image_size_limit = image_size_limit
        self.media_polls_before_ready = media_polls_before_ready
        self.heartbeat_interval = heartbeat_interval
        # Mastodon streaming/index.js `subscribeWebsocketToChannel`: a subscription the token
        # may not make (scopes) is answered over the open socket as {"error", "status"}; the
        # socket stays open, subscribed to nothing. (message, status) or None.
        self.stream_subscription_error: tuple[str, int] | None = None
        self.policy_supported = policy_supported
        # Simulates a broken server that ignores the requested visibility (None: honour it).
        self.visibility_override: str | None = None
        self.instance_v2_supported = (
            flavour.instance_v2 if instance_v2_supported is None else instance_v2_supported
        )
        # GoToSocial interaction policies: statuses nobody but their author may reply to.
        self.reply_forbidden: set[str] = set()
        self.idempotency_replays = 0
        bucket_specs = {"api": (300, 300.0), "statuses": (300, 3 * 3600.0), "media": (30, 1800.0)}
        bucket_specs.update(limits or {})
        self.buckets = {name: _Bucket(lim, per) for name, (lim, per) in bucket_specs.items()}

        self.accounts: dict[str, dict[str, Any]] = {}
        self._by_acct: dict[str, str] = {}
        self._following: set[str] = set()
        self.statuses: dict[str, dict[str, Any]] = {}
        self.notifications: list[_Notification] = []
        self.media: dict[str, FakeMedia] = {}
        self.media_fetches: list[str] = []  # paths of media files fetched
        self.posted_statuses: list[dict[str, Any]] = []
        self.post_params: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.policy: dict[str, Any] = copy.deepcopy(templates()["policy"])
        self.apps: dict[str, dict[str, Any]] = {}
        self.oauth_codes: dict[str, str] = {}  # code → account id
        self.tokens: dict[str, str] = {}
        self.stream_connects = 0
        self._streams: list[_StreamConn] = []
        self._failures: list[_Failure] = []
        self._idempotency: dict[tuple[str, str], str] = {}
        # Idempotency-Key, kept `idempotency_ttl` seconds by `idempotency_clock` (Mastodon:
        # 1 h, app/controllers/concerns/... Redis TTL; Akkoma/Pleroma: 6 h, application.ex).
        # `idempotency_scope`: "account" (Mastodon: per account, the same status again),
        # "global" (Akkoma idempotency_plug.ex: one key space for every user, and ANY earlier
        # answer replayed), None (GoToSocial ignores the header).
        self.idempotency_clock: Callable[[], float] = time.time
        self.idempotency_scope: str | None = self.flavour.idempotency
        self.idempotency_ttl = 6 * 3600.0 if self.flavour.idempotency == "global" else 3600.0
        self._idempotency_at: dict[tuple[str, str], float] = {}
        # the global cache: key → (status, body, stored at)
        self._idempotency_cache: dict[str, tuple[int, Any, float]] = {}
        self._last_id = 0
        self._notification_seq = 100
        self._runner: web.AppRunner | None = None
        self.port = 0

        self.bot = self.add_user(bot_username, local=True, bot=False)
        self.tokens[bot_token] = self.bot["id"]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self._routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self.base_url

    async def close(self) -> None:
        for conn in list(self._streams):
            conn.queue.put_nowait(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeMastodon:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ ids & entities

    def _next_id(self) -> str:
        """Snowflake-like, strictly increasing ids (as strings, like Mastodon)."""
        candidate = (int(time.time() * 1000) << 16) | 0
        self._last_id = max(self._last_id + 1, candidate)
        return str(self._last_id)

    def full_acct(self, acct: str) -> str:
        acct = acct.lstrip("@").lower()
        return acct if "@" in acct else f"{acct}@{self.domain}"

    def add_user(
        self,
        acct: str,
        *,
        note: str = "",
        display_name: str = "",
        bot: bool = False,
        local: bool | None = None,
        followed: bool = False,
    ) -> dict[str, Any]:
        """Create an account; `acct` "user@remote" is remote, a bare "user" is local."""
        full = self.full_acct(acct)
        username, domain = full.split("@", 1)
        is_local = domain == self.domain if local is None else local
        account_id = self._next_id()
        profile = f"https://{domain}/@{username}" if not is_local else f"/@{username}"
        account = copy.deepcopy(templates()["account"])
        account.update(
            {
                "id": account_id,
                "username": username,
                "acct": username if is_local else f"{username}@{domain}",
                "display_name": display_name,
                "bot": bot,
                "note": f"<p>{html.escape(note)}</p>" if note else "",
                "url": profile,
                "uri": profile.replace("/@", "/users/"),
                "created_at": "2026-08-01T00:00:00.000Z",
                "statuses_count": 0,
                "roles": [],
            }
        )
        self.accounts[account_id] = account
        self._by_acct[full] = account_id
        if followed:
            self._following.add(account_id)
        return account

    def account(self, acct: str) -> dict[str, Any]:
        """The account for `acct`, created (as a plain user) when unknown."""
        if self.full_acct(acct) not in self._by_acct:
            self.add_user(acct)
        return self.accounts[self._by_acct[self.full_acct(acct)]]

    def _abs(self, url: str) -> str:
        return self.base_url + url if url.startswith("/") else url

    def _account_json(self, account_id: str, *, credentials: bool = False) -> dict[str, Any]:
        account = copy.deepcopy(self.accounts[account_id])
        account["url"] = self._abs(account["url"])
        account["uri"] = self._abs(account["uri"])
        if credentials:
            creds = copy.deepcopy(templates()["credential_account"])
            creds.update({k: v for k, v in account.items() if k in creds or k == "bot"})
            creds["source"]["note"] = html.unescape(re.sub(r"<[^>]+>", "", account["note"]))
            return creds
        return account

    def _render(self, text: str, mention_ids: list[str]) -> tuple[str, list[dict[str, Any]]]:
        """Plain text → Mastodon's HTML (h-card mentions, hashtags, <br />, <p>)."""
        mentions: list[dict[str, Any]] = []

        def mention_html(account_id: str) -> str:
            acc = self._account_json(account_id)
            if not any(m["id"] == account_id for m in mentions):
                mentions.append(
                    {
                        "id": account_id,
                        "username": acc["username"],
                        "url": acc["url"],
                        "acct": acc["acct"],
                    }
                )
            return (
                f'<span class="h-card" translate="no"><a href="{acc["url"]}" '
                f'class="u-url mention">@<span>{html.escape(acc["username"])}</span>'
                f"</a></span>"
            )

        def replace(match: re.Match[str]) -> str:
            username, domain = match.group(1), match.group(2)
            full = f"{username}@{domain or self.domain}".lower()
            account_id = self._by_acct.get(full)
            if account_id is None:
                return match.group(0)  # not an account we know: stays text
            return "\x00" + account_id + "\x01"

        def tag(match: re.Match[str]) -> str:
            name = match.group(1)
            return (
                f'<a href="{self.base_url}/tags/{name.lower()}" class="mention hashtag" '
                f'rel="tag">#<span>{name}</span></a>'
            )

        prefix = "".join(mention_html(i) + " " for i in mention_ids)
        marked = _MENTION_RE.sub(replace, text)
        paragraphs = []
        for para in re.split(r"\n\s*\n", marked.strip()):
            escaped = html.escape(para)
            escaped = _HASHTAG_RE.sub(tag, escaped)
            escaped = re.sub("\x00(\\d+)\x01", lambda m: mention_html(m.group(1)), escaped)
            paragraphs.append(escaped.replace("\n", "<br />"))
        if not paragraphs:
            paragraphs = [""]
        paragraphs[0] = prefix + paragraphs[0]
        return "".join(f"<p>{p}</p>" for p in paragraphs), mentions

    def _new_status(
        self,
        author_id: str,
        text: str,
        *,
        visibility: str = "public",
        in_reply_to_id: str | None = None,
        spoiler_text: str = "",
        sensitive: bool = False,
        language: str | None = "en",
        leading_mentions: Iterable[str] = (),
        media_ids: Iterable[str] = (),
        reblog: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        status_id = self._next_id()
        now = time.time()
        author = self._account_json(author_id)
        content, mentions = ("", []) if reblog else self._render(text, list(leading_mentions))
        parent = self.statuses.get(in_reply_to_id) if in_reply_to_id else None
        status = copy.deepcopy(templates()["status"])
        status.update(
            {
                "id": status_id,
                "created_at": iso(now),
                "in_reply_to_id": in_reply_to_id,
                "in_reply_to_account_id": parent["account"]["id"] if parent else None,
                "sensitive": bool(sensitive or spoiler_text),
                "spoiler_text": spoiler_text,
                "visibility": visibility,
                "language": language,
                "uri": f"{author['uri']}/statuses/{status_id}",
                "url": f"{author['url']}/{status_id}",
                "edited_at": None,
                "content": content,
                "reblog": reblog,
                "account": author,
                "media_attachments": [self._media_json(self.media[m]) for m in media_ids],
                "mentions": mentions,
                "tags": [
                    {"name": t.lower(), "url": f"{self.base_url}/tags/{t.lower()}"}
                    for t in _HASHTAG_RE.findall(text)
                ]
                if not reblog
                else [],
                "application": {"name": "fake client", "website": None},
            }
        )
        status["_text"] = text  # source text (served as "text" on delete), stripped on output
        self.statuses[status_id] = status
        self.accounts[author_id]["statuses_count"] += 1
        return status

    def _status_json(self, status: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(status)
        out.pop("_text", None)
        return out

    def _media_json(self, media: FakeMedia) -> dict[str, Any]:
        body = copy.deepcopy(templates()["media_image"])
        path = "/".join(media.id[i : i + 3] for i in range(0, len(media.id), 3))
        url = f"{self.base_url}/system/media_attachments/files/{path}/original/{media.id}.png"
        if media.url is not None:
            url = media.url
        body.update(
            {
                "id": media.id,
                "type": media.kind,
                "url": url if media.polls_left <= 0 else None,
                "preview_url": url.replace("/original/", "/small/"),
                "description": media.description,
            }
        )
        return body

    def add_picture(
        self,
        data: bytes,
        *,
        content_type: str = "image/png",
        description: str | None = None,
        kind: str = "image",
        url: str | None = None,
    ) -> str:
        """A requester's uploaded media, ready (the shape of the recorded MediaAttachment
        from media_post_multiple.yaml, as in docs.joinmastodon.org/entities/MediaAttachment/:
        `type`, `url` on the server's own /system/media_attachments/files/… path,
        `preview_url`, `description`). Its bytes are served at that `url` with
        `content_type`; pass `url` to make the entity point elsewhere. Returns the media id
        for `mention(media_ids=…)`."""
        media = FakeMedia(
            id=self._next_id(),
            description=description,
            size=len(data),
            mime_type=content_type,
            file_name="upload",
            polls_left=0,
            data=data,
            url=url,
            kind=kind,
        )
        self.media[media.id] = media
        return media.id

    async def _serve_media_file(self, request: web.Request) -> web.StreamResponse:
        """GET of a media file (Mastodon serves them from public/system or its CDN)."""
        media_id = request.match_info["name"].split(".", 1)[0]
        media = self.media.get(media_id)
        if media is None or media.data is None:
            return web.Response(status=404, text="Not Found")
        self.media_fetches.append(request.path)
        return web.Response(body=media.data, headers={"Content-Type": media.mime_type})

    def _notification_json(self, n: _Notification) -> dict[str, Any] | None:
        if n.status_id is not None and n.status_id not in self.statuses:
            return None  # the status was deleted: so is the notification
        body = copy.deepcopy(templates()["notification"])
        body.update(
            {
                "id": n.id,
                "type": n.type,
                "created_at": iso(n.created_at),
                "group_key": f"ungrouped-{n.id}",
                "account": self._account_json(n.account_id),
                "status": self._status_json(self.statuses[n.status_id]) if n.status_id else None,
            }
        )
        if n.status_id is None:
            body.pop("status", None)
        return body

    # ------------------------------------------------------------------ test controls

    def notify(self, type_: str, from_acct: str, status_id: str | None = None) -> dict[str, Any]:
        """Create a notification for the bot and push it on open streams."""
        self._notification_seq += 1
        n = _Notification(
            str(self._notification_seq),
            type_,
            self.account(from_acct)["id"],
            status_id,
            time.time(),
        )
        self.notifications.append(n)
        body = self._notification_json(n)
        assert body is not None
        self.push_event("notification", body)
        return body

    def mention(
        self,
        from_acct: str,
        text: str,
        visibility: str = "public",
        in_reply_to_id: str | None = None,
        *,
        spoiler_text: str = "",
        sensitive: bool = False,
        language: str | None = "en",
        media_ids: Iterable[str] = (),
    ) -> dict[str, Any]:
        """`from_acct` posts a status mentioning the bot (h-card HTML first, as Mastodon
        renders "@bot text"); the bot gets a mention notification, pushed on open streams."""
        author_id = self.account(from_acct)["id"]
        status = self._new_status(
            author_id,
            text,
            visibility=visibility,
            in_reply_to_id=in_reply_to_id,
            spoiler_text=spoiler_text,
            sensitive=sensitive,
            language=language,
            leading_mentions=[self.bot["id"]],
            media_ids=media_ids,
        )
        if author_id in self._following and visibility != "direct":
            self.push_event("update", self._status_json(status))
        self.notify("mention", from_acct, status["id"])
        return self._status_json(status)

    def edit_status(self, status_id: str, text: str, *, push: bool = True) -> dict[str, Any]:
        """The author edits a status (content re-rendered, `edited_at` set)."""
        status = self.statuses[status_id]
        leading = [m["id"] for m in status["mentions"][:1]]
        status["content"], status["mentions"] = self._render(text, leading)
        status["_text"] = text
        status["edited_at"] = iso(time.time())
        out = self._status_json(status)
        if push:
            self.push_event("status.update", out)
        return out

    def delete_status(self, status_id: str, *, push: bool = True) -> None:
        """The author deletes a status; its notifications go with it."""
        self.statuses.pop(status_id, None)
        self.notifications = [n for n in self.notifications if n.status_id != status_id]
        if push:
            self.push_event("delete", status_id)

    def boost(self, from_acct: str, status_id: str) -> dict[str, Any]:
        """`from_acct` boosts a status; streams get the `update` of the boost."""
        author_id = self.account(from_acct)["id"]
        original = self._status_json(self.statuses[status_id])
        boost = self._new_status(author_id, "", reblog=original)
        out = self._status_json(boost)
        self.push_event("update", out)
        if original["account"]["id"] == self.bot["id"]:
            self.notify("reblog", from_acct, status_id)
        return out

    def push_event(self, event: str, payload: Any) -> None:
        """Send one event to every open user stream: SSE in the recorded wire format,
        WebSocket as `{"stream": ["user"], "event": ..., "payload": "<JSON>"}` (GoToSocial
        internal/stream/stream.go Message; Akkoma lib/pleroma/web/views/streamer_view.ex)."""
        data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
        for conn in self._streams:
            conn.queue.put_nowait((event, data))

    def drop_streams(self, after_events: int = 0) -> None:
        """Cut every open stream (TCP abort, no clean end) after `after_events` more events."""
        for conn in self._streams:
            conn.drop_after = conn.sent + after_events
            if after_events == 0:
                conn.queue.put_nowait(("", ""))  # wake it up

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def wait_for_streams(self, count: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self._streams) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self._streams)} streams open, wanted {count}")
            await asyncio.sleep(0.01)

    def fail_next(
        self,
        path_pattern: str,
        status: int,
        headers: dict[str, str] | None = None,
        *,
        body: Any = None,
        method: str | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` requests whose path matches the regex answer `status`."""
        if body is None:
            body = self._too_many() if status == 429 else {"error": "Injected failure"}
        self._failures.append(
            _Failure(re.compile(path_pattern), method, status, dict(headers or {}), body, times)
        )

    def exhaust(self, bucket: str, reset_in: float, *, from_first_refusal: bool = False) -> None:
        """Spend a rate-limit bucket ("api", "statuses", "media") until `reset_in` s from now,
        or (`from_first_refusal`) until `reset_in` s after the first request it refuses."""
        b = self.buckets[bucket]
        b.remaining = 0
        if from_first_refusal:
            b.reset_at = float("inf")
            b.pending_reset = reset_in
        else:
            b.reset_at = time.time() + reset_in
            b.refused_until.append(b.reset_at)

    def count(self, method: str, path_prefix: str) -> int:
        return sum(
            1 for r in self.requests if r.method == method and r.path.startswith(path_prefix)
        )

    def issue_code(self, acct: str | None = None) -> str:
        """An OAuth code as the authorisation page would show it (for the bot by default)."""
        code = uuid.uuid4().hex
        self.oauth_codes[code] = self.account(acct)["id"] if acct else self.bot["id"]
        return code

    # ------------------------------------------------------------------ HTTP plumbing

    def _bucket_for(self, request: web.Request) -> _Bucket:
        if request.method == "POST" and request.path.rstrip("/") == "/api/v1/statuses":
            return self.buckets["statuses"]
        if request.method == "POST" and request.path.rstrip("/") in (
            "/api/v2/media",
            "/api/v1/media",
        ):
            return self.buckets["media"]
        return self.buckets["api"]

    def _ratelimit_headers(self, bucket: _Bucket) -> dict[str, str]:
        style = self.flavour.ratelimit_headers
        if style is None:  # Akkoma/Pleroma: rate_limiter.ex sets no headers
            return {}
        if style == "gotosocial":
            return {
                "X-RateLimit-Limit": str(bucket.limit),
                "X-RateLimit-Remaining": str(max(0, bucket.remaining)),
                "X-RateLimit-Reset": gts_reset(bucket.reset_at),
            }
        return {
            "x-ratelimit-limit": str(bucket.limit),
            "x-ratelimit-remaining": str(max(0, bucket.remaining)),
            "x-ratelimit-reset": iso_reset(bucket.reset_at),
        }

    def _too_many(self) -> dict[str, str]:
        if self.flavour.ratelimit_headers is None:
            return {"error": "Throttled"}  # rate_limiter.ex render_throttled_error
        if self.flavour.ratelimit_headers == "gotosocial":
            return {"error": "rate limit reached"}  # apiutil.ErrorRateLimited
        return {"error": "Too many requests"}

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        record = RecordedRequest(
            request.method,
            request.path,
            {k: request.query.getall(k) for k in request.query},
            request.headers.get("Idempotency-Key"),
            time.time(),
        )
        self.requests.append(record)
        if request.path.startswith("/api/v1/streaming"):
            return await handler(request)
        now = time.time()
        bucket = self._bucket_for(request)
        bucket.refresh(now)
        base = {
            "cache-control": "private, no-store",
            "vary": "Authorization, Origin",
            "x-request-id": str(uuid.uuid4()),
        }
        response: web.StreamResponse
        failure = self._take_failure(request)
        if failure is not None:
            headers = {**base, **self._ratelimit_headers(bucket), **failure.headers}
            response = web.json_response(failure.body, status=failure.status, headers=headers)
        elif bucket.remaining <= 0:
            if bucket.pending_reset is not None:
                bucket.reset_at = now + bucket.pending_reset
                bucket.refused_until.append(bucket.reset_at)
                bucket.pending_reset = None
            response = web.json_response(
                self._too_many(),
                status=429,
                headers={**base, **self._ratelimit_headers(bucket)},
            )
        else:
            bucket.remaining -= 1
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                try:
                    body = json.loads(exc.text or "{}")
                except ValueError:  # aiohttp's own "404: Not Found" for an unknown route
                    body = {"error": "Record not found" if exc.status == 404 else exc.reason}
                response = web.json_response(body, status=exc.status)
            for key, value in {**base, **self._ratelimit_headers(bucket)}.items():
                response.headers.setdefault(key, value)
        record.status = response.status
        record.served_at = time.time()
        return response

    def _take_failure(self, request: web.Request) -> _Failure | None:
        for failure in self._failures:
            if failure.pattern.search(request.path) and failure.method in (None, request.method):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _auth(self, request: web.Request) -> str:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        account_id = self.tokens.get(token)
        if account_id is None:
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "The access token is invalid"}),
                content_type="application/json",
            )
        return account_id

    @staticmethod
    def _error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    async def _form(self, request: web.Request) -> dict[str, Any]:
        """Form or JSON body → {name: value or [values]} (`media_ids[]` → list)."""
        if request.content_type == "application/json":
            data = await request.json()
            return data if isinstance(data, dict) else {}
        post = await request.post()
        out: dict[str, Any] = {}
        for key in post:
            values = post.getall(key)
            if key.endswith("[]"):
                out[key[:-2]] = list(values)
            else:
                out[key] = values[-1]
        return out

    def _routes(self, app: web.Application) -> None:
        r = app.router
        for path in ("/api/v1/instance", "/api/v1/instance/"):
            r.add_get(path, self._instance_v1)
        for path in ("/api/v2/instance", "/api/v2/instance/"):
            r.add_get(path, self._instance_v2)
        r.add_get("/.well-known/oauth-authorization-server", self._oauth_info)
        r.add_post("/api/v1/apps", self._create_app)
        r.add_post("/oauth/token", self._oauth_token)
        r.add_get("/api/v1/accounts/verify_credentials", self._verify_credentials)
        r.add_patch("/api/v1/accounts/update_credentials", self._update_credentials)
        r.add_get("/api/v1/accounts/{id}", self._get_account)
        r.add_get("/api/v1/accounts/{id}/statuses", self._account_statuses)
        r.add_get("/api/v2/notifications/policy", self._get_policy)
        r.add_patch("/api/v2/notifications/policy", self._patch_policy)
        r.add_get("/api/v1/notifications", self._list_notifications)
        r.add_get("/api/v1/notifications/{id}", self._get_notification)
        r.add_post("/api/v2/media", self._post_media)
        # Synchronous v1 upload: Mastodon.py uses it when the version says < 3.1.4, i.e. on
        # Akkoma/Pleroma ("2.7.2 (compatible; …)"; router.ex `post("/media", :create)`).
        r.add_post("/api/v1/media", self._post_media_v1)
        r.add_get("/api/v1/media/{id}", self._get_media)
        r.add_get("/system/media_attachments/files/{tail:.*}/{name}", self._serve_media_file)
        r.add_post("/api/v1/statuses", self._post_status)
        r.add_get("/api/v1/statuses/{id}", self._get_status)
        r.add_delete("/api/v1/statuses/{id}", self._delete_status)
        r.add_get("/api/v1/statuses/{id}/context", self._get_context)
        if self.flavour.sse:
            r.add_get("/api/v1/streaming/health", self._stream_health)
            r.add_get("/api/v1/streaming/user", self._stream_user)
        if self.flavour.websocket:
            r.add_get("/api/v1/streaming", self._stream_ws)

    # ------------------------------------------------------------------ instance & auth

    def _pleroma_instance_v1(self) -> dict[str, Any]:
        """Akkoma/Pleroma `GET /api/v1/instance` (instance_view.ex render("show.json")):
        the extras at the top level; Akkoma has no `configuration` block at all."""
        body: dict[str, Any] = {
            "uri": self.domain,
            "title": "Fake",
            "description": "A fake server",
            "short_description": "A fake server",
            "version": self.version,
            "email": "admin@" + self.domain,
            "urls": {"streaming_api": f"ws://127.0.0.1:{self.port}"},
            "stats": {"user_count": len(self.accounts), "status_count": len(self.statuses)},
            "thumbnail": self.base_url + "/instance/thumbnail.jpeg",
            "languages": ["en"],
            "registrations": False,
            "approval_required": False,
            "max_toot_chars": self.max_characters,
            "poll_limits": {"max_options": 20, "max_option_chars": 200},
            "upload_limit": self.image_size_limit,
            "avatar_upload_limit": 2000000,
            "background_upload_limit": 4000000,
            "banner_upload_limit": 4000000,
            "background_image": self.base_url + "/images/city.jpg",
            "description_limit": self.description_limit or 5000,
            "pleroma": {
                "metadata": {
                    "features": [
                        "pleroma_api",
                        "mastodon_api",
                        "mastodon_api_streaming",
                        "pleroma:api/v1/notifications:include_types_filter",
                    ],
                    "post_formats": ["text/plain", "text/html", "text/markdown"],
                },
            },
        }
        if self.flavour.name == "pleroma":  # Pleroma's view @0277b4e8 has both
            body["max_media_attachments"] = self.max_media_attachments
            body["configuration"] = {
                "statuses": {
                    "max_characters": self.max_characters,
                    "max_media_attachments": self.max_media_attachments,
                },
                "media_attachments": {
                    "image_size_limit": self.image_size_limit,
                    "video_size_limit": self.image_size_limit,
                    "supported_mime_types": list(self.flavour.supported_mime_types or ()),
                },
            }
        return body

    async def _instance_v1(self, request: web.Request) -> web.Response:
        if self.flavour.instance_v1_shape == "pleroma":
            return web.json_response(self._pleroma_instance_v1())
        body = copy.deepcopy(templates()["instance_v1"])
        body["uri"] = self.domain
        body["version"] = self.version
        body["urls"]["streaming_api"] = f"ws://127.0.0.1:{self.port}"
        statuses = body["configuration"]["statuses"]
        statuses["max_characters"] = self.max_characters
        statuses["max_media_attachments"] = self.max_media_attachments
        body["configuration"]["media_attachments"]["image_size_limit"] = self.image_size_limit
        return web.json_response(body)

    async def _instance_v2(self, request: web.Request) -> web.Response:
        if not self.instance_v2_supported:
            return self._error(404, "Record not found")
        body = copy.deepcopy(templates()["instance_v2"])
        body["domain"] = self.domain
        body["version"] = self.version
        config = body["configuration"]
        config["urls"]["streaming"] = f"ws://127.0.0.1:{self.port}"
        config["statuses"]["max_characters"] = self.max_characters
        config["statuses"]["max_media_attachments"] = self.max_media_attachments
        media = config["media_attachments"]
        media["image_size_limit"] = self.image_size_limit
        if self.description_limit is None:
            media.pop("description_limit", None)
        else:
            media["description_limit"] = self.description_limit
        if self.flavour.supported_mime_types is not None:
            media["supported_mime_types"] = list(self.flavour.supported_mime_types)
        if self.flavour.name == "gotosocial":
            # internal/api/model/instancev2.go SourceURL
            body["source_url"] = "https://github.com/superseriousbusiness/gotosocial"
        return web.json_response(body)

    async def _oauth_info(self, request: web.Request) -> web.Response:
        base = self.base_url
        return web.json_response(
            {
                "issuer": base + "/",
                "service_documentation": "https://docs.joinmastodon.org/",
                "authorization_endpoint": base + "/oauth/authorize",
                "token_endpoint": base + "/oauth/token",
                "app_registration_endpoint": base + "/api/v1/apps",
                "revocation_endpoint": base + "/oauth/revoke",
                "scopes_supported": ["read", "write", "follow", "push"],
                "response_types_supported": ["code"],
                "response_modes_supported": ["query", "fragment", "form_post"],
                "code_challenge_methods_supported": ["S256"],
                "grant_types_supported": [
                    "authorization_code",
                    "client_credentials",
                    "refresh_token",
                ],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
            }
        )

    async def _create_app(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        client_id, client_secret = uuid.uuid4().hex, uuid.uuid4().hex
        app = {
            "id": str(len(self.apps) + 1),
            "name": form.get("client_name", ""),
            "website": form.get("website"),
            "scopes": str(form.get("scopes", "read")).split(),
            "redirect_uri": form.get("redirect_uris", ""),
            "redirect_uris": str(form.get("redirect_uris", "")).split("\n"),
            "client_id": client_id,
            "client_secret": client_secret,
            "client_secret_expires_at": 0,
        }
        self.apps[client_id] = app
        return web.json_response(app)

    async def _oauth_token(self, request: web.Request) -> web.Response:
        form = await self._form(request)
        app = self.apps.get(str(form.get("client_id")))
        if app is None or app["client_secret"] != form.get("client_secret"):
            return web.json_response({"error": "invalid_client"}, status=401)
        account_id = self.oauth_codes.pop(str(form.get("code")), None)
        if form.get("grant_type") != "authorization_code" or account_id is None:
            return web.json_response(
                {
                    "error": "invalid_grant",
                    "error_description": "The provided authorization "
                    "grant is invalid, expired, revoked, does not match the redirection URI used "
                    "in the authorization request, or was issued to another client.",
                },
                status=400,
            )
        token = uuid.uuid4().hex
        self.tokens[token] = account_id
        return web.json_response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "scope": form.get("scope", "read"),
                "created_at": int(time.time()),
            }
        )

    async def _verify_credentials(self, request: web.Request) -> web.Response:
        account_id = self._auth(request)
        return web.json_response(self._account_json(account_id, credentials=True))

    async def _update_credentials(self, request: web.Request) -> web.Response:
        account_id = self._auth(request)
        form = await self._form(request)
        account = self.accounts[account_id]
        if "bot" in form:
            account["bot"] = str(form["bot"]).lower() in ("1", "true")
        if "display_name" in form:
            account["display_name"] = str(form["display_name"])
        if "note" in form:
            account["note"] = f"<p>{html.escape(str(form['note']))}</p>"
        return web.json_response(self._account_json(account_id, credentials=True))

    async def _get_account(self, request: web.Request) -> web.Response:
        self._auth(request)
        account_id = request.match_info["id"]
        if account_id not in self.accounts:
            return self._error(404, "Record not found")
        return web.json_response(self._account_json(account_id))

    async def _account_statuses(self, request: web.Request) -> web.Response:
        """An account's statuses, newest first (`limit`, default 20, at most 40)."""
        self._auth(request)
        account_id = request.match_info["id"]
        limit = min(40, int(request.query.get("limit") or 20))
        own = [s for s in self.statuses.values() if s["account"]["id"] == account_id]
        own.sort(key=lambda s: int(s["id"]), reverse=True)
        return web.json_response([self._status_json(s) for s in own[:limit]])

    def orphan_media(self) -> list[FakeMedia]:
        """Uploads never attached to a status (each one spent upload budget for nothing)."""
        return [m for m in self.media.values() if m.status_id is None]

    async def _get_policy(self, request: web.Request) -> web.Response:
        self._auth(request)
        if not self.policy_supported:
            return self._error(404, "Record not found")
        return web.json_response(self.policy)

    async def _patch_policy(self, request: web.Request) -> web.Response:
        self._auth(request)
        if not self.policy_supported:
            return self._error(404, "Record not found")
        form = await self._form(request)
        for key, value in form.items():
            if key in self.policy and key != "summary":
                if value not in ("accept", "filter", "drop"):
                    return self._error(422, f"Validation failed: {key} is invalid")
                self.policy[key] = value
        return web.json_response(self.policy)

    # ------------------------------------------------------------------ notifications

    async def _list_notifications(self, request: web.Request) -> web.Response:
        account_id = self._auth(request)
        if account_id != self.bot["id"]:
            return web.json_response([])
        q = request.query
        flavour = self.flavour
        known = {
            *flavour.notification_type_params,
            "exclude_types[]",
            "limit",
            "max_id",
            "min_id",
            "since_id",
            "account_id",
        }
        unexpected = sorted(k for k in q if k not in known)
        if flavour.strict_params and unexpected:
            # Akkoma api_spec/render_error.ex (strict CastAndValidate): 400 with both forms.
            name = unexpected[0].removesuffix("[]")
            return web.json_response(
                {
                    "error": f"{name} - Unexpected field.",
                    "errors": [
                        {
                            "title": "Invalid value",
                            "source": {"pointer": f"/{name}"},
                            "message": f"Unexpected field: {name}",
                        }
                    ],
                },
                status=400,
            )
        types: set[str] = set()
        for param in flavour.notification_type_params:  # anything else is ignored
            types.update(q.getall(param, []))
        excluded = set(q.getall("exclude_types[]", []))
        default = 20 if flavour.name != "mastodon" else 40
        try:
            limit = max(1, min(flavour.max_notifications_page, int(q.get("limit", default))))
        except ValueError:
            limit = default
        items = [
            n
            for n in self.notifications
            if (not types or n.type in types) and n.type not in excluded
        ]
        items = [n for n in items if n.status_id is None or n.status_id in self.statuses]
        key = int  # notification ids are integers in strings

        def bound(name: str) -> int | None:
            value = q.get(name)
            return key(value) if value not in (None, "") else None

        max_id, since_id, min_id = bound("max_id"), bound("since_id"), bound("min_id")
        if max_id is not None:
            items = [n for n in items if key(n.id) < max_id]
        if since_id is not None:
            items = [n for n in items if key(n.id) > since_id]
        if min_id is not None:
            page = sorted((n for n in items if key(n.id) > min_id), key=lambda n: key(n.id))
            page = list(reversed(page[:limit]))  # the oldest after min_id, newest first
        else:
            page = sorted(items, key=lambda n: key(n.id), reverse=True)[:limit]
        bodies = [b for b in (self._notification_json(n) for n in page) if b is not None]
        headers = {}
        if page:
            keep = [(k, v) for k, v in q.items() if k not in ("max_id", "min_id", "since_id")]
            base = f"{self.base_url}/api/v1/notifications?"
            next_q = urlencode([("max_id", page[-1].id), *keep])
            prev_q = urlencode([("min_id", page[0].id), *keep])
            headers["Link"] = f'<{base}{next_q}>; rel="next", <{base}{prev_q}>; rel="prev"'
        return web.json_response(bodies, headers=headers)

    async def _get_notification(self, request: web.Request) -> web.Response:
        self._auth(request)
        for n in self.notifications:
            if n.id == request.match_info["id"]:
                body = self._notification_json(n)
                if body is not None:
                    return web.json_response(body)
        return self._error(404, "Record not found")

    # ------------------------------------------------------------------ media

    async def _post_media(self, request: web.Request) -> web.Response:
        self._auth(request)
        post = await request.post()
        upload = post.get("file")
        if upload is None or not hasattr(upload, "file"):
            return self._error(422, "Validation failed: File can't be blank")
        data = upload.file.read()
        description = post.get("description")
        if description is not None:
            description = str(description)
            limit = self.description_limit or 1500
            if len(description) > limit:
                return self._error(
                    422,
                    f"Validation failed: Description is too long (maximum is {limit} characters)",
                )
        if len(data) > self.image_size_limit:
            return self._error(
                422,
                "Validation failed: File file size must be less than "
                f"{self.image_size_limit} Bytes",
            )
        media = FakeMedia(
            id=self._next_id(),
            description=description,
            size=len(data),
            mime_type=upload.content_type,
            file_name=upload.filename,
            polls_left=self.media_polls_before_ready,
            data=data,
        )
        self.media[media.id] = media
        body = self._media_json(media)
        return web.json_response(body, status=202 if media.polls_left > 0 else 200)

    async def _post_media_v1(self, request: web.Request) -> web.Response:
        response = await self._post_media(request)
        if response.status == 202:  # v1 answers when the file is processed
            media = self.media[json.loads(response.body)["id"]]  # type: ignore[arg-type]
            media.polls_left = 0
            return web.json_response(self._media_json(media))
        return response

    async def _get_media(self, request: web.Request) -> web.Response:
        self._auth(request)
        media = self.media.get(request.match_info["id"])
        if media is None or media.status_id is not None:  # Mastodon: unattached media only
            return self._error(404, "Record not found")
        media.polls += 1
        if media.polls_left > 0:
            media.polls_left -= 1
            if media.polls_left > 0:
                return web.json_response(self._media_json(media), status=206)
        return web.json_response(self._media_json(media))

    # ------------------------------------------------------------------ statuses

    async def _post_status(self, request: web.Request) -> web.Response:
        account_id = self._auth(request)
        form = await self._form(request)
        key = request.headers.get("Idempotency-Key")
        if key and self.idempotency_scope == "global":
            # Akkoma idempotency_plug.ex: any earlier answer under this key, whoever sent it
            cached = self._idempotency_cache.get(key)
            if cached is not None and self.idempotency_clock() - cached[2] < self.idempotency_ttl:
                self.idempotency_replays += 1
                return web.json_response(
                    cached[1],
                    status=cached[0],
                    headers={"idempotency-key": key, "idempotent-replayed": "true"},
                )
            response = await self._create_status(account_id, form, key, dedup=False)
            assert response.body is not None and isinstance(response.body, bytes)
            body = json.loads(response.body)
            self._idempotency_cache[key] = (response.status, body, self.idempotency_clock())
            return response
        return await self._create_status(
            account_id, form, key, dedup=self.idempotency_scope == "account"
        )

    async def _create_status(
        self, account_id: str, form: dict[str, Any], key: str | None, *, dedup: bool
    ) -> web.Response:
        if dedup and key:
            stored_at = self._idempotency_at.get((account_id, key))
            if (
                stored_at is not None
                and self.idempotency_clock() - stored_at > self.idempotency_ttl
            ):
                self._idempotency.pop((account_id, key), None)  # the key's lifetime is over
        if dedup and key and (account_id, key) in self._idempotency:
            existing = self.statuses.get(self._idempotency[(account_id, key)])
            if existing is not None:
                return web.json_response(self._status_json(existing))
        text = str(form.get("status", "") or "")
        spoiler = str(form.get("spoiler_text", "") or "")
        media_ids = [str(m) for m in form.get("media_ids", []) or []]
        in_reply_to_id = form.get("in_reply_to_id") or None
        visibility = str(form.get("visibility") or "public")
        if visibility not in self.flavour.visibilities:
            return self._error(422, "Validation failed: Visibility is not included in the list")
        if in_reply_to_id is not None and str(in_reply_to_id) not in self.statuses:
            return self._error(404, "Record not found")
        if self.flavour.reply_policy_403 and str(in_reply_to_id) in self.reply_forbidden:
            # gotosocial internal/processing/status/create.go + gtserror.NewErrorForbidden
            return self._error(403, "Forbidden: you do not have permission to reply to this status")
        language = form.get("language") or None
        if (
            language is not None
            and self.flavour.languages == "alpha2"
            and str(language) not in ISO_639_1
        ):
            return self._error(422, "Invalid language")  # Akkoma activity_draft.ex
        if not text.strip() and not media_ids:
            return self._error(422, "Validation failed: Text can't be blank")
        if len(text) + len(spoiler) > self.max_characters:
            return self._error(
                422, f"Validation failed: Text character limit of {self.max_characters} exceeded"
            )
        if len(media_ids) > self.max_media_attachments:
            return self._error(422, "Validation failed: Media attachments are too many")
        for media_id in media_ids:
            media = self.media.get(media_id)
            if media is None or media.status_id is not None:
                return self._error(
                    422, f"Media ({media_id}) does not exist or is already attached to a post"
                )
            if media.polls_left > 0:
                return self._error(
                    422,
                    "Cannot attach files that have not finished processing. Try again in a moment!",
                )
        if self.visibility_override is not None:
            visibility = self.visibility_override
        status = self._new_status(
            account_id,
            text,
            visibility=visibility,
            in_reply_to_id=str(in_reply_to_id) if in_reply_to_id else None,
            spoiler_text=spoiler,
            sensitive=str(form.get("sensitive", "0")).lower() in ("1", "true"),
            language=form.get("language") or "en",
            media_ids=media_ids,
        )
        for media_id in media_ids:
            self.media[media_id].status_id = status["id"]
        if key and dedup:
            self._idempotency[(account_id, key)] = status["id"]
            self._idempotency_at[(account_id, key)] = self.idempotency_clock()
        out = self._status_json(status)
        self.posted_statuses.append(out)
        self.post_params.append({**form, "idempotency_key": key})
        if account_id == self.bot["id"] and visibility != "direct":
            self.push_event("update", out)  # own posts land in the own home stream
        return web.json_response(out)

    async def _get_status(self, request: web.Request) -> web.Response:
        self._auth(request)
        status = self.statuses.get(request.match_info["id"])
        if status is None:
            return self._error(404, "Record not found")
        return web.json_response(self._status_json(status))

    async def _delete_status(self, request: web.Request) -> web.Response:
        account_id = self._auth(request)
        status = self.statuses.get(request.match_info["id"])
        if status is None:
            return self._error(404, "Record not found")
        if status["account"]["id"] != account_id:
            return self._error(403, "This action is not allowed")
        out = self._status_json(status)
        out.pop("content", None)
        out["text"] = status["_text"]
        self.delete_status(status["id"], push=True)
        return web.json_response(out)

    async def _get_context(self, request: web.Request) -> web.Response:
        self._auth(request)
        status_id = request.match_info["id"]
        if status_id not in self.statuses:
            return self._error(404, "Record not found")
        body = copy.deepcopy(templates()["context"])
        ancestors = []
        parent = self.statuses[status_id]["in_reply_to_id"]
        while parent and parent in self.statuses:
            ancestors.insert(0, self._status_json(self.statuses[parent]))
            parent = self.statuses[parent]["in_reply_to_id"]
        descendants = []
        frontier = {status_id}
        for sid in sorted(self.statuses, key=int):
            s = self.statuses[sid]
            if s["in_reply_to_id"] in frontier:
                frontier.add(sid)
                descendants.append(self._status_json(s))
        body["ancestors"], body["descendants"] = ancestors, descendants
        return web.json_response(body)

    # ------------------------------------------------------------------ streaming

    async def _stream_health(self, request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _stream_user(self, request: web.Request) -> web.StreamResponse:
        self._auth(request)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "private, no-store",
                "Access-Control-Allow-Origin": "*",
                "X-Request-Id": str(uuid.uuid4()),
            }
        )
        await response.prepare(request)
        conn = _StreamConn()
        self._streams.append(conn)
        self.stream_connects += 1
        try:
            await response.write(b":)\n")
            while True:
                if conn.drop_after is not None and conn.sent >= conn.drop_after:
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                try:
                    item = await asyncio.wait_for(conn.queue.get(), self.heartbeat_interval)
                except TimeoutError:
                    await response.write(b":\n")  # heartbeat: a comment line, as recorded
                    continue
                if item is None:
                    return response
                event, data = item
                if event == "":
                    continue
                await response.write(f"event: {event}\ndata: {data}\n\n".encode())
                conn.sent += 1
        except ConnectionResetError:
            return response
        finally:
            self._streams.remove(conn)

    async def _stream_ws(self, request: web.Request) -> web.StreamResponse:
        """`GET /api/v1/streaming?stream=user`, upgraded to a WebSocket.

        The token is read where `flavour.ws_token_places` says (GoToSocial stream.go:
        query, Sec-Websocket-Protocol, else Authorization; Akkoma websocket_handler.ex:
        query or sec-websocket-protocol, 401 without body otherwise; the protocol is echoed
        back by both). A plain GET is refused as gorilla/cowboy do (400).
        """
        places = self.flavour.ws_token_places
        found: list[tuple[str, str]] = []
        if "query" in places and request.query.get("access_token"):
            found.append(("query", request.query["access_token"]))
        protocol = request.headers.get("Sec-WebSocket-Protocol", "").strip()
        if "protocol" in places and protocol:
            found.append(("protocol", protocol))
        header = request.headers.get("Authorization", "")
        if "header" in places and header.startswith("Bearer "):
            found.append(("header", header[7:]))
        if not found or found[0][1] not in self.tokens:
            if self.flavour.name in ("akkoma", "pleroma"):
                return web.Response(status=401)  # cowboy_req:reply(401, req)
            return self._error(401, "Unauthorized: token not supplied or invalid")
        if request.query.get("stream") != "user":
            return web.Response(status=404)  # Streamer.get_topic → :bad_topic
        ws = web.WebSocketResponse(protocols=(protocol,) if protocol else ())
        if not ws.can_prepare(request).ok:
            return web.Response(status=400, text="Bad Request")
        await ws.prepare(request)
        conn = _StreamConn(kind="websocket", token_place=found[0][0])
        self._streams.append(conn)
        self.stream_connects += 1
        refused = self.stream_subscription_error
        if refused is not None:
            await ws.send_str(json.dumps({"error": refused[0], "status": refused[1]}))

        async def read_client() -> None:
            """Read what the client sends, as real servers do: a close frame gets its answer
            (aiohttp replies on receive) and ends the connection."""
            async for _ in ws:
                pass

        reader = asyncio.ensure_future(read_client())
        try:
            while True:
                if reader.done():
                    return ws
                if conn.drop_after is not None and conn.sent >= conn.drop_after:
                    if request.transport is not None:
                        request.transport.abort()
                    return ws
                try:
                    item = await asyncio.wait_for(conn.queue.get(), self.heartbeat_interval)
                except TimeoutError:
                    await ws.ping(b"ping!")  # GoToSocial pings every 30 s ("ping!")
                    continue
                if item is None:
                    await ws.close()
                    return ws
                event, data = item
                if event == "" or refused is not None:
                    continue
                message = {"stream": ["user"], "event": event, "payload": data}
                await ws.send_str(json.dumps(message, separators=(",", ":")))
                conn.sent += 1
        except (ConnectionResetError, RuntimeError):
            return ws
        finally:
            reader.cancel()
            self._streams.remove(conn)
