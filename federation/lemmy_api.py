"""What differs between Lemmy 0.19 (`/api/v3`) and Lemmy 1.0 (`/api/v4`): paths and shapes.

The adapter talks in `InboxItem`s, comment views and plain request descriptions; this module
maps them onto one API version. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

JSON = dict[str, Any]
INBOX_PAGE = 50


@dataclass(frozen=True)
class Call:
    """One HTTP request against the instance (path relative to the base URL)."""

    method: str
    path: str
    params: dict[str, str] | None = None
    json: JSON | None = None


@dataclass(frozen=True)
class InboxItem:
    """One unread inbox entry, the same for both versions."""

    kind: str  # "mention" | "reply" | "private_message" | "skip" (mark read, never answer)
    read_type: str  # "person_mention" | "comment_reply" | "private_message" | "notification"
    inbox_id: int  # the id to mark read with
    creator: JSON
    comment: JSON | None = None
    post: JSON | None = None
    community: JSON | None = None
    private_message: JSON | None = None

    @property
    def key(self) -> tuple[str, int]:
        return (self.read_type, self.inbox_id)


# --- version-neutral field readers (1.0 renamed a few fields) ---------------------------------


def actor_url(person: JSON) -> str:
    """The person's ActivityPub id (`actor_id` in 0.19, `ap_id` in 1.0)."""
    return str(person.get("actor_id") or person.get("ap_id") or "")


def actor_domain(person: JSON) -> str:
    return (urlsplit(actor_url(person)).hostname or "").lower()


def parse_time(value: str | None) -> datetime | None:
    """Lemmy timestamps: ISO 8601, with or without a zone (0.18 sent naive UTC)."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def published(obj: JSON) -> datetime | None:
    return parse_time(obj.get("published") or obj.get("published_at"))


def updated(obj: JSON) -> datetime | None:
    return parse_time(obj.get("updated") or obj.get("updated_at"))


def parent_comment_id(comment: JSON) -> int | None:
    """The parent comment from `path` ("0.12.34": 34 answers 12; "0.34" is top-level)."""
    parts = str(comment.get("path") or "").split(".")
    if len(parts) >= 3 and parts[-2] not in ("", "0"):
        return int(parts[-2])
    return None


@dataclass(frozen=True)
class RateLimits:
    """The instance's limits as (requests, window seconds)."""

    comment: tuple[int, float] = (6, 600.0)
    image: tuple[int, float] = (6, 3600.0)
    message: tuple[int, float] = (180, 60.0)

    @classmethod
    def from_site(cls, site: JSON) -> RateLimits:
        raw = (site.get("site_view") or {}).get("local_site_rate_limit") or {}
        defaults = cls()

        def pick(name: str) -> tuple[int, float]:
            count = raw.get(name, raw.get(f"{name}_max_requests"))
            window = raw.get(f"{name}_per_second", raw.get(f"{name}_interval_seconds"))
            default_count, default_window = getattr(defaults, name)
            count = int(count) if isinstance(count, int | float) and count > 0 else default_count
            window = (
                float(window) if isinstance(window, int | float) and window > 0 else default_window
            )
            return (count, window)

        return cls(comment=pick("comment"), image=pick("image"), message=pick("message"))


