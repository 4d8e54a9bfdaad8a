"""The Lemmy adapter: polls the bot's inbox and answers with comments or private messages.

Lemmy has no push, and only 1.0 knows idempotency keys (for two minutes), so:
* the inbox is polled (mentions, replies to the bot's comments, private messages; one
  notification list on 1.0) and an item is marked read only after the sink returned;
* a reply carries an invisible markdown marker (`[//]: # (fedibot:<key>)`) so that
  `find_existing_reply` can find it again after a crash;
* on 1.0 every comment and message is sent with the attempt's `Idempotency-Key`: a retry
  inside the server's memory of it is refused (422) instead of posted twice. That is the only
  protection for a message to a *remote* user, which 1.0 lists nowhere (see `find_post`);
* comments and image uploads are paced to the instance's `local_site_rate_limit`: a spent
  budget raises `TransientError(retry_after=…)` at once and the queue holds the work.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from federation.base import CursorStore, MentionSink
from federation.budgets import BudgetLimit, ServerHint, slower
from federation.errors import (
    AdapterError,
    AuthError,
    DeliveryUnconfirmed,
    OutcomeUnknown,
    PermanentError,
    RemoteGone,
    TransientError,
)
from federation.lemmy_api import (
    INBOX_PAGE,
    JSON,
    Call,
    InboxItem,
    LemmyApi,
    RateLimits,
    actor_domain,
    actor_url,
    api_for,
    parent_comment_id,
    published,
    updated,
    version_from_site,
)
from federation.lemmy_config import LemmyAccountConfig
from federation.markdown_safe import escape, to_plain_text
from federation.types import (
    Account,
    Attachment,
    MediaItem,
    Mention,
    OutgoingPost,
    PostLookup,
    PostResult,
    Visibility,
)

log = logging.getLogger(__name__)

USER_AGENT = "fedibot (Lemmy adapter; +https://codeberg.org/fedibot)"
# Error bodies are `{"error": "<LemmyErrorType in snake_case>", "message"?: ...}`.
# 0.19: "not found" is 400 `couldnt_find_*` (lemmy 0.19.20 `crates/utils/src/error.rs`: only a
# diesel NotFound is 404); 1.0: 404 `not_found` (lemmy 1.0 `crates/utils/src/error.rs`).
_GONE_CODES = frozenset(
    {
        "couldnt_find_comment",
        "couldnt_find_post",
        "couldnt_find_private_message",
        "couldnt_find_person",
        "couldnt_find_object",
        "not_found",
        "deleted",
    }
)
# A missing or expired token on a route that needs a user: 401 `incorrect_login` in both
# versions (`impl FromRequest for LocalUserView`). `not_logged_in` (400) is the other refusal.
_AUTH_CODES = frozenset({"incorrect_login", "not_logged_in"})
# 0.19: 400 `rate_limit_error` (`crates/utils/src/rate_limit/mod.rs`); 1.0: 429, turned into
# `too_many_requests` by `crates/utils/src/response.rs`.
_RATE_LIMIT_CODES = frozenset({"rate_limit_error", "too_many_requests"})
# Deleting what is already deleted: 0.19 `couldnt_update_comment`, 1.0 `couldnt_update`.
_ALREADY_DELETED_CODES = frozenset({"couldnt_update_comment", "couldnt_update"})
_MAX_INBOX_PAGES = 20  # per list and poll: 1,000 unread items
_MAX_LOOKUP_PAGES = 4  # pages of a conversation searched for an earlier message
# Lemmy 1.0 `crates/routes/src/middleware/idempotency.rs`: a POST or PUT from a logged-in user
# with an `Idempotency-Key` of at most 32 characters that it saw before answers 422 with an
# empty body. Keys are swept every 120 s once they are 120 s old, so a key is remembered for
# 120–240 s (in memory: a server restart forgets them). 0.19 has no such middleware.
_IDEMPOTENCY_MEMORY = 120.0
_IDEMPOTENCY_MARGIN = 10.0  # our clock against the server's: the request's travel, rounding
# A message that Lemmy confirmed only by refusing its repeat (422): its id is not known.
UNKNOWN_PM = "pm:unknown"
# A proxy in front of Lemmy answered after Lemmy may have received the request: nginx 502
# (upstream reset) and 504 (timeout), Cloudflare 520 (unexpected answer) and 524 (timeout).
# 500 and 503 are answers that nothing was done; 521-523 mean Lemmy was never reached.
_PROXY_GAVE_UP = frozenset({502, 504, 520, 524})
_MARKER = "[//]: # (fedibot:{key})"


class RateLimited(TransientError):
    """The instance answered `rate_limit_error` (0.19, 400) or `too_many_requests` (1.0, 429)."""

    code = "rate_limited"


class _AlreadyReceived(AdapterError):
    """422 with an empty body to a request carrying our `Idempotency-Key`: the server saw this
    very request before (1.0). What became of it the caller must find out."""

    code = "already_received"


class LockedPostError(PermanentError):
    """The mention sits in a locked post and `locked_post_fallback` is `skip`."""

    code = "post_locked"


class SlidingWindow:
    """At most `limit` events in any `window` seconds (a conservative view of Lemmy's bucket)."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: list[float] = []
        self._blocked_until = 0.0

    def _prune(self, now: float) -> None:
        cutoff = now - self.window
        while self._events and self._events[0] <= cutoff:
            self._events.pop(0)

    def wait_for(self, count: int = 1) -> float:
        """Seconds until `count` more events fit (0.0: now). `count` is capped at `limit`."""
        now = self._clock()
        self._prune(now)
        count = max(1, min(count, self.limit))
        wait = max(0.0, self._blocked_until - now)
        excess = len(self._events) + count - self.limit
        if excess > 0:
            wait = max(wait, self._events[excess - 1] + self.window - now)
        return wait

    def record(self) -> None:
        self._events.append(self._clock())

    @property
    def blocked_until(self) -> float:
        """Until when (on this window's clock) the server refused everything."""
        return self._blocked_until

    def block(self, seconds: float) -> None:
        """The server said no: hold off `seconds` whatever our own count says."""
        self._blocked_until = max(self._blocked_until, self._clock() + seconds)

    @property
    def slot_seconds(self) -> float:
        """How long a token bucket of this size takes to free one slot."""
        return self.window / self.limit


class IdleBackoff:
    """Poll interval: the minimum after activity, doubling while idle or failing, up to max."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.current = minimum

    def after_poll(self, seen: int) -> float:
        self.current = self.minimum if seen else min(self.current * 2, self.maximum)
        return self.current

    def after_failure(self, retry_after: float | None = None) -> float:
        self.current = min(self.current * 2, self.maximum)
        return max(self.current, retry_after or 0.0)


class LemmyAdapter:
    """One bot account on a Lemmy instance (0.19 or 1.0), implementing `federation.Adapter`."""

    platform = "lemmy"

    def __init__(self, config: LemmyAccountConfig, cursors: CursorStore) -> None:
        self.name = config.name
        self.config = config
        # Lemmy acknowledges by read flags, not cursors; kept for the protocol's constructor.
        self._cursors = cursors
        self._base = config.base_url
        self._session: aiohttp.ClientSession | None = None
        self._jwt: str | None = config.jwt.get_secret_value() if config.jwt else None
        self._login_lock = asyncio.Lock()
        self._post_lock = asyncio.Lock()
        self.api: LemmyApi | None = None
        self.me: Account | None = None
        self._me_id = 0
        self._me_domain = ""
        self._set_limits(RateLimits())
        self._backoff = IdleBackoff(config.poll_interval_seconds, config.max_poll_interval_seconds)
        self._unacked: set[tuple[str, int]] = set()  # delivered, but marking read failed
        self._uploads: OrderedDict[tuple[str, int, int], str] = OrderedDict()
        self._self_mention: re.Pattern[str] | None = None
        # monotonic time after which the repeated request token of the post under way must
        # not be sent (`OutgoingPost.request_token_ttl`); None: not a repeat
        self._key_deadline: float | None = None

    # --- life cycle ----------------------------------------------------------------------

    async def start(self) -> Account:
        """Detect the API version, log in, set the bot flag, read the rate limits."""
        version, site = await self._detect_version()
        self.api = api = api_for(version)
        if self.config.password is not None:
            await self._login()
        my_user = await self._request(api.my_user())
        person = api.my_person(my_user)
        if not person:
            raise AuthError(f"lemmy account {self.name!r}: the instance did not accept the token")
        if api.my_user() != api.site():
            site = await self._request(api.site())
        else:
            site = my_user
        self._set_limits(RateLimits.from_site(site))
        if self.config.set_bot_flag and not person.get("bot_account"):
            await self._request(api.set_bot_flag())
            person = {**person, "bot_account": True}
        self._me_id = int(person["id"])
        self._me_domain = actor_domain(person) or (urlsplit(self._base).hostname or "")
        self.me = self._account(person)
        name, domain = re.escape(str(person["name"])), re.escape(self._me_domain)
        self._self_mention = re.compile(rf"(?<![\w@])@{name}(?:@{domain})?(?![\w@])", re.IGNORECASE)
        log.info("lemmy %s: logged in as %s (API %s)", self.name, self.me.acct, version)
        return self.me

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def idempotency_window(self) -> float:
        """1.0 refuses a repeated `Idempotency-Key` for at least 120 s; 0.19 not at all."""
        if self.api is None or self.api.version != "v4":
            return 0.0
        return _IDEMPOTENCY_MEMORY - _IDEMPOTENCY_MARGIN

    async def _ensure_started(self) -> LemmyApi:
        if self.api is None:
            await self.start()
        assert self.api is not None
        return self.api

    async def _detect_version(self) -> tuple[str, JSON]:
        last: PermanentError | None = None
        for version in ("v3", "v4"):
            try:
                site = await self._request(Call("GET", f"/api/{version}/site"), auth=False)
            except PermanentError as exc:  # 404: not this version
                last = exc
                continue
            return (version_from_site(site) if version == "v3" else "v4"), site
        raise PermanentError(f"lemmy account {self.name!r}: no Lemmy API at {self._base} ({last})")

    def _set_limits(self, limits: RateLimits) -> None:
        """The site's `local_site_rate_limit`; `[accounts.budgets]` may only be stricter."""
        self.limits = limits
        configured = self.config.budgets
        self.budgets = {
            kind: slower(BudgetLimit(limit=count, per_seconds=window), getattr(configured, kind))
            for kind, (count, window) in (
                ("comments", limits.comment),
                ("media", limits.image),
                ("messages", limits.message),
            )
        }
        self._comments = SlidingWindow(
            self.budgets["comments"].limit, self.budgets["comments"].per_seconds
        )
        self._images = SlidingWindow(self.budgets["media"].limit, self.budgets["media"].per_seconds)
        self._messages = SlidingWindow(
            self.budgets["messages"].limit, self.budgets["messages"].per_seconds
        )

    # --- budgets (federation.budgets) ----------------------------------------------------

    def budget_limits(self) -> dict[str, BudgetLimit]:
        return dict(self.budgets)

    def budget_cost(self, post: OutgoingPost) -> dict[str, int]:
        cost = {"messages" if _is_pm(post) else "comments": 1}
        images = len(self._missing_uploads(post))
        if images:
            cost["media"] = images
        return cost

    def budget_hints(self) -> dict[str, ServerHint]:
        """A refusal (`rate_limit_error` / 429) blocks a bucket until a slot frees."""
        now, wall = time.monotonic(), time.time()
        hints = {}
        for kind, window in (
            ("comments", self._comments),
            ("media", self._images),
            ("messages", self._messages),
        ):
            blocked = window.blocked_until
            if blocked > now:
                hints[kind] = ServerHint(remaining=0, reset_at=wall + blocked - now)
        return hints

    # --- HTTP ----------------------------------------------------------------------------

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.config.request_timeout_seconds)
            self._session = aiohttp.ClientSession(
                timeout=timeout, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    async def _login(self, stale: str | None = None) -> None:
        """Log in with the password; with `stale`, only if nobody refreshed that token yet."""
        async with self._login_lock:
            if stale is not None and self._jwt != stale:
                return
            if self.config.password is None:
                raise AuthError(f"lemmy account {self.name!r}: token rejected and no password")
            assert self.api is not None
            call = self.api.login(self.config.username, self.config.password.get_secret_value())
            try:
                body = await self._request(call, auth=False, relogin=False)
            except PermanentError as exc:
                raise AuthError(f"lemmy account {self.name!r}: login refused ({exc})") from exc
            jwt = body.get("jwt")
            if not jwt:
                raise AuthError(
                    f"lemmy account {self.name!r}: login gave no token "
                    "(registration pending or e-mail not verified)"
                )
            self._jwt = str(jwt)

    async def _request(
        self,
        call: Call,
        *,
        auth: bool = True,
        relogin: bool = True,
        form: Callable[[], aiohttp.FormData] | None = None,
        idempotency_key: str | None = None,
    ) -> JSON:
        """One API call → its JSON body, or the matching AdapterError.

        A request that went out without an answer (a timeout, a dropped connection, a
        proxy's 504) is `OutcomeUnknown`: it may have been carried out. One that never left
        (no connection) or that the server answered is not."""
        session = await self._http()
        token = self._jwt if auth else None
        headers: dict[str, str] = {}
        creates = idempotency_key is not None  # only a create call can leave a post behind
        if idempotency_key and self.api is not None and self.api.version == "v4":
            headers["Idempotency-Key"] = idempotency_key
            deadline = self._key_deadline
            if deadline is not None and time.monotonic() >= deadline:
                # a repeated key the instance may have forgotten by now: not sent
                raise OutcomeUnknown(
                    f"lemmy {self.name}: {call.path}: too late to repeat the request safely"
                )
        if token:
            headers["Authorization"] = f"Bearer {token}"
            if form is not None:
                headers["Cookie"] = f"jwt={token}"  # pict-rs behind Lemmy 0.19 reads the cookie
        try:
            async with session.request(
                call.method,
                self._base + call.path,
                params=call.params,
                json=call.json if form is None else None,
                data=form() if form is not None else None,
                headers=headers,
            ) as resp:
                status = resp.status
                text = await resp.text()
                retry_after = _retry_after(resp.headers.get("Retry-After"))
        except aiohttp.ClientConnectorError as exc:  # nothing was sent
            raise TransientError(
                f"lemmy {self.name}: {call.method} {call.path}: {type(exc).__name__}"
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            unknown = OutcomeUnknown if creates else TransientError
            raise unknown(
                f"lemmy {self.name}: {call.method} {call.path}: {type(exc).__name__}"
            ) from exc
        body = _json_or_none(text)
        if status < 400:
            if body is None:
                if status >= 200 and not text.strip():
                    return {}
                raise TransientError(f"lemmy {self.name}: {call.path} answered non-JSON")
            return body
        code = str(body.get("error") or "") if body else ""
        if auth and token and (status == 401 or code in _AUTH_CODES):
            if relogin and self.config.password is not None:
                log.info("lemmy %s: token expired, logging in again", self.name)
                await self._login(stale=token)
                return await self._request(
                    call, auth=auth, relogin=False, form=form, idempotency_key=idempotency_key
                )
            raise AuthError(f"lemmy {self.name}: {call.path} refused the token ({code or status})")
        if status == 422 and "Idempotency-Key" in headers and not text.strip():
            raise _AlreadyReceived(f"lemmy {self.name}: {call.path}: a repeated request")
        error = self._error(call, status, code, retry_after)
        if isinstance(error, OutcomeUnknown) and not creates:
            error = TransientError(str(error), retry_after=retry_after)
        elif creates and not isinstance(error, OutcomeUnknown):
            error.create_refused = True  # the instance answered: this request posted nothing
        vars(error)["lemmy_code"] = code
        message = str(body.get("message") or "") if body else ""
        if message and auth:  # never for the login call: its body holds the password
            error.args = (f"{error.args[0]}: {message[:200]}",)
        raise error

    def _error(self, call: Call, status: int, code: str, retry_after: float | None) -> AdapterError:
        where = f"lemmy {self.name}: {call.method} {call.path} → {status} {code}".rstrip()
        if code in _RATE_LIMIT_CODES or status == 429:
            return RateLimited(where, retry_after=retry_after)
        if status == 413:
            return PermanentError(f"{where}: the image is larger than the instance accepts")
        if code in _GONE_CODES:
            return RemoteGone(where)
        if code == "locked":
            return LockedPostError(where)
        if status in _PROXY_GAVE_UP:  # Lemmy may have done it; only its answer got lost
            return OutcomeUnknown(where, retry_after=retry_after)
        if status >= 500:  # Lemmy (or a proxy that never reached it) answered: not done
            return TransientError(where, retry_after=retry_after)
        if code in _AUTH_CODES or status == 401:
            return AuthError(where)
        return PermanentError(where)

    # --- receiving -----------------------------------------------------------------------

    async def listen(self, sink: MentionSink) -> None:
        """Poll forever; the interval backs off while idle and after failures."""
        await self._ensure_started()
        while True:
            try:
                seen = await self.catch_up(sink)
                delay = self._backoff.after_poll(seen)
            except AuthError:
                raise
            except AdapterError as exc:
                retry_after = getattr(exc, "retry_after", None)
                delay = self._backoff.after_failure(retry_after)
                log.warning("lemmy %s: poll failed (%s); next try in %.0f s", self.name, exc, delay)
            await asyncio.sleep(delay)

    async def catch_up(self, sink: MentionSink) -> int:
        """Read every unread inbox item once; return how many reached the sink."""
        await self._ensure_started()
        total = 0
        while True:
            seen, more = await self._poll_once(sink)
            total += seen
            if not (more and seen):
                return total

    async def _poll_once(self, sink: MentionSink) -> tuple[int, bool]:
        """Collect every unread page first, then deliver oldest first.

        Paging before anything is marked read keeps 0.19's page numbers stable; 1.0 follows
        `next_page` as `page_cursor`. Items that stay unread (the sink failed) therefore never
        hide the ones behind them."""
        api = self.api
        assert api is not None
        count_call = api.unread_count()
        if (
            count_call is not None
            and not self._unacked
            and api.unread_total(await self._request(count_call)) == 0
        ):
            return 0, False
        items: dict[tuple[str, int], InboxItem] = {}
        more = False
        for first in api.inbox_calls():
            call: Call | None = first
            for _ in range(_MAX_INBOX_PAGES):
                if call is None:
                    break
                body = await self._request(call)
                for item in api.inbox_items(body):
                    items.setdefault(item.key, item)
                call = api.next_page(call, body)
            more = more or call is not None
        skipped = [item for item in items.values() if item.kind == "skip"]
        if skipped:
            await self._ack(skipped)
        seen = 0
        for group in _group_items([item for item in items.values() if item.kind != "skip"]):
            if any(item.key in self._unacked for item in group) or self._ignorable(group[0]):
                await self._ack(group)
                continue
            mention = self._mention(group)
            try:
                await sink(mention)
            except Exception:
                log.exception(
                    "lemmy %s: sink failed for %s; left unread", self.name, mention.remote_id
                )
                continue
            seen += 1
            await self._ack(group)
        return seen, more

    def _ignorable(self, item: InboxItem) -> bool:
        """The bot's own items and items deleted before we saw them are just marked read."""
        if int(item.creator.get("id") or 0) == self._me_id:
            return True
        obj = item.comment if item.comment is not None else item.private_message or {}
        return bool(obj.get("deleted") or obj.get("removed"))

    async def _ack(self, group: list[InboxItem]) -> None:
        assert self.api is not None
        for item in group:
            try:
                await self._request(self.api.mark_read(item))
            except AdapterError as exc:
                self._unacked.add(item.key)
                log.warning("lemmy %s: could not mark %s read: %s", self.name, item.key, exc)
            else:
                self._unacked.discard(item.key)

    def _account(self, person: JSON) -> Account:
        domain = actor_domain(person) or (urlsplit(self._base).hostname or "")
        return Account(
            platform="lemmy",
            id=str(person.get("id")),
            acct=f"{person.get('name')}@{domain}",
            display_name=str(person.get("display_name") or ""),
            note_text=to_plain_text(str(person.get("bio") or "")),
            bot=bool(person.get("bot_account")),
            url=actor_url(person) or None,
        )

    def _plain(self, markdown: str) -> str:
        """Plain text of a comment/message without the bot's own @-mention."""
        text = to_plain_text(markdown)
        if self._self_mention is not None:
            text = self._self_mention.sub("", text)
        lines = (" ".join(line.split()) for line in text.splitlines())
        return "\n".join(line for line in lines if line)

    def _mention(self, group: list[InboxItem]) -> Mention:
        first = group[0]
        context: dict[str, Any] = {
            "api_version": self.api.version if self.api else "",
            "inbox_type": first.read_type,
            "inbox_id": first.inbox_id,
            "inbox_items": [[item.read_type, item.inbox_id] for item in group],
            "inbox_kinds": sorted({item.kind for item in group}),
            "creator_id": int(first.creator.get("id") or 0),
        }
        author = self._account(first.creator)
        if first.private_message is not None and first.comment is None:
            pm = first.private_message
            context |= {"kind": "private_message", "private_message_id": int(pm["id"])}
            return Mention(
                platform="lemmy",
                bot_account=self.name,
                remote_id=f"pm:{pm['id']}",
                author=author,
                text=self._plain(str(pm.get("content") or "")),
                visibility=Visibility.DIRECT,
                created_at=published(pm) or datetime.now(UTC),
                url=pm.get("ap_id"),
                is_private_message=True,
                edited_at=updated(pm),
                context=context,
            )
        comment = first.comment or {}
        post = first.post or {}
        community = first.community or {}
        parent = parent_comment_id(comment)
        context |= {
            "kind": "comment",
            "comment_id": int(comment["id"]),
            "post_id": int(comment.get("post_id") or post.get("id") or 0),
            "community_id": int(post.get("community_id") or community.get("id") or 0),
            "post_nsfw": bool(post.get("nsfw")),
            "community_nsfw": bool(community.get("nsfw")),
            "post_locked": bool(post.get("locked")),
        }
        content = str(comment.get("content") or "")
        return Mention(
            attachments=comment_attachments(content, post),
            media_hosts=tuple(
                dict.fromkeys(h for h in (urlsplit(self._base).netloc.lower(), author.domain) if h)
            ),
            platform="lemmy",
            bot_account=self.name,
            remote_id=str(comment["id"]),
            author=author,
            text=self._plain(content),
            visibility=Visibility.PUBLIC,
            created_at=published(comment) or datetime.now(UTC),
            in_reply_to_id=str(parent) if parent is not None else None,
            sensitive=bool(post.get("nsfw") or community.get("nsfw")),
            url=comment.get("ap_id"),
            edited_at=updated(comment),
            context=context,
        )

    # --- sending -------------------------------------------------------------------------

    def estimated_wait(self, images: int) -> float:
        """Seconds until a reply with `images` images could go out (0.0: now)."""
        waits = [self._comments.wait_for(1)]
        if images:
            waits.append(self._images.wait_for(images))
        return max(waits)

    async def post(self, post: OutgoingPost) -> PostResult:
        """Upload the images, then comment under the mention (or send a private message)."""
        api = await self._ensure_started()
        ttl = post.request_token_ttl
        deadline = None if ttl is None else time.monotonic() + ttl
        async with self._post_lock:  # posts one at a time: the deadline is this post's
            self._key_deadline = deadline
            try:
                return await self._post_locked(api, post)
            finally:
                self._key_deadline = None

    async def _post_locked(self, api: LemmyApi, post: OutgoingPost) -> PostResult:
        """`post` under the post lock: a message, or a comment under the mention (a message
        when the post is locked)."""
        if _is_pm(post):
            return await self._send_private_message(
                post, self._recipient_id(post), post.request_token
            )
        parent_id = _comment_id(post.in_reply_to_id)
        post_id = post.context.get("post_id")
        if parent_id is not None:
            view = (await self._request(api.get_comment(parent_id))).get("comment_view") or {}
            if _gone(view):
                raise RemoteGone(f"lemmy {self.name}: comment {parent_id} was deleted")
            post_id = (view.get("comment") or {}).get("post_id") or post_id
            if (view.get("post") or {}).get("locked"):
                return await self._locked(post, (view.get("creator") or {}).get("id"))
        if not post_id:
            raise PermanentError(f"lemmy {self.name}: nothing to reply to (no comment/post id)")
        self._check_budget(self._comments, len(self._missing_uploads(post)))
        urls = list(post.media_refs) or await self._upload_all(post.media)
        content = _compose(post, urls, as_links=False)
        try:
            body = await self._paced(
                self._comments,
                api.create_comment(content, int(post_id), parent_id),
                idempotency_key=post.request_token,
            )
        except LockedPostError:
            return await self._locked(post, post.context.get("creator_id"))
        except _AlreadyReceived:
            return await self._comment_received_before(post)
        comment = (body.get("comment_view") or {}).get("comment") or {}
        return PostResult(remote_id=str(comment["id"]), url=comment.get("ap_id"))

    async def _comment_received_before(self, post: OutgoingPost) -> PostResult:
        """1.0 refused a repeat of this attempt's comment: the first one reached it. Found by
        its marker, it is the answer; if the post was locked since, the answer is the
        message fallback (with its own token, so its own repeat is recognised); otherwise
        the first request failed on the server (e.g. rate limited), and the attempt is
        retried with a new token once this one has expired."""
        found = await self.find_existing_reply(post)
        if found is not None:
            return found
        if await self._answered_by_message(post):
            return await self._locked(post, post.context.get("creator_id"))
        # not an unknown outcome: the comment is not there; a new token after this one expired
        raise TransientError(
            f"lemmy {self.name}: the instance received this comment before, but it is not there",
            retry_after=self.idempotency_window,
        )

    async def _message_received_before(self, post: OutgoingPost) -> PostResult:
        """1.0 refused a repeat of this attempt's message: the first one reached it. A
        message to a remote user cannot be looked up and counts as sent (`UNKNOWN_PM`)."""
        found = await self.find_existing_reply(post)
        if found is not None:
            return found
        if self._pm_unlisted(post, True):
            log.warning(
                "lemmy %s: %s repeats a message the instance already received; its id "
                "cannot be looked up (a remote recipient on Lemmy 1.0), so it is not sent again",
                self.name,
                post.idempotency_key,
            )
            return PostResult(remote_id=UNKNOWN_PM, url=None)
        raise TransientError(
            f"lemmy {self.name}: the instance received this message before, but it is not there",
            retry_after=self.idempotency_window,
        )

    async def _locked(self, post: OutgoingPost, creator_id: Any) -> PostResult:
        """The message that answers a mention in a locked post. Its request token is derived
        from the attempt's: the comment request, refused as locked, already spent that one
        on the server, and a repeat of the message must be recognised as one."""
        if self.config.locked_post_fallback != "private_message":
            raise LockedPostError(f"lemmy {self.name}: the post is locked; not answering")
        recipient = creator_id or self._recipient_id(post)
        token = fallback_token(post.request_token) if post.request_token else None
        return await self._send_private_message(post, int(recipient), token)

    def _recipient_id(self, post: OutgoingPost) -> int:
        raw = post.recipient.id if post.recipient else post.context.get("creator_id")
        try:
            return int(raw)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise PermanentError(f"lemmy {self.name}: no recipient for a private message") from None

    async def _send_private_message(
        self, post: OutgoingPost, recipient_id: int, token: str | None
    ) -> PostResult:
        assert self.api is not None
        self._check_budget(self._messages, len(self._missing_uploads(post)))
        urls = list(post.media_refs) or await self._upload_all(post.media)
        content = _compose(post, urls, as_links=True)
        try:
            body = await self._paced(
                self._messages,
                self.api.create_private_message(content, recipient_id),
                idempotency_key=token,
            )
        except _AlreadyReceived:
            return await self._message_received_before(post)
        pm = (body.get("private_message_view") or {}).get("private_message") or {}
        return PostResult(remote_id=f"pm:{pm['id']}", url=pm.get("ap_id"))

    def _check_budget(self, bucket: SlidingWindow, images: int) -> None:
        wait = bucket.wait_for(1)
        if images:
            wait = max(wait, self._images.wait_for(images))
        if wait > 0:
            raise TransientError(
                f"lemmy {self.name}: rate budget spent; next slot in {wait:.1f} s",
                retry_after=wait,
            )

    async def _paced(
        self,
        bucket: SlidingWindow,
        call: Call,
        form: Callable[[], aiohttp.FormData] | None = None,
        idempotency_key: str | None = None,
    ) -> JSON:
        """A call counted against `bucket` (counted when it finishes, as the server saw it)."""
        try:
            return await self._request(call, form=form, idempotency_key=idempotency_key)
        except RateLimited as exc:
            bucket.block(bucket.slot_seconds)
            wait = max(exc.retry_after or 0.0, bucket.wait_for(1))
            raise RateLimited(str(exc), retry_after=wait) from exc
        finally:
            bucket.record()

    def _missing_uploads(self, post: OutgoingPost) -> list[MediaItem]:
        if post.media_refs:  # uploaded before (the post-once path): nothing to upload
            return []
        return [item for item in post.media if _upload_key(item) not in self._uploads]

    async def _upload_all(self, media: Iterable[MediaItem]) -> list[str]:
        assert self.api is not None
        urls: list[str] = []
        for item in media:
            key = _upload_key(item)
            cached = self._uploads.get(key)
            if cached is None:
                self._check_budget(self._images, 0)
                cached = await self._upload(item)
                self._uploads[key] = cached
                while len(self._uploads) > 256:
                    self._uploads.popitem(last=False)
            urls.append(cached)
        return urls

    async def _upload(self, item: MediaItem) -> str:
        assert self.api is not None
        data = await asyncio.to_thread(Path(item.path).read_bytes)

        def form() -> aiohttp.FormData:
            fd = aiohttp.FormData()
            fd.add_field(
                "images[]", data, filename=Path(item.path).name, content_type=item.mime_type
            )
            return fd

        body = await self._paced(self._images, Call("POST", self.api.upload_path()), form=form)
        try:
            return self.api.uploaded_url(body, self._base)
        except ValueError as exc:
            raise PermanentError(f"lemmy {self.name}: {exc}") from exc

    # --- after a crash, moderation, clean-up ---------------------------------------------

    async def find_existing_reply(self, post: OutgoingPost) -> PostResult | None:
        """The bot's earlier reply for this post (by marker, else any bot reply to the parent)."""
        api = await self._ensure_started()
        marker = _marker(post.idempotency_key)
        if not _is_pm(post):
            parent_id = _comment_id(post.in_reply_to_id)
            if parent_id is not None:
                try:
                    body = await self._request(api.list_comments(parent_id))
                except RemoteGone:
                    body = {}
                for view in api.comment_views(body):
                    comment = view.get("comment") or {}
                    if (
                        int(comment.get("creator_id") or 0) == self._me_id
                        and parent_comment_id(comment) == parent_id
                        and not comment.get("deleted")
                        and (marker is None or marker in str(comment.get("content") or ""))
                    ):
                        return PostResult(str(comment["id"]), comment.get("ap_id"))
            if marker is None or self.config.locked_post_fallback != "private_message":
                return None
        return await self._find_sent_private_message(post, marker)

    async def _find_sent_private_message(
        self, post: OutgoingPost, marker: str | None
    ) -> PostResult | None:
        """The bot's earlier message to the recipient carrying `marker` (see `conversation`)."""
        if marker is None:
            return None
        try:
            recipient = self._recipient_id(post)
        except PermanentError:
            return None
        for pm in await self._conversation(recipient):
            if (
                int(pm.get("creator_id") or 0) == self._me_id
                and int(pm.get("recipient_id") or 0) == recipient
                and marker in str(pm.get("content") or "")
                and not pm.get("deleted")
            ):
                return PostResult(f"pm:{pm['id']}", pm.get("ap_id"))
        return None

    async def _conversation(self, person_id: int, pages: int = _MAX_LOOKUP_PAGES) -> list[JSON]:
        """Recent private messages between the bot and `person_id` (newest first)."""
        assert self.api is not None
        found: list[JSON] = []
        call: Call | None = self.api.conversation(person_id)
        for _ in range(pages):
            if call is None:
                break
            body = await self._request(call)
            found.extend(self.api.private_messages(body))
            call = self.api.next_page(call, body)
        return found

    # --- the post-once contract ----------------------------------------------------------

    def escape_text(self, text: str) -> str:
        """User text in a comment or message: markdown that renders literally."""
        return escape(text)

    async def upload(self, item: MediaItem) -> str:
        """Upload one image (paced by the image budget); its public URL."""
        await self._ensure_started()
        async with self._post_lock:
            (url,) = await self._upload_all([item])
        return url

    async def media_available(self, ref: str) -> bool:
        """Whether an image uploaded earlier is still on the instance (`HEAD` its URL)."""
        session = await self._http()
        try:
            async with session.head(ref, allow_redirects=True) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"lemmy {self.name}: HEAD {ref}: {type(exc).__name__}") from exc
        if status in (404, 410):
            return False
        if status >= 500:
            raise TransientError(f"lemmy {self.name}: HEAD {ref} → {status}")
        return True  # 2xx/3xx, or a server without HEAD (405): attach it

    async def find_post(self, post: OutgoingPost, lookup: PostLookup) -> PostResult | None:
        """The earlier attempt's comment or message, by the invisible marker of its key.

        Lemmy 1.0 lists a message the bot sent only when its recipient is local (it writes
        notification rows for local users only). For a message to a remote user after an
        unanswered attempt: inside the server's idempotency memory the post goes ahead with
        the same request token (a repeat is refused, see `_message_received_before`); after it,
        nothing can tell whether the message went out: `DeliveryUnconfirmed`."""
        post = replace(post, idempotency_key=lookup.key)
        found = await self.find_existing_reply(post)
        if found is not None and found.remote_id not in lookup.exclude:
            return found
        unsettled = lookup.unsettled_for
        if unsettled is None or unsettled < self.idempotency_window:
            return None
        if self._pm_unlisted(post, await self._answered_by_message(post)):
            raise DeliveryUnconfirmed(
                f"lemmy {self.name}: an attempt {unsettled:.0f} s ago got no answer, and Lemmy "
                "1.0 lists no messages sent to remote users: not sending it twice"
            )
        return None

    async def _answered_by_message(self, post: OutgoingPost) -> bool:
        """Whether `post` goes out as a private message (a message, or a locked post)."""
        if _is_pm(post):
            return True
        parent_id = _comment_id(post.in_reply_to_id)
        if parent_id is None or self.config.locked_post_fallback != "private_message":
            return False
        assert self.api is not None
        try:
            view = (await self._request(self.api.get_comment(parent_id))).get("comment_view")
        except RemoteGone:
            return False
        return bool(((view or {}).get("post") or {}).get("locked"))

    def _pm_unlisted(self, post: OutgoingPost, as_message: bool) -> bool:
        """A private message that the instance lists nowhere once sent (1.0, remote user)."""
        if not as_message or self.api is None or self.api.version != "v4":
            return False
        recipient = post.recipient
        return recipient is None or recipient.domain != self._me_domain.lower()

    async def request_exists(self, mention: Mention) -> bool:
        """False when the mention (comment or private message) was deleted or removed."""
        api = await self._ensure_started()
        if mention.is_private_message or mention.remote_id.startswith("pm:"):
            pm_id = int(mention.remote_id.removeprefix("pm:"))
            creator = int(mention.context.get("creator_id") or mention.author.id)
            recent = await self._conversation(creator, pages=1)
            for pm in recent:
                if int(pm.get("id") or 0) == pm_id:
                    return not (pm.get("deleted") or pm.get("removed"))
            # Both versions leave deleted messages out of the list: not among the recent ones
            # means gone, unless the page was full (then we cannot tell).
            return len(recent) >= INBOX_PAGE
        try:
            body = await self._request(api.get_comment(int(mention.remote_id)))
        except RemoteGone:
            return False
        return not _gone(body.get("comment_view") or {})

    async def delete(self, remote_id: str) -> None:
        """Delete one of the bot's comments (`"123"`) or private messages (`"pm:123"`)."""
        api = await self._ensure_started()
        if remote_id == UNKNOWN_PM:
            raise PermanentError(
                f"lemmy {self.name}: this message was confirmed without its id; delete it in "
                "the bot account's web interface"
            )
        if remote_id.startswith("pm:"):
            call = api.delete_private_message(int(remote_id.removeprefix("pm:")))
        else:
            call = api.delete_comment(int(remote_id))
        try:
            await self._request(call)
        except RemoteGone:
            log.info("lemmy %s: %s was already gone", self.name, remote_id)
        except PermanentError as exc:
            # Lemmy refuses to delete a comment twice (`couldnt_update_comment` / `couldnt_update`).
            if remote_id.startswith("pm:") or _code_of(exc) not in _ALREADY_DELETED_CODES:
                raise
            try:
                view = (await self._request(api.get_comment(int(remote_id)))).get("comment_view")
            except RemoteGone:
                return
            if not (view or {}).get("comment", {}).get("deleted"):
                raise
            log.info("lemmy %s: %s was already deleted", self.name, remote_id)


# --- helpers ---------------------------------------------------------------------------------


def fallback_token(token: str) -> str:
    """The locked-post message's request token, derived from the attempt's (32 hex)."""
    return hashlib.sha256(f"{token}#message".encode()).hexdigest()[:32]


def _group_items(items: list[InboxItem]) -> list[list[InboxItem]]:
    """One group per comment / private message (a reply that also mentions the bot is one)."""
    groups: dict[tuple[str, int], list[InboxItem]] = {}
    for item in items:
        if item.comment is not None:
            key = ("comment", int(item.comment["id"]))
        elif item.private_message is not None:
            key = ("pm", int(item.private_message["id"]))
        else:
            continue
        groups.setdefault(key, []).append(item)

    def age(group: list[InboxItem]) -> tuple[datetime, int]:
        obj = group[0].comment or group[0].private_message or {}
        return (published(obj) or datetime.now(UTC), int(obj.get("id") or 0))

    return sorted(groups.values(), key=age)


def _gone(view: JSON) -> bool:
    comment, post = view.get("comment") or {}, view.get("post") or {}
    return any(bool(obj.get(k)) for obj in (comment, post) for k in ("deleted", "removed"))


def _is_pm(post: OutgoingPost) -> bool:
    """Lemmy has no direct or followers-only comments: those go as a private message."""
    return (
        post.is_private_message
        or post.visibility in (Visibility.DIRECT, Visibility.PRIVATE)
        or (post.in_reply_to_id or "").startswith("pm:")
    )


def _comment_id(remote_id: str | None) -> int | None:
    if remote_id is None:
        return None
    try:
        return int(remote_id)
    except ValueError:
        raise PermanentError(f"not a Lemmy comment id: {remote_id!r}") from None


def _upload_key(item: MediaItem) -> tuple[str, int, int]:
    try:
        stat = Path(item.path).stat()
    except OSError:
        return (str(item.path), -1, -1)
    return (str(item.path), stat.st_size, stat.st_mtime_ns)


def _marker(key: str | None) -> str | None:
    if not key:
        return None
    safe = re.sub(r"[^A-Za-z0-9_.:-]", "", key)[:120]
    return _MARKER.format(key=safe) if safe else None


def _compose(post: OutgoingPost, urls: list[str], *, as_links: bool) -> str:
    """The reply's markdown: the (already escaped) text, the images, the invisible marker."""
    lines = []
    for index, (item, url) in enumerate(zip(post.media, urls, strict=True), start=1):
        alt = escape(item.alt_text.strip()) or f"image {index}"
        lines.append(f"[{alt}]({url})" if as_links else f"![{alt}]({url})")
    images = "\n\n".join(lines)
    if images and (post.sensitive or post.spoiler_text) and not as_links:
        title = escape(post.spoiler_text.strip()) or "sensitive"
        images = f"::: spoiler {title}\n{images}\n:::"
    parts = [post.text.strip(), images, _marker(post.idempotency_key) or ""]
    return "\n\n".join(part for part in parts if part)


def _code_of(exc: AdapterError) -> str:
    """The Lemmy error code (`{"error": …}`) an adapter error was made from, or ""."""
    return str(vars(exc).get("lemmy_code") or "")


def _json_or_none(text: str) -> JSON | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


_MARKDOWN_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def comment_attachments(markdown: str, post: dict[str, Any]) -> tuple[Attachment, ...]:
    """The pictures of a Lemmy request: images embedded in the comment's markdown
    (`![alt](url)`) — always — and the post's image (`url` with an image
    `url_content_type`, or an image file name) only when the comment asks for `--strength`
    (a mention under an image post is not an image-to-image request by itself). Whether any
    of them is fetched is decided by federation.attachments' host rule."""
    found = [
        Attachment(url=url, description=alt.strip(), source="comment", kind="image")
        for alt, url in _MARKDOWN_IMAGE.findall(markdown)
    ]
    post_url = str(post.get("url") or "")
    content_type = str(post.get("url_content_type") or "").lower()
    is_image = content_type.startswith("image/") or (
        not content_type and urlsplit(post_url).path.lower().endswith(_IMAGE_SUFFIXES)
    )
    if post_url and "--strength" in markdown and not found:
        found.append(
            Attachment(
                url=post_url,
                mime_type=content_type,
                description=str(post.get("alt_text") or ""),
                preview_url=str(post["thumbnail_url"]) if post.get("thumbnail_url") else None,
                source="post",
                kind="image" if is_image else "unknown",
            )
        )
    return tuple(found)
