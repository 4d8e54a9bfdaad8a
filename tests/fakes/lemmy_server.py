"""A fake Lemmy instance (0.19 `/api/v3` or 1.0 `/api/v4`) on 127.0.0.1 for adapter tests.

It follows the shapes in ../shared/fixtures/lemmy/README.md: stateful users, communities,
posts, comments with `path`, the inboxes with read flags, login tokens (which a test can
expire), the site's `local_site_rate_limit` (enforced, per kind, over a sliding window),
pict-rs uploads, and a request log. Lemmy 1.0 renamed `actor_id` → `ap_id` and
`published`/`updated` → `published_at`/`updated_at`; the v4 fake sends the new names.

    async with FakeLemmy("v3") as fake:
        alice = fake.add_user("alice", domain="remote.example")
        comment = fake.mention(alice, "a cat in a hat")
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Lemmy's server-side mention scanner (crates/utils/src/utils/mention.rs), run on raw markdown.
MENTIONS_REGEX = re.compile(r"@(?P<name>[\w.]+)@(?P<domain>[a-zA-Z0-9._:-]+)")
BODY = web.RequestKey("json", dict)
VIEWER = web.RequestKey("viewer", object)
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
    def __init__(self, status: int, code: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    user: str | None  # the authenticated user's name, if any
    status: int = 0


@dataclass
class _Failure:
    method: str
    path: str
    status: int
    body: JSON
    times: int


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

    def allow(self) -> bool:
        now = time.monotonic()
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
        self.version = "0.19.5" if api_version == "v3" else "1.0.0"
        self.hostname = hostname
        self.v3_compat_site = v3_compat_site  # a v4 server also answering /api/v3/site
        self.max_upload_bytes = max_upload_bytes
        self.rate_limits = dict(DEFAULT_RATE_LIMITS) | dict(rate_limits or {})
        self._windows = {k: _Window(int(n), float(s)) for k, (n, s) in self.rate_limits.items()}
        self._ids = {
            k: itertools.count(1)
            for k in ("person", "community", "post", "comment", "pm", "mention", "reply", "note")
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
        self.images: dict[str, _Image] = {}
        self.tokens: dict[str, int] = {}
        self.login_count = 0
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
        person = {
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
        community = {
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
    ) -> JSON:
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
            "url_content_type": None,
            "alt_text": None,
        }
        self.posts[post_id] = post
        return post

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
        self._windows[kind] = _Window(count, seconds)

    def fail_next(
        self, method: str, path: str, status: int, error: str | None = None, times: int = 1
    ) -> None:
        """The next `times` requests to `method path` answer `status` {"error": error}."""
        body = {"error": error} if error else {}
        self._failures.append(_Failure(method.upper(), path, status, body, times))

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
            "notifications": sum(
                1 for n in self.notifications.values() if n["recipient_id"] == pid and not n["read"]
            ),
        }

    def requests_to(self, method: str, path_suffix: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    # --- state changes (also used by the API handlers) -----------------------------------

    def create_comment(
        self, author: JSON, post_id: int, content: str, *, parent_id: int | None = None
    ) -> JSON:
        post = self.posts.get(post_id)
        if post is None:
            raise _ApiError(404, "couldnt_find_post")
        if post["deleted"] or post["removed"]:
            raise _ApiError(400, "deleted")
        if post["locked"]:
            raise _ApiError(400, "locked")
        if not content.strip():
            raise _ApiError(400, "couldnt_create_comment")
        parent = None
        if parent_id is not None:
            parent = self.comments.get(parent_id)
            if parent is None or parent["post_id"] != post_id:
                raise _ApiError(404, "couldnt_find_comment")
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
        pm: JSON | None = None,
    ) -> None:
        note_id = next(self._ids["note"])
        self.notifications[note_id] = {
            "id": note_id,
            "recipient_id": recipient_id,
            "comment_id": comment["id"] if comment else None,
            "post_id": comment["post_id"] if comment else None,
            "private_message_id": pm["id"] if pm else None,
            "creator_id": creator_id,
            "read": False,
            "published_at": _now(),
            "kind": kind,
        }

    def create_private_message(self, author: JSON, recipient_id: int, content: str) -> JSON:
        recipient = self.persons.get(recipient_id)
        if recipient is None:
            raise _ApiError(404, "couldnt_find_person")
        if not content.strip():
            raise _ApiError(400, "couldnt_create_private_message")
        pm_id = next(self._ids["pm"])
        pm = {
            "id": pm_id,
            "creator_id": author["id"],
            "recipient_id": recipient_id,
            "content": content,
            "deleted": False,
            "read": False,
            "published": _now(),
            "updated": None,
            "ap_id": f"https://{self.hostname}/private_message/{pm_id}",
            "local": True,
        }
        self.private_messages[pm_id] = pm
        if recipient["local"]:
            self._notification(recipient_id, author["id"], "private_message", pm=pm)
        return pm

    def _local_person(self, name: str) -> JSON | None:
        for person in self.persons.values():
            if person["local"] and person["name"].lower() == name.lower():
                return person
        return None

    # --- rendering -----------------------------------------------------------------------

    def _out(self, obj: JSON) -> JSON:
        """One object as this API version sends it (1.0 renamed a few fields)."""
        if self.api_version == "v3":
            return dict(obj)
        renamed = {"actor_id": "ap_id", "published": "published_at", "updated": "updated_at"}
        return {renamed.get(k, k): v for k, v in obj.items()}

    def _comment_out(self, comment: JSON, viewer: JSON | None) -> JSON:
        shown = dict(comment)
        if (comment["deleted"] or comment["removed"]) and (
            viewer is None or viewer["id"] != comment["creator_id"]
        ):
            shown["content"] = ""
        return self._out(shown)

    def _comment_view(self, comment: JSON, viewer: JSON | None) -> JSON:
        post = self.posts[comment["post_id"]]
        return {
            "comment": self._comment_out(comment, viewer),
            "creator": self._out(self.persons[comment["creator_id"]]),
            "post": self._out(post),
            "community": self._out(self.communities[post["community_id"]]),
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
            "my_vote": None,
        }

    def _inbox_view(self, key: str, entry: JSON, viewer: JSON) -> JSON:
        view = self._comment_view(self.comments[entry["comment_id"]], viewer)
        view.pop("comment")
        return {
            key: dict(entry),
            "comment": self._comment_out(self.comments[entry["comment_id"]], viewer),
            **view,
            "recipient": self._out(self.persons[entry["recipient_id"]]),
        }

    def _pm_view(self, pm: JSON) -> JSON:
        return {
            "private_message": self._out(pm),
            "creator": self._out(self.persons[pm["creator_id"]]),
            "recipient": self._out(self.persons[pm["recipient_id"]]),
        }

    def _site(self, viewer: JSON | None) -> JSON:
        rate = {"local_site_id": 1, "published": _now(), "updated": None}
        for kind, (count, seconds) in self.rate_limits.items():
            rate[kind] = count
            rate[f"{kind}_per_second"] = seconds
        body: JSON = {
            "site_view": {
                "site": self._out(
                    {
                        "id": 1,
                        "name": "Fake Lemmy",
                        "sidebar": None,
                        "published": _now(),
                        "updated": None,
                        "icon": None,
                        "banner": None,
                        "description": None,
                        "actor_id": f"https://{self.hostname}/",
                        "last_refreshed_at": _now(),
                        "inbox_url": f"https://{self.hostname}/site_inbox",
                        "public_key": "-----BEGIN PUBLIC KEY-----",
                        "instance_id": 1,
                        "content_warning": None,
                    }
                ),
                "local_site": {
                    "id": 1,
                    "site_id": 1,
                    "site_setup": True,
                    "enable_downvotes": True,
                    "enable_nsfw": True,
                    "community_creation_admin_only": False,
                    "require_email_verification": False,
                    "private_instance": False,
                    "registration_mode": "Open",
                    "federation_enabled": True,
                    "captcha_enabled": False,
                },
                "local_site_rate_limit": rate,
                "counts": {"site_id": 1, "users": len(self.persons), "posts": len(self.posts)},
            },
            "admins": [],
            "version": self.version,
            "all_languages": [],
            "discussion_languages": [],
            "taglines": [],
            "custom_emojis": [],
            "blocked_urls": [],
        }
        if viewer is not None and self.api_version == "v3":
            body["my_user"] = self._my_user(viewer)
        return body

    def _my_user(self, viewer: JSON) -> JSON:
        return {
            "local_user_view": {
                "local_user": {
                    "id": viewer["id"],
                    "person_id": viewer["id"],
                    "show_nsfw": True,
                    "theme": "browser",
                    "default_sort_type": "Active",
                    "default_listing_type": "Local",
                    "interface_language": "en",
                    "show_bot_accounts": True,
                    "email_verified": True,
                    "accepted_application": True,
                    "admin": False,
                },
                "person": self._out(viewer),
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
            viewer.get("name") if viewer else None,
        )
        self.requests.append(logged)
        request[BODY] = body or {}
        request[VIEWER] = viewer
        response = self._injected_failure(request) or await self._guarded(request, handler)
        logged.status = response.status
        return response

    async def _guarded(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        kind = self._rate_kind(request)
        if kind and not self._windows[kind].allow():
            return web.json_response({"error": "rate_limit_error"}, status=429)
        try:
            return await handler(request)
        except _ApiError as exc:
            return web.json_response({"error": exc.code}, status=exc.status)

    def _injected_failure(self, request: web.Request) -> web.Response | None:
        for failure in self._failures:
            if failure.method == request.method and failure.path == request.path:
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return web.json_response(failure.body, status=failure.status)
        return None

    def _rate_kind(self, request: web.Request) -> str | None:
        path = request.path
        if request.method == "POST" and path in ("/pictrs/image", "/api/v4/image"):
            return "image"
        if not path.startswith("/api/"):
            return None
        if request.method == "POST" and path.endswith(("/comment", "/comment/")):
            return "comment"
        if request.method == "POST" and path.endswith("/post"):
            return "post"
        return "message"

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
        viewer = request[VIEWER]
        if viewer is not None and viewer.get("_invalid"):
            raise _ApiError(401, "not_logged_in")
        if viewer is None and required:
            raise _ApiError(401, "not_logged_in")
        return viewer

    def _routes(self, app: web.Application) -> None:
        p = f"/api/{self.api_version}"
        r = app.router
        r.add_get(f"{p}/site", self._h_site)
        if self.api_version == "v4" and self.v3_compat_site:
            r.add_get("/api/v3/site", self._h_site)
        r.add_post(f"{p}/comment", self._h_comment_create)
        r.add_get(f"{p}/comment", self._h_comment_get)
        r.add_get(f"{p}/comment/list", self._h_comment_list)
        r.add_post(f"{p}/comment/delete", self._h_comment_delete)
        r.add_post(f"{p}/private_message", self._h_pm_create)
        r.add_post(f"{p}/private_message/delete", self._h_pm_delete)
        if self.api_version == "v3":
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
            r.add_post(f"{p}/account/auth/login", self._h_login)
            r.add_get(f"{p}/account", self._h_account)
            r.add_get(f"{p}/account/notification/list", self._h_notifications)
            r.add_post(f"{p}/account/notification/mark_as_read", self._h_mark_notification)
            r.add_get(f"{p}/account/notification/count", self._h_notification_count)
            r.add_put(f"{p}/account/settings/save", self._h_save_settings)
            r.add_post(f"{p}/image", self._h_upload)
            r.add_delete(f"{p}/image", self._h_image_delete_v4)
            r.add_get(f"{p}/image/{{file}}", self._h_image_get)

    # --- handlers ------------------------------------------------------------------------

    async def _h_site(self, request: web.Request) -> web.Response:
        return web.json_response(self._site(self._user(request, required=False)))

    async def _h_login(self, request: web.Request) -> web.Response:
        body = request[BODY]
        person = self._local_person(str(body.get("username_or_email") or ""))
        if person is None or self.passwords.get(person["id"]) != body.get("password"):
            raise _ApiError(400, "incorrect_login")
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
        return _page(rows, request)

    async def _h_pm_list(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        unread_only = request.query.get("unread_only") == "true"
        creator_id = request.query.get("creator_id")
        rows = []
        for pm in self.private_messages.values():
            if user["id"] not in (pm["creator_id"], pm["recipient_id"]):
                continue
            if unread_only and (pm["read"] or pm["recipient_id"] != user["id"] or pm["deleted"]):
                continue
            if creator_id and pm["creator_id"] != int(creator_id):
                continue
            rows.append(pm)
        rows.sort(key=lambda pm: pm["id"], reverse=True)
        views = [self._pm_view(pm) for pm in _page(rows, request)]
        return web.json_response({"private_messages": views})

    async def _h_mark_mention(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        row = self.person_mentions.get(int(request[BODY].get("person_mention_id") or 0))
        if row is None or row["recipient_id"] != user["id"]:
            raise _ApiError(404, "couldnt_update_comment")
        row["read"] = bool(request[BODY].get("read"))
        view = self._inbox_view("person_mention", row, user)
        return web.json_response({"person_mention_view": view})

    async def _h_mark_reply(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        row = self.comment_replies.get(int(request[BODY].get("comment_reply_id") or 0))
        if row is None or row["recipient_id"] != user["id"]:
            raise _ApiError(404, "couldnt_update_comment")
        row["read"] = bool(request[BODY].get("read"))
        view = self._inbox_view("comment_reply", row, user)
        return web.json_response({"comment_reply_view": view})

    async def _h_mark_pm(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        pm = self.private_messages.get(int(request[BODY].get("private_message_id") or 0))
        if pm is None or pm["recipient_id"] != user["id"]:
            raise _ApiError(404, "couldnt_update_private_message")
        pm["read"] = bool(request[BODY].get("read"))
        return web.json_response({"private_message_view": self._pm_view(pm)})

    async def _h_unread_count(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        counts = self.unread_for(user)
        counts.pop("notifications")
        return web.json_response(counts)

    async def _h_notifications(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        wanted = request.query.get("type_", "all").lower()
        unread_only = request.query.get("unread_only") == "true"
        rows = [
            n
            for n in self.notifications.values()
            if n["recipient_id"] == user["id"]
            and not (unread_only and n["read"])
            and wanted in ("all", n["kind"])
        ]
        rows.sort(key=lambda n: n["id"], reverse=True)
        limit = int(request.query.get("limit") or 20)
        offset = int(request.query.get("page_cursor") or 0)
        page = rows[offset : offset + limit]
        items = [{"notification": dict(n), "data": self._notification_data(n, user)} for n in page]
        more = offset + limit < len(rows)
        return web.json_response(
            {"items": items, "next_page": str(offset + limit) if more else None, "prev_page": None}
        )

    def _notification_data(self, note: JSON, viewer: JSON) -> JSON:
        if note["private_message_id"] is not None:
            pm = self.private_messages[note["private_message_id"]]
            return {"type_": "private_message", **self._pm_view(pm)}
        return {"type_": "comment", **self._comment_view(self.comments[note["comment_id"]], viewer)}

    async def _h_mark_notification(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        note = self.notifications.get(int(request[BODY].get("notification_id") or 0))
        if note is None or note["recipient_id"] != user["id"]:
            raise _ApiError(404, "not_found")
        note["read"] = bool(request[BODY].get("read"))
        return web.json_response({"success": True})

    async def _h_notification_count(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        return web.json_response({"count": self.unread_for(user)["notifications"]})

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
        return web.json_response(
            {"comment_view": self._comment_view(comment, user), "recipient_ids": []}
        )

    async def _h_comment_get(self, request: web.Request) -> web.Response:
        user = self._user(request, required=False)
        comment = self.comments.get(int(request.query.get("id") or 0))
        if comment is None:
            raise _ApiError(404, "couldnt_find_comment")
        return web.json_response(
            {"comment_view": self._comment_view(comment, user), "recipient_ids": []}
        )

    async def _h_comment_list(self, request: web.Request) -> web.Response:
        user = self._user(request, required=False)
        parent_id = request.query.get("parent_id")
        post_id = request.query.get("post_id")
        rows = list(self.comments.values())
        if parent_id:
            parent = self.comments.get(int(parent_id))
            if parent is None:
                raise _ApiError(404, "couldnt_find_comment")
            rows = [c for c in rows if c["path"].startswith(parent["path"])]
        if post_id:
            rows = [c for c in rows if c["post_id"] == int(post_id)]
        rows.sort(key=lambda c: c["id"], reverse=True)
        views = [self._comment_view(c, user) for c in _page(rows, request)]
        if self.api_version == "v4":
            return web.json_response({"items": views, "next_page": None, "prev_page": None})
        return web.json_response({"comments": views})

    async def _h_comment_delete(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        comment = self.comments.get(int(request[BODY].get("comment_id") or 0))
        if comment is None:
            raise _ApiError(404, "couldnt_find_comment")
        if comment["creator_id"] != user["id"]:
            raise _ApiError(400, "no_comment_edit_allowed")
        comment["deleted"] = bool(request[BODY].get("deleted"))
        return web.json_response(
            {"comment_view": self._comment_view(comment, user), "recipient_ids": []}
        )

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
            raise _ApiError(404, "couldnt_find_private_message")
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
        part = await reader.next()
        while part is not None and getattr(part, "name", None) != "images[]":
            part = await reader.next()
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
        if self.api_version == "v4":
            return web.json_response(
                {"image_url": f"{self.base_url}/api/v4/image/{name}", "filename": name}
            )
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

    async def _h_image_delete_v4(self, request: web.Request) -> web.Response:
        user = self._user(request)
        assert user is not None
        name = str(request[BODY].get("filename") or "")
        image = self.images.get(name)
        if image is None or image.uploader != user["id"]:
            raise _ApiError(404, "not_found")
        del self.images[name]
        return web.json_response({"success": True})


def _id(obj: JSON | int | None) -> int | None:
    if obj is None:
        return None
    return obj if isinstance(obj, int) else int(obj["id"])


def _page(rows: list[JSON], request: web.Request) -> list[JSON]:
    limit = int(request.query.get("limit") or 20)
    page = max(1, int(request.query.get("page") or 1))
    return rows[(page - 1) * limit : page * limit]