class LemmyApi:
    """Lemmy 0.19 (`/api/v3`).

    Every request shape here is checked against `lemmy-js-client@0.19.x` by
    tests/lemmy/test_conformance.py (routes in `dist/http.js`, forms in `dist/types/*.d.ts`).
    """

    version = "v3"
    prefix = "/api/v3"
    # Enum values (0.19: PascalCase `ListingType` / `CommentSortType`).
    listing_all = "All"
    sort_new = "New"

    # --- session -------------------------------------------------------------------------

    def site(self) -> Call:
        return Call("GET", f"{self.prefix}/site")

    def login(self, username: str, password: str) -> Call:
        body = {"username_or_email": username, "password": password}
        return Call("POST", f"{self.prefix}/user/login", json=body)

    def my_user(self) -> Call:
        return self.site()

    def my_person(self, body: JSON) -> JSON | None:
        """The logged-in person from `my_user()`'s answer."""
        my_user = body.get("my_user") or body
        return ((my_user or {}).get("local_user_view") or {}).get("person")

    def set_bot_flag(self) -> Call:
        return Call("PUT", f"{self.prefix}/user/save_user_settings", json={"bot_account": True})

    # --- inbox ---------------------------------------------------------------------------

    def unread_count(self) -> Call | None:
        return Call("GET", f"{self.prefix}/user/unread_count")

    def unread_total(self, body: JSON) -> int:
        return sum(int(body.get(k) or 0) for k in ("replies", "mentions", "private_messages"))

    def inbox_calls(self) -> list[Call]:
        """The first page of each unread list; `next_page` gives the following ones."""
        params = {
            "sort": self.sort_new,
            "page": "1",
            "limit": str(INBOX_PAGE),
            "unread_only": "true",
        }
        pm_params = {"unread_only": "true", "page": "1", "limit": str(INBOX_PAGE)}
        return [
            Call("GET", f"{self.prefix}/user/mention", params=params),
            Call("GET", f"{self.prefix}/user/replies", params=params),
            Call("GET", f"{self.prefix}/private_message/list", params=pm_params),
        ]

    def inbox_items(self, body: JSON) -> list[InboxItem]:
        items: list[InboxItem] = []
        for view in body.get("mentions") or []:
            items.append(_comment_item("mention", "person_mention", view["person_mention"], view))
        for view in body.get("replies") or []:
            items.append(_comment_item("reply", "comment_reply", view["comment_reply"], view))
        for view in body.get("private_messages") or []:
            pm = view["private_message"]
            items.append(
                InboxItem(
                    kind="private_message",
                    read_type="private_message",
                    inbox_id=int(pm["id"]),
                    creator=view["creator"],
                    private_message=pm,
                )
            )
        return items

    def next_page(self, call: Call, body: JSON) -> Call | None:
        """The same list's next page (0.19 pages by number), or None after the last one."""
        if not any(
            len(body.get(k) or []) >= int((call.params or {}).get("limit") or INBOX_PAGE)
            for k in ("mentions", "replies", "private_messages", "comments")
        ):
            return None
        params = dict(call.params or {})
        params["page"] = str(int(params.get("page") or 1) + 1)
        return Call(call.method, call.path, params=params)

    def mark_read(self, item: InboxItem) -> Call:
        if item.read_type == "person_mention":
            return Call(
                "POST",
                f"{self.prefix}/user/mention/mark_as_read",
                json={"person_mention_id": item.inbox_id, "read": True},
            )
        if item.read_type == "comment_reply":
            return Call(
                "POST",
                f"{self.prefix}/comment/mark_as_read",
                json={"comment_reply_id": item.inbox_id, "read": True},
            )
        return Call(
            "POST",
            f"{self.prefix}/private_message/mark_as_read",
            json={"private_message_id": item.inbox_id, "read": True},
        )

    # --- comments ------------------------------------------------------------------------

    def create_comment(self, content: str, post_id: int, parent_id: int | None) -> Call:
        body: JSON = {"content": content, "post_id": post_id}
        if parent_id is not None:
            body["parent_id"] = parent_id
        return Call("POST", f"{self.prefix}/comment", json=body)

    def get_comment(self, comment_id: int) -> Call:
        return Call("GET", f"{self.prefix}/comment", params={"id": str(comment_id)})

    def list_comments(self, parent_id: int) -> Call:
        params = {
            "parent_id": str(parent_id),
            "type_": self.listing_all,
            "sort": self.sort_new,
            "max_depth": "2",
            "limit": "50",
        }
        return Call("GET", f"{self.prefix}/comment/list", params=params)

    def comment_views(self, body: JSON) -> list[JSON]:
        return list(body.get("comments") or [])

    def delete_comment(self, comment_id: int) -> Call:
        body = {"comment_id": comment_id, "deleted": True}
        return Call("POST", f"{self.prefix}/comment/delete", json=body)

    # --- private messages ----------------------------------------------------------------

    def create_private_message(self, content: str, recipient_id: int) -> Call:
        body = {"content": content, "recipient_id": recipient_id}
        return Call("POST", f"{self.prefix}/private_message", json=body)

    def delete_private_message(self, pm_id: int) -> Call:
        body = {"private_message_id": pm_id, "deleted": True}
        return Call("POST", f"{self.prefix}/private_message/delete", json=body)

    def conversation(self, person_id: int) -> Call:
        """Recent private messages between the bot and `person_id`, both directions.

        0.19 (lemmy 0.19.20 `crates/db_views/src/private_message_view.rs`): with
        `unread_only=false`, `creator_id` selects messages from *or to* that person among the
        caller's sent and received ones; deleted and removed messages are left out.
        """
        params = {
            "unread_only": "false",
            "creator_id": str(person_id),
            "page": "1",
            "limit": str(INBOX_PAGE),
        }
        return Call("GET", f"{self.prefix}/private_message/list", params=params)

    def private_messages(self, body: JSON) -> list[JSON]:
        return [v["private_message"] for v in body.get("private_messages") or []]

    # --- images --------------------------------------------------------------------------

    def upload_path(self) -> str:
        return "/pictrs/image"

    def uploaded_url(self, body: JSON, base_url: str) -> str:
        """The public URL of the uploaded image; raises ValueError when the upload failed."""
        files = body.get("files") or []
        if body.get("msg") != "ok" or not files:
            raise ValueError(f"pict-rs refused the upload: {body.get('msg')!r}")
        return f"{base_url}/pictrs/image/{files[0]['file']}"


def _comment_item(kind: str, read_type: str, inbox: JSON, view: JSON) -> InboxItem:
    return InboxItem(
        kind=kind,
        read_type=read_type,
        inbox_id=int(inbox["id"]),
        creator=view["creator"],
        comment=view["comment"],
        post=view.get("post"),
        community=view.get("community"),
    )


