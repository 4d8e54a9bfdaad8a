"""A fake Lemmy instance (0.19 `/api/v3` or 1.0 `/api/v4`) on 127.0.0.1 for adapter tests.

Stateful: users, communities, posts, comments with `path`, the inboxes with read flags, login
tokens (which a test can expire), the site's `local_site_rate_limit` (enforced per kind over a
sliding window), image uploads, and a request log (with each answer, for the conformance test).

Where each shape comes from (checked by tests/lemmy/test_conformance.py against the installed
packages, see tests/lemmy/lemmy_reference.py):

* [JS019] lemmy-js-client@0.19.9 — `dist/http.js` (routes), `dist/types/*.d.ts` (shapes)
* [JS1]   lemmy-js-client@1.0.0-beta.2 — the same files for `/api/v4`
* [S019]  LemmyNet/lemmy tag 0.19.20 (e9d49b7b49f4751b924263fdebfc1af2a387eda9):
          `src/api_routes_http.rs` (routes, rate limiters), `crates/utils/src/error.rs`
          (error body `{"error": snake_case}`; 401 only for `incorrect_login`; 404 only for a
          diesel NotFound, so the `couldnt_find_*` codes are 400),
          `crates/utils/src/rate_limit/mod.rs` (400 `rate_limit_error`),
          `src/session_middleware.rs` + `crates/db_views/src/local_user_view.rs` (a bad token
          is ignored; a route needing a user answers 401 `incorrect_login`),
          `crates/db_views/src/private_message_view.rs` (the message list)
* [S1]    LemmyNet/lemmy 439734dd638a2c06a2f907beab7dcf4646e88f86 (1.0.0-beta.1):
          `crates/api/routes/src/lib.rs` (routes, rate limiters: every `/api/v4` request counts
          as `message`, plus `comment` / `image` / `register` where wrapped),
          `crates/utils/src/error.rs` (401 `incorrect_login`, 404 `not_found`, else 400),
          `crates/utils/src/response.rs` (429 → `too_many_requests`; other non-Lemmy errors,
          e.g. a bad query string, → `{"error": "unknown", "message": ...}`),
          `crates/db_views/notification/src/impls.rs` (the notification list and its filters),
          `crates/diesel_utils/src/pagination.rs` (`next_page` only after a full page),
          `crates/db_schema/src/utils/mod.rs` (limit 1..=50, default 20; 0.19: default 10),
          `crates/routes/src/middleware/idempotency.rs` + `crates/server/src/lib.rs` (the
          `Idempotency-Key` middleware, after the session middleware and before the routes'
          rate limiters: POST/PUT, keys ≤ 32 characters, per local user, a repeat → 422 with
          an empty body; swept every 120 s once 120 s old, so kept 120–240 s; modelled here
          as exactly 120 s, the least the server guarantees). 0.19.20 has no such middleware.

Lemmy 1.0 renamed `actor_id` → `ap_id` and `published`/`updated` → `published_at`/`updated_at`.

    async with FakeLemmy("v3") as fake:
        alice = fake.add_user("alice", domain="remote.example")
        comment = fake.mention(alice, "a cat in a hat")
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from aiohttp import web

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Lemmy's server-side mention scanner (crates/utils/src/utils/mention.rs), run on raw markdown.
MENTIONS_REGEX = re.compile(r"@(?P<name>[\w.]+)@(?P<domain>[a-zA-Z0-9._:-]+)")
BODY = web.RequestKey("json", dict)
VIEWER = web.RequestKey("viewer", object)
LOGGED = web.RequestKey("logged", object)
# [S019]/[S1] the defaults of `local_site_rate_limit` (db migrations).
DEFAULT_RATE_LIMITS: dict[str, tuple[int, float]] = {
    "message": (180, 60),
    "post": (6, 600),
    "register": (10, 3600),
    "image": (6, 3600),
    "comment": (6, 600),
    "search": (60, 600),
    "import_user_settings": (1, 86400),
}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _ApiError(Exception):
    """An answer `{"error": code, "message"?: message}` with `status`."""

    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    user: str | None  # the authenticated user's name, if any
    status: int = 0
    response: Any = None  # the JSON answer (None if not JSON)
    multipart_fields: tuple[str, ...] = ()  # form field names of a multipart upload
    idempotency_key: str | None = None  # the `Idempotency-Key` header, if one was sent


@dataclass
class _Failure:
    method: str
    path: str
    status: int
    body: JSON
    times: int
    after: bool = False  # the request is carried out; only its answer is replaced
    empty: bool = False  # the answer has no body at all
    skip: int = 0  # matching requests let through before the first failure


@dataclass
class _Image:
    data: bytes
    content_type: str
    delete_token: str
    uploader: int


@dataclass
class _Window:
    limit: int
    seconds: float
    hits: list[float] = field(default_factory=list)
    # the server's clock; tests that move time replace it (`FakeLemmy.set_clock`)
    clock: Callable[[], float] = time.monotonic

    def allow(self) -> bool:
        now = self.clock()
        self.hits = [t for t in self.hits if t > now - self.seconds]
        if len(self.hits) >= self.limit:
            return False
        self.hits.append(now)
        return True


class FakeLemmy:
    """A stateful fake Lemmy server; see the module docstring."""

    def __init__(
        self,
        api_version: str = "v3",
        *,
        hostname: str = "lemmy.test",
        bot_name: str = "imagebot",
        bot_password: str = "correct horse",
        rate_limits: dict[str, tuple[int, float]] | None = None,
        v3_compat_site: bool = False,
        max_upload_bytes: int = 5_000_000,
    ) -> None:
        if api_version not in ("v3", "v4"):
            raise ValueError(f"api_version must be 'v3' or 'v4', not {api_version!r}")
        self.api_version = api_version
        self.version = "0.19.20" if api_version == "v3" else "1.0.0-beta.1"
        self.hostname = hostname
        # A 1.0 server also answers `/api/v3` (crates/api/routes_v3); only `site` is modelled.
        self.v3_compat_site = v3_compat_site
        self.max_upload_bytes = max_upload_bytes
        self.rate_limits = dict(DEFAULT_RATE_LIMITS) | dict(rate_limits or {})
        self._window_clock: Callable[[], float] = time.monotonic
        self._windows = {k: _Window(int(n), float(s)) for k, (n, s) in self.rate_limits.items()}
        self._ids = {
            k: itertools.count(1)
            for k in (
                "person",
                "community",
                "post",
                "comment",
                "pm",
                "mention",
                "reply",
                "note",
                "modlog",
            )
        }
        self.persons: dict[int, JSON] = {}
        self.passwords: dict[int, str] = {}
        self.communities: dict[int, JSON] = {}
        self.posts: dict[int, JSON] = {}
        self.comments: dict[int, JSON] = {}
        self.private_messages: dict[int, JSON] = {}
        self.person_mentions: dict[int, JSON] = {}
        self.comment_replies: dict[int, JSON] = {}
        self.notifications: dict[int, JSON] = {}
        self.modlog: dict[int, JSON] = {}
        self.images: dict[str, _Image] = {}
        self.tokens: dict[str, int] = {}
        self.login_count = 0
        # [S1] idempotency.rs: (local user id, key) → when first seen (the window clock)
        self.idempotency_keys: dict[tuple[int, str], float] = {}
        self.idempotency_memory = 120.0
        self.requests: list[LoggedRequest] = []
        self._failures: list[_Failure] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.bot = self.add_user(bot_name, password=bot_password)
        self.community = self.add_community("pics")

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> FakeLemmy:
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024 * 1024)
        self._routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeLemmy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- test controls -------------------------------------------------------------------

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Run the server's rate-limit windows on `clock` (a test's injected time)."""
        self._window_clock = clock
        for window in self._windows.values():
            window.clock = clock

    def add_user(
        self,
        name: str,
        *,
        domain: str | None = None,
        password: str | None = None,
        bio: str | None = None,
        display_name: str | None = None,
        bot_account: bool = False,
    ) -> JSON:
        """A person; local (on `hostname`) unless `domain` names another instance."""
        domain = domain or self.hostname
        person: JSON = {
            "id": next(self._ids["person"]),
            "name": name,
            "display_name": display_name,
            "avatar": None,
            "banned": False,
            "published": _now(),
            "updated": None,
            "actor_id": f"https://{domain}/u/{name}",
            "bio": bio,
            "local": domain == self.hostname,
            "banner": None,
            "deleted": False,
            "matrix_user_id": None,
            "bot_account": bot_account,
            "ban_expires": None,
            "instance_id": 1 if domain == self.hostname else 2,
        }
        self.persons[person["id"]] = person
        if password is not None:
            self.passwords[person["id"]] = password
        return person

    def add_community(self, name: str, *, nsfw: bool = False) -> JSON:
        community: JSON = {
            "id": next(self._ids["community"]),
            "name": name,
            "title": name.title(),
            "description": None,
            "removed": False,
            "published": _now(),
            "updated": None,
            "deleted": False,
            "nsfw": nsfw,
            "actor_id": f"https://{self.hostname}/c/{name}",
            "local": True,
            "icon": None,
            "banner": None,
            "hidden": False,
            "posting_restricted_to_mods": False,
            "instance_id": 1,
            "visibility": "Public",
        }
        self.communities[community["id"]] = community
        return community

    def add_post(
        self,
        creator: JSON,
        name: str = "A post",
        *,
        community: JSON | None = None,
        nsfw: bool = False,
        locked: bool = False,
        url: str | None = None,
        url_content_type: str | None = None,
        alt_text: str | None = None,
    ) -> JSON:
        """A post; `url` is its link (an image post: a pict-rs URL from `add_image`, with
        `url_content_type` as Lemmy 0.19 records it from the fetched metadata and the
        uploader's `alt_text` — lemmy_db_schema's Post: url, url_content_type, alt_text)."""
        post_id = next(self._ids["post"])
        post = {
            "id": post_id,
            "name": name,
            "url": None,
            "body": None,
            "creator_id": creator["id"],
            "community_id": (community or self.community)["id"],
            "removed": False,
            "locked": locked,
            "published": _now(),
            "updated": None,
            "deleted": False,
            "nsfw": nsfw,
            "embed_title": None,
            "embed_description": None,
            "thumbnail_url": None,
            "ap_id": f"https://{self.hostname}/post/{post_id}",
            "local": True,
            "embed_video_url": None,
            "language_id": 0,
            "featured_community": False,
            "featured_local": False,
            "url_content_type": url_content_type,
            "alt_text": alt_text,
        }
        if url is not None:
            post["url"] = url
        self.posts[post_id] = post
        return post

    def add_image(self, uploader: JSON, data: bytes, content_type: str = "image/png") -> str:
        """A user's pict-rs upload; returns its URL on this instance (v3: /pictrs/image/NAME,
        v4: /api/v4/image/NAME — the paths the fake serves it from)."""
        ext = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(
            content_type, "bin"
        )
        name = f"{secrets.token_hex(8)}.{ext}"
        self.images[name] = _Image(bytes(data), content_type, secrets.token_hex(8), uploader["id"])
        if self.api_version == "v4":
            return f"{self.base_url}/api/v4/image/{name}"
        return f"{self.base_url}/pictrs/image/{name}"

    def mention(
        self,
        from_user: JSON,
        text: str,
        *,
        post: JSON | None = None,
        parent: JSON | None = None,
        nsfw: bool = False,
        community_nsfw: bool = False,
    ) -> JSON:
        """A comment by `from_user` that @-mentions the bot (a new post unless one is given)."""
        if post is None and parent is not None:
            post = self.posts[parent["post_id"]]
        if post is None:
            community = self.add_community(f"c{len(self.communities) + 1}", nsfw=community_nsfw)
            post = self.add_post(from_user, community=community, nsfw=nsfw)
        content = f"@{self.bot['name']}@{self.hostname} {text}"
        return self.create_comment(from_user, post["id"], content, parent_id=_id(parent))

    def reply_to_bot(self, from_user: JSON, bot_comment: JSON | int, text: str) -> JSON:
        """A reply to one of the bot's comments (lands in the bot's replies inbox)."""
        parent = self.comments[_id(bot_comment) or 0]
        return self.create_comment(from_user, parent["post_id"], text, parent_id=parent["id"])

    def private_message(self, from_user: JSON, text: str) -> JSON:
        return self.create_private_message(from_user, self.bot["id"], text)

    def delete_comment(self, comment_id: int) -> None:
        self.comments[comment_id]["deleted"] = True

    def remove_comment(self, comment_id: int) -> None:
        self.comments[comment_id]["removed"] = True

    def delete_private_message(self, pm_id: int) -> None:
        self.private_messages[pm_id]["deleted"] = True

    def lock_post(self, post_id: int) -> None:
        self.posts[post_id]["locked"] = True

    def expire_tokens(self) -> None:
        """Every issued login token stops working (as after a JWT expiry or secret rotation)."""
        self.tokens.clear()

    def set_rate_limit(self, kind: str, count: int, seconds: float) -> None:
        self.rate_limits[kind] = (count, seconds)
        self._windows[kind] = _Window(count, seconds, clock=self._window_clock)

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        error: str | None = None,
        times: int = 1,
        *,
        after: bool = False,
        empty: bool = False,
        skip: int = 0,
    ) -> None:
        """The next `times` requests to `method path` answer `status` {"error": error}.
        With `after`, each is carried out first and only its answer is lost (e.g. a proxy's
        504 after Lemmy did the work); with `empty`, the answer has no body; `skip` lets that
        many matching requests through first."""
        body = {"error": error} if error else {}
        self._failures.append(
            _Failure(method.upper(), path, status, body, times, after, empty, skip)
        )

    def clear_failures(self) -> None:
        """Forget every failure `fail_next` set up that has not been used up yet."""
        self._failures.clear()

    def comments_by(self, person: JSON) -> list[JSON]:
        return [c for c in self.comments.values() if c["creator_id"] == person["id"]]

    def messages_by(self, person: JSON) -> list[JSON]:
        return [m for m in self.private_messages.values() if m["creator_id"] == person["id"]]

    def unread_for(self, person: JSON) -> dict[str, int]:
        pid = person["id"]
        return {
            "mentions": sum(
                1
                for m in self.person_mentions.values()
                if m["recipient_id"] == pid and not m["read"]
            ),
            "replies": sum(
                1
                for r in self.comment_replies.values()
                if r["recipient_id"] == pid and not r["read"]
            ),
            "private_messages": sum(
                1
                for p in self.private_messages.values()
                if p["recipient_id"] == pid and not p["read"] and not p["deleted"]
            ),
            # [S1] get_unread_count: hidden (deleted/removed) items are not counted either
            "notifications": sum(
                1
                for n in self.notifications.values()
                if n["recipient_id"] == pid and not n["read"] and self._note_visible(n)
            ),
        }

    def requests_to(self, method: str, path_suffix: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    # --- 1.0 notifications the bot does not answer (0.19 has no such inbox entries) --------

    def mention_in_post(self, from_user: JSON, text: str) -> JSON:
        """A post whose body @-mentions the bot: 1.0 notifies `mention` with a post, no comment."""
        post = self.add_post(from_user, "A post")
        post["body"] = f"@{self.bot['name']}@{self.hostname} {text}"
        if self.api_version == "v4":
            self._notification(self.bot["id"], from_user["id"], "mention", post=post)
        return post

    def subscribed_post(self, from_user: JSON) -> JSON:
        """A new post in a community the bot subscribed to (1.0 `subscribed`, a post)."""
        post = self.add_post(from_user, "News")
        if self.api_version == "v4":
            self._notification(self.bot["id"], from_user["id"], "subscribed", post=post)
        return post

    def mod_action(self, moderator: JSON, kind: str = "mod_remove_comment") -> None:
        """A moderator acted on the bot (1.0 `mod_action` with a `ModlogView`)."""
        if self.api_version != "v4":
            return
        modlog_id = next(self._ids["modlog"])
        self.modlog[modlog_id] = {
            "id": modlog_id,
            "kind": kind,
            "is_revert": False,
            "reason": "spam",
            "published_at": _now(),
            "child_count": 0,
            "moderator_id": moderator["id"],
        }
        self._notification(self.bot["id"], moderator["id"], "mod_action", modlog_id=modlog_id)

    # --- errors as each version words them -------------------------------------------------

    def _not_found(self, what: str) -> _ApiError:
        """[S019] `.ok_or(CouldntFindX)` is 400; [S1] a diesel NotFound is 404 `not_found`."""
        if self.api_version == "v3":
            return _ApiError(400, f"couldnt_find_{what}")
        return _ApiError(404, "not_found")

    def _couldnt(self, action: str, what: str) -> _ApiError:
        """[S019] `couldnt_update_comment` etc.; [S1] merged into `couldnt_update`."""
        if self.api_version == "v3":
            return _ApiError(400, f"couldnt_{action}_{what}")
        return _ApiError(400, f"couldnt_{action}")

    # --- state changes (also used by the API handlers) -----------------------------------

    def create_comment(
        self, author: JSON, post_id: int, content: str, *, parent_id: int | None = None
    ) -> JSON:
        post = self.posts.get(post_id)
        if post is None:
            raise self._not_found("post")
        if post["deleted"] or post["removed"]:
            raise _ApiError(400, "deleted")
        if post["locked"]:
            raise _ApiError(400, "locked")  # [S019]/[S1] comment/create.rs
        if not content.strip():
            raise self._couldnt("create", "comment")
        parent = None
        if parent_id is not None:
            parent = self.comments.get(parent_id)
            if parent is None or parent["post_id"] != post_id:
                raise self._not_found("comment")
            if parent["deleted"] or parent["removed"]:
                raise _ApiError(400, "deleted")
        comment_id = next(self._ids["comment"])
        comment = {
            "id": comment_id,
            "creator_id": author["id"],
            "post_id": post_id,
            "content": content,
            "removed": False,
            "published": _now(),
            "updated": None,
            "deleted": False,
            "ap_id": f"https://{self.hostname}/comment/{comment_id}",
            "local": True,
            "path": f"{parent['path'] if parent else '0'}.{comment_id}",
            "distinguished": False,
            "language_id": 0,
        }
        self.comments[comment_id] = comment
        self._notify_comment(author, comment, parent)
        return comment

    def _notify_comment(self, author: JSON, comment: JSON, parent: JSON | None) -> None:
        for match in MENTIONS_REGEX.finditer(comment["content"]):
            if match["domain"].lower() != self.hostname:
                continue
            person = self._local_person(match["name"])
            if person is None or person["id"] == author["id"]:
                continue
            mention = {
                "id": next(self._ids["mention"]),
                "recipient_id": person["id"],
                "comment_id": comment["id"],
                "read": False,
                "published": _now(),
            }
            self.person_mentions[mention["id"]] = mention
            self._notification(person["id"], author["id"], "mention", comment=comment)
        if parent is not None and parent["creator_id"] != author["id"]:
            recipient = self.persons[parent["creator_id"]]
            if recipient["local"]:
                reply = {
                    "id": next(self._ids["reply"]),
                    "recipient_id": recipient["id"],
                    "comment_id": comment["id"],
                    "read": False,
                    "published": _now(),
                }
                self.comment_replies[reply["id"]] = reply
                self._notification(recipient["id"], author["id"], "reply", comment=comment)

    def _notification(
        self,
        recipient_id: int,
        creator_id: int,
        kind: str,
        *,
        comment: JSON | None = None,
        post: JSON | None = None,
        pm: JSON | None = None,
        modlog_id: int | None = None,
    ) -> None:
        """[JS1] `Notification`; 0.19 keeps its own three inbox tables instead."""
        note_id = next(self._ids["note"])
        post_id = comment["post_id"] if comment else (post["id"] if post else None)
        self.notifications[note_id] = {
            "id": note_id,
            "recipient_id": recipient_id,
            "comment_id": comment["id"] if comment else None,
            "read": False,
            "published_at": _now(),
            "kind": kind,
            "post_id": post_id,
            "private_message_id": pm["id"] if pm else None,
            "modlog_id": modlog_id,
            "creator_id": creator_id,
        }

    def create_private_message(self, author: JSON, recipient_id: int, content: str) -> JSON:
        recipient = self.persons.get(recipient_id)
        if recipient is None:
            raise self._not_found("person")
        if not content.strip():
            raise self._couldnt("create", "private_message")
        pm_id = next(self._ids["pm"])
        pm = {
            "id": pm_id,
            "creator_id": author["id"],
            "recipient_id": recipient_id,
            "content": content,
            "deleted": False,
            "removed": False,
            "read": False,
            "published": _now(),
            "updated": None,
            "ap_id": f"https://{self.hostname}/private_message/{pm_id}",
            "local": True,
        }
        self.private_messages[pm_id] = pm
        # [S1] api_utils/src/notify.rs: a notification row only for a *local* recipient.
        if recipient["local"]:
            self._notification(recipient_id, author["id"], "private_message", pm=pm)
        return pm

    def _local_person(self, name: str) -> JSON | None:
        for person in self.persons.values():
            if person["local"] and person["name"].lower() == name.lower():
                return person
        return None

    # --- rendering -----------------------------------------------------------------------

    def _out(self, kind: str, obj: JSON) -> JSON:
        """One stored object as this version sends it ([JS019] / [JS1] `types/<Kind>.d.ts`).

        Objects are stored in the 0.19 shape; 1.0 renames the time and actor fields, drops
        what it removed and adds its counters (which the fake keeps at 0)."""
        if self.api_version == "v3":
            out = dict(obj)
            if kind == "private_message":
                out.pop("removed", None)  # 0.19 `PrivateMessage` has no `removed`
            return out
        renamed = {"actor_id": "ap_id", "published": "published_at", "updated": "updated_at"}
        out = {renamed.get(k, k): v for k, v in obj.items() if k not in _V4_DROPPED[kind]}
        out |= {k: v for k, v in _V4_ADDED[kind].items() if k not in out}
        if kind == "community":  # [JS1] CommunityVisibility is snake_case
            out["visibility"] = str(out["visibility"]).lower()
        if kind == "comment":
            out["child_count"] = sum(
                1 for c in self.comments.values() if f".{obj['id']}." in c["path"]
            )
        if "last_refreshed_at" in out and out["last_refreshed_at"] is None:
            out["last_refreshed_at"] = out.get("published_at")
        return {k: v for k, v in out.items() if v is not None}  # Option::None is skipped

    def _comment_out(self, comment: JSON, viewer: JSON | None) -> JSON:
        shown = dict(comment)
        if (comment["deleted"] or comment["removed"]) and (
            viewer is None or viewer["id"] != comment["creator_id"]
        ):
            shown["content"] = ""
        return self._out("comment", shown)

    def _comment_view(self, comment: JSON, viewer: JSON | None) -> JSON:
        """[JS019] / [JS1] `CommentView`."""
        post = self.posts[comment["post_id"]]
        base = {
            "comment": self._comment_out(comment, viewer),
            "creator": self._out("person", self.persons[comment["creator_id"]]),
            "post": self._out("post", post),
            "community": self._out("community", self.communities[post["community_id"]]),
        }
        if self.api_version == "v4":
            return base | _V4_VIEW_FLAGS
        return base | {
            "counts": {
                "comment_id": comment["id"],
                "score": 1,
                "upvotes": 1,
                "downvotes": 0,
                "published": comment["published"],
                "child_count": sum(
                    1 for c in self.comments.values() if f".{comment['id']}." in c["path"]
                ),
            },
            "creator_banned_from_community": False,
            "banned_from_community": False,
            "creator_is_moderator": False,
            "creator_is_admin": False,
            "subscribed": "NotSubscribed",
            "saved": False,
            "creator_blocked": False,
        }

    def _post_view(self, post: JSON) -> JSON:
        """[JS1] `PostView` (only 1.0 notifications carry one here)."""
        return {
            "post": self._out("post", post),
            "creator": self._out("person", self.persons[post["creator_id"]]),
            "community": self._out("community", self.communities[post["community_id"]]),
        } | _V4_VIEW_FLAGS

    def _inbox_view(self, key: str, entry: JSON, viewer: JSON) -> JSON:
        """[JS019] `PersonMentionView` / `CommentReplyView`."""
        view = self._comment_view(self.comments[entry["comment_id"]], viewer)
        return {
            key: dict(entry),
            **view,
            "recipient": self._out("person", self.persons[entry["recipient_id"]]),
        }

    def _pm_view(self, pm: JSON) -> JSON:
        """[JS019] / [JS1] `PrivateMessageView`."""
        return {
            "private_message": self._out("private_message", pm),
            "creator": self._out("person", self.persons[pm["creator_id"]]),
            "recipient": self._out("person", self.persons[pm["recipient_id"]]),
        }

    def _site(self, viewer: JSON | None) -> JSON:
        """[JS019] / [JS1] `GetSiteResponse` (the parts a client reads)."""
        v4 = self.api_version == "v4"
        rate: JSON = {"local_site_id": 1, "published": _now()}
        for kind, (count, seconds) in self.rate_limits.items():
            if v4:  # [JS1] LocalSiteRateLimit: `<kind>_max_requests`, `<kind>_interval_seconds`
                rate[f"{kind}_max_requests"] = count
                rate[f"{kind}_interval_seconds"] = seconds
            else:  # [JS019] LocalSiteRateLimit: `<kind>`, `<kind>_per_second`
                rate[kind] = count
                rate[f"{kind}_per_second"] = seconds
        site = {
            "id": 1,
            "name": "Fake Lemmy",
            "published": _now(),
            "actor_id": f"https://{self.hostname}/",
            "last_refreshed_at": _now(),
            "inbox_url": f"https://{self.hostname}/site_inbox",
            "instance_id": 1,
        }
        if not v4:
            site["public_key"] = "-----BEGIN PUBLIC KEY-----"
        local_site = {
            "id": 1,
            "site_id": 1,
            "site_setup": True,
            "community_creation_admin_only": False,
            "private_instance": False,
            "federation_enabled": True,
            "published": _now(),
            "registration_mode": "open" if v4 else "Open",
        }
        site_view: JSON = {
            "site": self._out("site", site),
            "local_site": self._out("local_site", local_site),
            "local_site_rate_limit": self._out("rate_limit", rate),
        }
        if v4:
            site_view["instance"] = {"id": 1, "domain": self.hostname, "published_at": _now()}
            body: JSON = {
                "site_view": site_view,
                "admins": [],
                "version": self.version,
                "all_languages": [],
                "discussion_languages": [],
                "oauth_providers": [],
                "admin_oauth_providers": [],
                "blocked_urls": [],
                "active_plugins": [],
                "captcha_enabled": False,
            }
            return body
        site_view["counts"] = {"site_id": 1, "users": len(self.persons), "posts": len(self.posts)}
        body = {
            "site_view": site_view,
            "admins": [],
            "version": self.version,
            "all_languages": [],
            "discussion_languages": [],
            "taglines": [],
            "custom_emojis": [],
            "blocked_urls": [],
        }
        if viewer is not None:
            body["my_user"] = self._my_user(viewer)
        return body

    def _my_user(self, viewer: JSON) -> JSON:
        """[JS019] / [JS1] `MyUserInfo` (0.19 inside `GetSiteResponse`, 1.0 `GET /account`)."""
        local_user = {
            "id": viewer["id"],
            "person_id": viewer["id"],
            "show_nsfw": True,
            "theme": "browser",
            "interface_language": "en",
            "show_bot_accounts": True,
            "email_verified": True,
            "accepted_application": True,
            "admin": False,
        }
        if self.api_version == "v4":
            return {
                "local_user_view": {
                    "local_user": local_user | {"default_listing_type": "local"},
                    "person": self._out("person", viewer),
                    "banned": False,
                },
                "follows": [],
                "moderates": [],
                "multi_community_follows": [],
                "community_blocks": [],
                "instance_communities_blocks": [],
                "instance_persons_blocks": [],
                "person_blocks": [],
                "keyword_blocks": [],
                "discussion_languages": [],
            }
        return {
            "local_user_view": {
                "local_user": local_user
                | {"default_sort_type": "Active", "default_listing_type": "Local"},
                "person": self._out("person", viewer),
                "counts": {"person_id": viewer["id"], "post_count": 0, "comment_count": 0},
            },
            "follows": [],
            "moderates": [],
            "community_blocks": [],
            "instance_blocks": [],
            "person_blocks": [],
            "discussion_languages": [],
        }

    # --- HTTP plumbing -------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body: Any = None
        if request.content_type == "application/json" and request.can_read_body:
            body = await request.json()
        viewer = self._viewer(request)
        logged = LoggedRequest(
            request.method,
            request.path,
            dict(request.query),
            body,
            viewer.get("name") if viewer and not viewer.get("_invalid") else None,
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
        self.requests.append(logged)
        request[LOGGED] = logged
        request[BODY] = body or {}
        request[VIEWER] = viewer
        response = self._repeated_request(request, viewer)  # [S1] before the routes
        failure = self._injected_failure(request) if response is None else None
        if failure is not None and failure.after:
            await self._guarded(request, handler)  # done; the answer never arrives
        if failure is not None:
            response = (
                web.Response(status=failure.status)
                if failure.empty
                else web.json_response(failure.body, status=failure.status)
            )
        if response is None:
            response = await self._guarded(request, handler)
        logged.status = response.status
        if isinstance(response, web.Response) and response.content_type == "application/json":
            logged.response = json.loads(response.body) if response.body else None  # type: ignore[arg-type]
        return response

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        for kind in self._rate_kinds(request):
            if not self._windows[kind].allow():
                if self.api_version == "v3":  # [S019] rate_limit/mod.rs: a LemmyError, 400
                    return web.json_response({"error": "rate_limit_error"}, status=400)
                # [S1] 429 from actix-extensible-rate-limit, made JSON by response.rs
                window = self._windows[kind]
                wait = max(1, int(window.seconds))
                return web.json_response(
                    {"error": "too_many_requests"},
                    status=429,
                    headers={"Retry-After": str(wait)},
                )
        try:
            self._check_query(request)
            return await handler(request)
        except _ApiError as exc:
            body = {"error": exc.code}
            if exc.message:
                body["message"] = exc.message
            return web.json_response(body, status=exc.status)

    def _check_query(self, request: web.Request) -> None:
        """Query strings as serde reads them: enum casing, booleans, numbers, limit range.

        A query that does not deserialise is actix's `QueryPayloadError`, 400, answered as
        `{"error": "unknown", "message": "Query deserialize error: ..."}` ([S019]/[S1]
        response.rs)."""
        v4 = self.api_version == "v4"
        enums = _ENUMS_V4 if v4 else _ENUMS_V3
        for key, value in request.query.items():
            allowed = enums.get((request.path.rsplit(f"/api/{self.api_version}", 1)[-1], key))
            if allowed is not None and value not in allowed:
                expected = ", ".join(f"`{v}`" for v in sorted(allowed))
                raise _ApiError(
                    400,
                    "unknown",
                    f"Query deserialize error: unknown variant `{value}`, "
                    f"expected one of {expected}",
                )
            if key in _BOOL_FIELDS and value not in ("true", "false"):
                raise _ApiError(400, "unknown", f"Query deserialize error: invalid value {value!r}")
            if key in _INT_FIELDS and not value.lstrip("-").isdigit():
                raise _ApiError(400, "unknown", f"Query deserialize error: invalid digit {value!r}")
        limit = request.query.get("limit")
        if limit is not None and not 1 <= int(limit) <= 50:
            raise _ApiError(400, "invalid_fetch_limit" if v4 else "couldnt_get_comments")

    def _repeated_request(self, request: web.Request, viewer: JSON | None) -> web.Response | None:
        """[S1] idempotency.rs: a repeated `Idempotency-Key` → 422, empty body (1.0 only)."""
        key = request.headers.get("Idempotency-Key", "")
        if (
            self.api_version != "v4"
            or request.method not in ("POST", "PUT")
            or not key
            or len(key) > 32
            or viewer is None
            or viewer.get("_invalid")
        ):
            return None
        now = self._window_clock()
        self.idempotency_keys = {
            k: t for k, t in self.idempotency_keys.items() if now - t < self.idempotency_memory
        }
        entry = (int(viewer["id"]), key)
        if entry in self.idempotency_keys:
            return web.Response(status=422)
        self.idempotency_keys[entry] = now
        return None

    def forget_idempotency_keys(self) -> None:
        """The server restarted: its in-memory idempotency keys are gone."""
        self.idempotency_keys.clear()

    def _injected_failure(self, request: web.Request) -> _Failure | None:
        for failure in self._failures:
            if failure.method == request.method and failure.path == request.path:
                if failure.skip > 0:
                    failure.skip -= 1
                    return None
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _rate_kinds(self, request: web.Request) -> list[str]:
        """Which buckets a request draws from ([S019] api_routes_http.rs, [S1] routes/lib.rs)."""
        path, method = request.path, request.method
        if self.api_version == "v3":
            if method == "POST" and path == "/pictrs/image":
                return ["image"]
            if not path.startswith("/api/v3/"):
                return []
            if method == "POST" and path == "/api/v3/comment":
                return ["comment"]  # its own resource, wrapped only by the comment limiter
            if path == "/api/v3/user/login":
                return ["register"]
            return ["message"]
        if not path.startswith("/api/v4/"):
            return []
        kinds = ["message"]  # the whole /api/v4 scope is wrapped by rate_limit.message()
        if method == "POST" and path == "/api/v4/comment":
            kinds.append("comment")
        elif method == "POST" and path == "/api/v4/image":
            kinds.append("image")
        elif path.startswith("/api/v4/account/auth/"):
            kinds.append("register")
        return kinds

    def _viewer(self, request: web.Request) -> JSON | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
        token = token or request.cookies.get("jwt", "")
        if not token:
            return None
        user_id = self.tokens.get(token)
        return self.persons.get(user_id) if user_id is not None else {"_invalid": True}

    @staticmethod
    def _user(request: web.Request, *, required: bool = True) -> JSON | None:
        """The logged-in person. A bad token is ignored (the session middleware drops it); a
        route that needs a user then answers 401 `incorrect_login` ([S019]/[S1] FromRequest)."""
        viewer = cast("JSON | None", request[VIEWER])
        if viewer is not None and viewer.get("_invalid"):
            viewer = None
        if viewer is None and required:
            raise _ApiError(401, "incorrect_login")
        return viewer

    def _routes(self, app: web.Application) -> None:
        """Only routes that exist in the reference route table ([JS019]/[JS1] http.js)."""
        p = f"/api/{self.api_version}"
        r = app.router
        r.add_get(f"{p}/site", self._h_site)
        if self.api_version == "v4" and self.v3_compat_site:
            r.add_get("/api/v3/site", self._h_site)
        r.add_post(f"{p}/comment", self._h_comment_create)
        r.add_get(f"{p}/comment", self._h_comment_get)
        r.add_get(f"{p}/comment/list", self._h_comment_list)
        r.add_post(f"{p}/private_message", self._h_pm_create)
        if self.api_version == "v3":
            r.add_post(f"{p}/comment/delete", self._h_comment_delete)
            r.add_post(f"{p}/private_message/delete", self._h_pm_delete)
            r.add_post(f"{p}/user/login", self._h_login)
            r.add_get(f"{p}/user/mention", self._h_mentions)
            r.add_get(f"{p}/user/replies", self._h_replies)
            r.add_get(f"{p}/private_message/list", self._h_pm_list)
            r.add_post(f"{p}/user/mention/mark_as_read", self._h_mark_mention)
            r.add_post(f"{p}/comment/mark_as_read", self._h_mark_reply)
            r.add_post(f"{p}/private_message/mark_as_read", self._h_mark_pm)
            r.add_get(f"{p}/user/unread_count", self._h_unread_count)
            r.add_put(f"{p}/user/save_user_settings", self._h_save_settings)
            r.add_post("/pictrs/image", self._h_upload)
            r.add_get("/pictrs/image/delete/{token}/{file}", self._h_image_delete_v3)
            r.add_get("/pictrs/image/{file}", self._h_image_get)
        else:
            r.add_delete(f"{p}/comment", self._h_comment_delete)
            r.add_delete(f"{p}/private_message", self._h_pm_delete)
            r.add_post(f"{p}/account/auth/login", self._h_login)
            r.add_get(f"{p}/account", self._h_account)
            r.add_get(f"{p}/account/unread_counts", self._h_unread_counts_v4)
            r.add_get(f"{p}/account/notification/list", self._h_notifications)
            r.add_post(f"{p}/account/notification/mark_as_read", self._h_mark_notification)
            r.add_put(f"{p}/account/settings/save", self._h_save_settings)
            r.add_delete(f"{p}/account/media", self._h_media_delete)
            r.add_post(f"{p}/image", self._h_upload)
            r.add_get(f"{p}/image/{{file}}", self._h_image_get)

    # --- handlers ------------------------------------------------------------------------

    async def _h_site(self, request: web.Request) -> web.Response:
        return web.json_response(self._site(self._user(request, required=False)))

    async def _h_login(self, request: web.Request) -> web.Response:
        body = request[BODY]
        person = self._local_person(str(body.get("username_or_email") or ""))
        if person is None or self.passwords.get(person["id"]) != body.get("password"):
            raise _ApiError(401, "incorrect_login")  # [S019]/[S1] the one 401
        token = secrets.token_urlsafe(24)
        self.tokens[token] = person["id"]
        self.login_count += 1
        return web.json_response(
            {"jwt": token, "registration_created": False, "verify_email_sent": False}
        )

    async def _h_account(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        return web.json_response(self._my_user(user))

    async def _h_save_settings(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        if "bot_account" in request[BODY]:
            user["bot_account"] = bool(request[BODY]["bot_account"])
        return web.json_response({"success": True})

    async def _h_mentions(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        rows = self._inbox_rows(self.person_mentions, user, request)
        views = [self._inbox_view("person_mention", m, user) for m in rows]
        return web.json_response({"mentions": views})

    async def _h_replies(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        rows = self._inbox_rows(self.comment_replies, user, request)
        views = [self._inbox_view("comment_reply", r, user) for r in rows]
        return web.json_response({"replies": views})

    def _inbox_rows(self, table: dict[int, JSON], user: JSON, request: web.Request) -> list[JSON]:
        unread_only = request.query.get("unread_only") == "true"
        rows = [
            row
            for row in table.values()
            if row["recipient_id"] == user["id"] and not (unread_only and row["read"])
        ]
        rows.sort(key=lambda row: row["id"], reverse=True)
        return _page(rows, request, default_limit=10)

    async def _h_pm_list(self, request: web.Request) -> web.Response:
        """[S019] private_message_view.rs: unread_only → only to me (optionally from
        creator_id); otherwise sent and received, and creator_id picks the conversation with
        that person (from *or* to). Deleted and removed messages are never listed."""
        user = self._user(request)
        assert user is not None
        unread_only = request.query.get("unread_only") == "true"
        creator_id = request.query.get("creator_id")
        other = int(creator_id) if creator_id else None
        rows = []
        for pm in self.private_messages.values():
            if pm["deleted"] or pm["removed"]:
                continue
            if unread_only:
                if pm["read"] or pm["recipient_id"] != user["id"]:
                    continue
                if other is not None and pm["creator_id"] != other:
                    continue
            else:
                if user["id"] not in (pm["creator_id"], pm["recipient_id"]):
                    continue
                if other is not None and other not in (pm["creator_id"], pm["recipient_id"]):
                    continue
            rows.append(pm)
        rows.sort(key=lambda pm: pm["id"], reverse=True)
        views = [self._pm_view(pm) for pm in _page(rows, request, default_limit=10)]
        return web.json_response({"private_messages": views})

    async def _h_mark_mention(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        row = self.person_mentions.get(int(request[BODY].get("person_mention_id") or 0))
        if row is None or row["recipient_id"] != user["id"]:
            raise _ApiError(400, "couldnt_update_comment")
        row["read"] = bool(request[BODY].get("read"))
        view = self._inbox_view("person_mention", row, user)
        return web.json_response({"person_mention_view": view})

    async def _h_mark_reply(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        row = self.comment_replies.get(int(request[BODY].get("comment_reply_id") or 0))
        if row is None or row["recipient_id"] != user["id"]:
            raise _ApiError(400, "couldnt_update_comment")
        row["read"] = bool(request[BODY].get("read"))
        view = self._inbox_view("comment_reply", row, user)
        return web.json_response({"comment_reply_view": view})

    async def _h_mark_pm(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        pm = self.private_messages.get(int(request[BODY].get("private_message_id") or 0))
        if pm is None or pm["recipient_id"] != user["id"]:
            raise _ApiError(400, "couldnt_update_private_message")
        pm["read"] = bool(request[BODY].get("read"))
        return web.json_response({"private_message_view": self._pm_view(pm)})

    async def _h_unread_count(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        counts = self.unread_for(user)
        counts.pop("notifications")
        return web.json_response(counts)

    async def _h_unread_counts_v4(self, request: web.Request) -> web.Response:
        """[JS1] `UnreadCountsResponse` (`GET /account/unread_counts`)."""
        user = self._user(request)
        assert user is not None
        return web.json_response({"notification_count": self.unread_for(user)["notifications"]})

    async def _h_notifications(self, request: web.Request) -> web.Response:
        """[S1] db_views/notification/src/impls.rs `NotificationQuery::list`."""
        user = self._user(request)
        assert user is not None
        q = request.query
        wanted = q.get("type_")
        unread_only = q.get("unread_only") == "true"
        creator_id = int(q["creator_id"]) if q.get("creator_id") else None
        pm_type = wanted == "private_message"
        me = user["id"]
        rows = []
        for n in self.notifications.values():
            if not self._note_visible(n):
                continue
            if unread_only:
                if n["recipient_id"] != me or n["read"]:
                    continue
            elif pm_type:
                # "show messages FROM you also"
                mine = n["private_message_id"] is not None and n["creator_id"] == me
                if n["recipient_id"] != me and not mine:
                    continue
            elif n["recipient_id"] != me:
                continue
            if wanted not in (None, "all") and n["kind"] != wanted:
                continue
            if creator_id is not None:
                if pm_type:
                    them_to_me = n["recipient_id"] == me and n["creator_id"] == creator_id
                    me_to_them = n["recipient_id"] == creator_id and n["creator_id"] == me
                    if not (them_to_me or me_to_them):
                        continue
                elif n["creator_id"] != creator_id:
                    continue
            rows.append(n)
        rows.sort(key=lambda n: (n["published_at"], n["id"]), reverse=True)
        limit = int(q.get("limit") or 20)
        after = _decode_cursor(q.get("page_cursor"))
        if after is not None:
            rows = [n for n in rows if (n["published_at"], n["id"]) < after]
        page = rows[:limit]
        items = [
            {"notification": self._note_out(n), "data": self._notification_data(n, user)}
            for n in page
        ]
        answer: JSON = {"items": items}
        if len(page) == limit:  # pagination.rs: a full page gets a next_page cursor
            last = page[-1]
            answer["next_page"] = _encode_cursor((last["published_at"], last["id"]))
        return web.json_response(answer)

    def _note_visible(self, note: JSON) -> bool:
        """`filter_deleted_and_removed`: deleted/removed comments, posts, messages are hidden."""
        if note["comment_id"] is not None:
            c = self.comments[note["comment_id"]]
            if c["deleted"] or c["removed"]:
                return False
        if note["private_message_id"] is not None:
            pm = self.private_messages[note["private_message_id"]]
            if pm["deleted"] or pm["removed"]:
                return False
        return True

    def _note_out(self, note: JSON) -> JSON:
        return {k: v for k, v in note.items() if v is not None}

    def _notification_data(self, note: JSON, viewer: JSON) -> JSON:
        """[JS1] `NotificationData`, tagged by `type_`."""
        if note["modlog_id"] is not None:
            entry = dict(self.modlog[note["modlog_id"]])
            moderator = self.persons[entry.pop("moderator_id")]
            return {
                "type_": "mod_action",
                "modlog": entry,
                "moderator": self._out("person", moderator),
                "target_person": self._out("person", viewer),
            }
        if note["private_message_id"] is not None:
            pm = self.private_messages[note["private_message_id"]]
            return {"type_": "private_message", **self._pm_view(pm)}
        if note["comment_id"] is not None:
            comment = self.comments[note["comment_id"]]
            return {"type_": "comment", **self._comment_view(comment, viewer)}
        return {"type_": "post", **self._post_view(self.posts[note["post_id"]])}

    async def _h_mark_notification(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        note = self.notifications.get(int(request[BODY].get("notification_id") or 0))
        if note is None or note["recipient_id"] != user["id"]:
            raise _ApiError(404, "not_found")
        note["read"] = bool(request[BODY].get("read"))
        return web.json_response({"success": True})

    async def _h_comment_create(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        body = request[BODY]
        parent_id = body.get("parent_id")
        comment = self.create_comment(
            user,
            int(body.get("post_id") or 0),
            str(body.get("content") or ""),
            parent_id=int(parent_id) if parent_id is not None else None,
        )
        return web.json_response(self._comment_response(comment, user))

    def _comment_response(self, comment: JSON, viewer: JSON | None) -> JSON:
        """[JS019] `CommentResponse` has `recipient_ids`; [JS1] does not."""
        answer: JSON = {"comment_view": self._comment_view(comment, viewer)}
        if self.api_version == "v3":
            answer["recipient_ids"] = []
        return answer

    async def _h_comment_get(self, request: web.Request) -> web.Response:
        user = self._user(request, required=False)
        comment = self.comments.get(int(request.query.get("id") or 0))
        if comment is None:
            raise self._not_found("comment")
        return web.json_response(self._comment_response(comment, user))

    async def _h_comment_list(self, request: web.Request) -> web.Response:
        user = self._user(request, required=False)
        parent_id = request.query.get("parent_id")
        post_id = request.query.get("post_id")
        rows = list(self.comments.values())
        if parent_id:
            parent = self.comments.get(int(parent_id))
            if parent is None:
                raise self._not_found("comment")
            rows = [c for c in rows if c["path"].startswith(parent["path"])]
        if post_id:
            rows = [c for c in rows if c["post_id"] == int(post_id)]
        rows.sort(key=lambda c: c["id"], reverse=True)
        if self.api_version == "v4":
            limit = int(request.query.get("limit") or 20)
            after = _decode_cursor(request.query.get("page_cursor"))
            if after is not None:
                rows = [c for c in rows if c["id"] < after[1]]
            page = rows[:limit]
            answer: JSON = {"items": [self._comment_view(c, user) for c in page]}
            if len(page) == limit:
                answer["next_page"] = _encode_cursor(("", page[-1]["id"]))
            return web.json_response(answer)
        views = [self._comment_view(c, user) for c in _page(rows, request, default_limit=10)]
        return web.json_response({"comments": views})

    async def _h_comment_delete(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        comment = self.comments.get(int(request[BODY].get("comment_id") or 0))
        if comment is None:
            raise self._not_found("comment")
        deleted = bool(request[BODY].get("deleted"))
        if comment["deleted"] == deleted:  # "Dont delete it if its already been deleted."
            raise self._couldnt("update", "comment")
        if comment["creator_id"] != user["id"]:
            raise _ApiError(400, "no_comment_edit_allowed")
        comment["deleted"] = deleted
        return web.json_response(self._comment_response(comment, user))

    async def _h_pm_create(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        body = request[BODY]
        pm = self.create_private_message(
            user, int(body.get("recipient_id") or 0), str(body.get("content") or "")
        )
        return web.json_response({"private_message_view": self._pm_view(pm)})

    async def _h_pm_delete(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        pm = self.private_messages.get(int(request[BODY].get("private_message_id") or 0))
        if pm is None:
            raise self._not_found("private_message")
        if pm["creator_id"] != user["id"]:
            raise _ApiError(400, "edit_private_message_not_allowed")
        pm["deleted"] = bool(request[BODY].get("deleted"))
        return web.json_response({"private_message_view": self._pm_view(pm)})

    async def _h_upload(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        if request.content_length and request.content_length > self.max_upload_bytes + 4096:
            return web.json_response({"msg": "payload too large"}, status=413)
        reader = await request.multipart()
        logged = request[LOGGED]
        assert isinstance(logged, LoggedRequest)
        part = await reader.next()
        while part is not None and getattr(part, "name", None) != "images[]":
            logged.multipart_fields += (str(getattr(part, "name", "")),)
            part = await reader.next()
        if part is not None:
            logged.multipart_fields += ("images[]",)
        if part is None:
            return web.json_response({"msg": "no images[] field", "files": []}, status=400)
        data = await part.read()  # type: ignore[union-attr]
        if len(data) > self.max_upload_bytes:
            return web.json_response({"msg": "payload too large"}, status=413)
        ext = (part.filename or "image.png").rsplit(".", 1)[-1]  # type: ignore[union-attr]
        name = f"{secrets.token_hex(8)}.{ext}"
        content_type = part.headers.get("Content-Type", "application/octet-stream")
        token = secrets.token_hex(8)
        self.images[name] = _Image(bytes(data), content_type, token, user["id"])
        if self.api_version == "v4":  # [JS1] UploadImageResponse
            return web.json_response(
                {"image_url": f"{self.base_url}/api/v4/image/{name}", "filename": name}
            )
        # [JS019] http.js uploadImage: pict-rs' own answer {"msg": "ok", "files": [...]}
        return web.json_response({"msg": "ok", "files": [{"file": name, "delete_token": token}]})

    async def _h_image_get(self, request: web.Request) -> web.Response:
        image = self.images.get(request.match_info["file"])
        if image is None:
            raise web.HTTPNotFound()
        return web.Response(body=image.data, content_type=image.content_type)

    async def _h_image_delete_v3(self, request: web.Request) -> web.Response:
        image = self.images.get(request.match_info["file"])
        if image is None or image.delete_token != request.match_info["token"]:
            raise web.HTTPNotFound()
        del self.images[request.match_info["file"]]
        return web.Response(status=204)

    async def _h_media_delete(self, request: web.Request) -> web.Response:
        """[JS1] `deleteMedia`: `DELETE /account/media` {filename} (the user's own upload)."""
        user = self._user(request)
        assert user is not None
        name = str(request[BODY].get("filename") or "")
        image = self.images.get(name)
        if image is None or image.uploader != user["id"]:
            raise _ApiError(404, "not_found")
        del self.images[name]
        return web.json_response({"success": True})


# 1.0 field changes per object ([JS019] vs [JS1] `types/*.d.ts`); renames happen in `_out`.
_V4_DROPPED: dict[str, frozenset[str]] = {
    "person": frozenset({"banned", "ban_expires"}),
    "community": frozenset({"description", "hidden"}),
    "post": frozenset(),
    "comment": frozenset(),
    "private_message": frozenset({"read"}),
    "site": frozenset({"description", "public_key"}),
    "local_site": frozenset(),
    "rate_limit": frozenset(),
}
_V4_ADDED: dict[str, JSON] = {
    "person": {"last_refreshed_at": None, "post_count": 0, "comment_count": 0},
    "community": {
        "last_refreshed_at": None,
        "subscribers": 0,
        "posts": 0,
        "comments": 0,
        "users_active_day": 0,
        "users_active_week": 0,
        "users_active_month": 0,
        "users_active_half_year": 0,
        "subscribers_local": 0,
        "report_count": 0,
        "unresolved_report_count": 0,
        "local_removed": False,
    },
    "post": {
        "comments": 0,
        "score": 1,
        "upvotes": 1,
        "downvotes": 0,
        "report_count": 0,
        "unresolved_report_count": 0,
        "federation_pending": False,
    },
    "comment": {
        "score": 1,
        "upvotes": 1,
        "downvotes": 0,
        "child_count": 0,
        "report_count": 0,
        "unresolved_report_count": 0,
        "federation_pending": False,
        "locked": False,
    },
    "private_message": {"removed": False, "deleted_by_recipient": False},
    "site": {},
    "local_site": {},
    "rate_limit": {},
}
# [JS1] CommentView / PostView flags (the viewer-specific `*_actions` are optional, left out).
_V4_VIEW_FLAGS: JSON = {
    "creator_is_admin": False,
    "tags": [],
    "can_mod": False,
    "creator_banned": False,
    "creator_is_moderator": False,
    "creator_banned_from_community": False,
}

# Query enums per (route, field): [JS019] ListingType / CommentSortType are PascalCase,
# [JS1] ListingType / CommentSortType / NotificationTypeFilter are snake_case.
_ENUMS_V3: dict[tuple[str, str], frozenset[str]] = {
    ("/comment/list", "type_"): frozenset({"All", "Local", "Subscribed", "ModeratorView"}),
    ("/comment/list", "sort"): frozenset({"Hot", "Top", "New", "Old", "Controversial"}),
    ("/user/mention", "sort"): frozenset({"Hot", "Top", "New", "Old", "Controversial"}),
    ("/user/replies", "sort"): frozenset({"Hot", "Top", "New", "Old", "Controversial"}),
}
_ENUMS_V4: dict[tuple[str, str], frozenset[str]] = {
    ("/comment/list", "type_"): frozenset(
        {"all", "local", "subscribed", "moderator_view", "suggested"}
    ),
    ("/comment/list", "sort"): frozenset({"hot", "top", "new", "old", "controversial"}),
    ("/account/notification/list", "type_"): frozenset(
        {"all", "mention", "reply", "subscribed", "private_message", "mod_action"}
    ),
}
_BOOL_FIELDS = frozenset({"unread_only", "saved_only", "liked_only", "disliked_only"})
_INT_FIELDS = frozenset(
    {"id", "page", "limit", "max_depth", "parent_id", "post_id", "creator_id", "community_id"}
)


def _encode_cursor(key: tuple[str, int]) -> str:
    """An opaque cursor, as 1.0's `PaginationCursor` is to a client."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[str, int] | None:
    if not cursor:
        return None
    try:
        published, ident = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError:
        raise _ApiError(400, "couldnt_parse_pagination_token") from None
    return (str(published), int(ident))


def _id(obj: JSON | int | None) -> int | None:
    if obj is None:
        return None
    return obj if isinstance(obj, int) else int(obj["id"])


def _page(rows: list[JSON], request: web.Request, *, default_limit: int) -> list[JSON]:
    """0.19 page/limit paging (default limit 10, [S019] db_schema/src/utils.rs)."""
    limit = int(request.query.get("limit") or default_limit)
    page = max(1, int(request.query.get("page") or 1))
    return rows[(page - 1) * limit : page * limit]