class LemmyApiV4(LemmyApi):
    """Lemmy 1.0 (`/api/v4`): one notification inbox, account routes, `/image` uploads.

    Checked against the `lemmy-js-client@1.0.0-beta.*` prereleases and lemmy's
    `crates/api/routes/src/lib.rs` (see tests/lemmy/test_conformance.py).
    """

    version = "v4"
    prefix = "/api/v4"
    # Enum values: 1.0 serialises every enum in snake_case ("all", "new").
    listing_all = "all"
    sort_new = "new"

    def login(self, username: str, password: str) -> Call:
        body = {"username_or_email": username, "password": password, "stay_logged_in": True}
        return Call("POST", f"{self.prefix}/account/auth/login", json=body)

    def my_user(self) -> Call:
        return Call("GET", f"{self.prefix}/account")

    def set_bot_flag(self) -> Call:
        return Call("PUT", f"{self.prefix}/account/settings/save", json={"bot_account": True})

    def unread_count(self) -> Call | None:
        return None  # one list call is as cheap as a count

    def inbox_calls(self) -> list[Call]:
        params = {"type_": "all", "unread_only": "true", "limit": str(INBOX_PAGE)}
        return [Call("GET", f"{self.prefix}/account/notification/list", params=params)]

    def inbox_items(self, body: JSON) -> list[InboxItem]:
        items: list[InboxItem] = []
        for view in body.get("items") or []:
            note, data = view["notification"], view.get("data") or {}
            kind = _notification_kind(str(note.get("kind") or ""), data)
            if kind is None:
                # Moderator actions, subscriptions, mentions in a post: nothing to answer, but
                # marked read so that they do not fill the unread list for good.
                items.append(
                    InboxItem(
                        kind="skip",
                        read_type="notification",
                        inbox_id=int(note["id"]),
                        creator={},
                    )
                )
                continue
            items.append(
                InboxItem(
                    kind=kind,
                    read_type="notification",
                    inbox_id=int(note["id"]),
                    creator=data.get("creator") or {},
                    comment=data.get("comment"),
                    post=data.get("post"),
                    community=data.get("community"),
                    private_message=data.get("private_message"),
                )
            )
        return items

    def next_page(self, call: Call, body: JSON) -> Call | None:
        """1.0 pages with the opaque `next_page` cursor (`PagedResponse`), sent as `page_cursor`."""
        cursor = body.get("next_page")
        if not cursor or not body.get("items"):
            return None
        return Call(call.method, call.path, params={**(call.params or {}), "page_cursor": cursor})

    def mark_read(self, item: InboxItem) -> Call:
        body = {"notification_id": item.inbox_id, "read": True}
        return Call("POST", f"{self.prefix}/account/notification/mark_as_read", json=body)

    def comment_views(self, body: JSON) -> list[JSON]:
        return list(body.get("items") or body.get("comments") or [])

    def delete_comment(self, comment_id: int) -> Call:
        body = {"comment_id": comment_id, "deleted": True}
        return Call("DELETE", f"{self.prefix}/comment", json=body)

    def delete_private_message(self, pm_id: int) -> Call:
        body = {"private_message_id": pm_id, "deleted": True}
        return Call("DELETE", f"{self.prefix}/private_message", json=body)

    def conversation(self, person_id: int) -> Call:
        """1.0 has no message list, only notifications. With `type_=private_message`,
        `unread_only=false` and `creator_id`, lemmy (`crates/db_views/notification/src/impls.rs`)
        returns the conversation: their messages to the bot and the bot's to them. The bot's
        own messages are there only when the recipient is local (a notification row is
        written for local recipients only); deleted messages are left out."""
        params = {
            "type_": "private_message",
            "unread_only": "false",
            "creator_id": str(person_id),
            "limit": str(INBOX_PAGE),
        }
        return Call("GET", f"{self.prefix}/account/notification/list", params=params)

    def private_messages(self, body: JSON) -> list[JSON]:
        found = [(v.get("data") or {}).get("private_message") for v in body.get("items") or []]
        return [pm for pm in found if pm]

    def upload_path(self) -> str:
        return f"{self.prefix}/image"

    def uploaded_url(self, body: JSON, base_url: str) -> str:
        url = body.get("image_url")
        if not url:
            raise ValueError("the instance answered the upload without an image_url")
        return str(url)


def _notification_kind(kind: str, data: JSON) -> str | None:
    """`NotificationType` ("mention" | "reply" | "subscribed" | "private_message" |
    "mod_action") with its `NotificationData` → what to answer; None: nothing to answer."""
    data_type = str(data.get("type_") or "")
    if kind in ("mention", "reply"):
        return kind if data_type == "comment" and data.get("comment") else None
    if kind == "private_message" and data_type == "private_message":
        return "private_message" if data.get("private_message") else None
    return None


def api_for(version: str) -> LemmyApi:
    """`"v3"` or `"v4"` → the mapping for that API."""
    return LemmyApiV4() if version == "v4" else LemmyApi()


def version_from_site(site: JSON) -> str:
    """The API to use for a server reporting `version` ("0.19.5" → v3, "1.0.0" → v4)."""
    raw = str(site.get("version") or "0")
    try:
        major = int(raw.lstrip("v").split(".", 1)[0])
    except ValueError:
        major = 0
    return "v4" if major >= 1 else "v3"
