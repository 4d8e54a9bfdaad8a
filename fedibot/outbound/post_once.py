"""The one way out: every post the bot makes goes through `PostOnce.send`.

The post-once contract (docs/outbound.md):

1. intent — a row in `outbound_posts` (job, kind, account, key, text) is written before the
   first attempt; a row already `posted` ends here with its recorded result;
2. find — on every attempt after the first, the adapter looks for the post on the server
   (`find_post`), whatever the idempotency key's lifetime there;
3. upload — each image's server reference is recorded as soon as it is uploaded and reused
   on the next attempt while the server still has it (`media_available`);
4. post — with the install-unique idempotency key `fedibot-<install>-<job>-<kind>`, a short
   request token recorded with its time right before the call (`send_token`), and a
   visibility never wider than the request (`federation.visibility.reply_visibility`);
5. record — the row becomes `posted` with the remote id.

A crash anywhere between 1 and 5 leaves a row that the next attempt finds, so nothing is
posted twice and no upload is repeated. Where the server cannot be searched (Lemmy 1.0's
messages to remote users), the request token does the work: a call that got no answer is
repeated with the same token while the server remembers it (`Adapter.idempotency_window`),
so the server refuses the repeat; after that the adapter raises `DeliveryUnconfirmed`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from federation.base import Adapter
from federation.errors import AdapterError, OutcomeUnknown
from federation.types import OutgoingPost, PostLookup, PostResult, Visibility
from federation.visibility import reply_visibility
from fedibot.storage.database import Database
from fedibot.storage.install import install_id
from fedibot.storage.models import OutboundPost

log = logging.getLogger("fedibot.outbound.post_once")

outbound = cast(Table, OutboundPost.__table__)


class PostKind(StrEnum):
    """What a post is; a job has at most one post of each kind."""

    RESULT = "result"  # the images
    WAIT = "wait"  # "your images will follow in about N minutes"
    WAIT_AGAIN = "wait_again"  # the one follow-up when that promised time has passed
    ERROR = "error"  # an error or refusal reply
    HELP = "help"  # the usage text
    CAMPAIGN = "campaign"  # a campaign run's status


#: courtesy notices: never mistaken for the result, never looked for before their first try
NOTICE_KINDS = frozenset({PostKind.WAIT, PostKind.WAIT_AGAIN})


class IntentState(StrEnum):
    INTENDED = "intended"
    POSTED = "posted"


@dataclass(frozen=True)
class Intent:
    """One `outbound_posts` row."""

    id: int
    key: str
    state: str
    text: str
    media_refs: tuple[str, ...]
    attempts: int  # attempts before this one
    remote_id: str | None
    url: str | None
    send_token: str | None = None  # the last post call's token while it has no answer
    send_started_at: float | None = None  # when that call was first made


def request_token(key: str, attempt: int) -> str:
    """32 hex characters for attempt `attempt` of the post `key` (Lemmy 1.0 ignores an
    `Idempotency-Key` longer than 32 characters)."""
    return hashlib.sha256(f"{key}#{attempt}".encode()).hexdigest()[:32]


class OutboundStore:
    """The `outbound_posts` table."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def intend(self, job_id: int, kind: str, account: str, key: str, text: str) -> Intent:
        """The row of (job, kind), created on the first call; counts this attempt."""
        now = self.clock()
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert

        def _intend(conn: Connection) -> Intent:
            conn.execute(
                insert(outbound)
                .values(
                    job_id=job_id,
                    kind=kind,
                    bot_account=account,
                    idempotency_key=key,
                    state=IntentState.INTENDED,
                    text=text,
                    media_refs=[],
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["job_id", "kind"])
            )
            row = conn.execute(
                select(outbound).where(outbound.c.job_id == job_id, outbound.c.kind == kind)
            ).one()
            conn.execute(
                update(outbound)
                .where(outbound.c.id == row.id)
                .values(attempts=outbound.c.attempts + 1, updated_at=now)
            )
            return _intent(row)

        return await self.db.run(_intend)

    async def get(self, job_id: int, kind: str) -> Intent | None:
        query = select(outbound).where(outbound.c.job_id == job_id, outbound.c.kind == kind)
        row = await self.db.run(lambda conn: conn.execute(query).first())
        return _intent(row) if row is not None else None

    async def other_posts(self, job_id: int, kind: str) -> frozenset[str]:
        """Remote ids of the job's posts of other kinds (never mistaken for this one)."""
        query = select(outbound.c.remote_id).where(
            outbound.c.job_id == job_id, outbound.c.kind != kind, outbound.c.remote_id.is_not(None)
        )
        ids = await self.db.run(lambda conn: list(conn.execute(query).scalars()))
        return frozenset(str(i) for i in ids)

    async def set_media(self, intent_id: int, refs: list[str]) -> None:
        stmt = (
            update(outbound)
            .where(outbound.c.id == intent_id)
            .values(media_refs=list(refs), updated_at=self.clock())
        )
        await self.db.run(lambda conn: conn.execute(stmt))

    async def begin_send(self, intent_id: int, token: str, started_at: float) -> None:
        """Right before the post call: its token and when it was first sent."""
        stmt = (
            update(outbound)
            .where(outbound.c.id == intent_id)
            .values(send_token=token, send_started_at=started_at, updated_at=self.clock())
        )
        await self.db.run(lambda conn: conn.execute(stmt))

    async def settle(self, intent_id: int) -> None:
        """The server answered the post call with a refusal: nothing was posted."""
        stmt = (
            update(outbound)
            .where(outbound.c.id == intent_id)
            .values(send_token=None, send_started_at=None, updated_at=self.clock())
        )
        await self.db.run(lambda conn: conn.execute(stmt))

    async def mark_posted(self, intent_id: int, result: PostResult) -> None:
        now = self.clock()
        stmt = (
            update(outbound)
            .where(outbound.c.id == intent_id)
            .values(
                state=IntentState.POSTED,
                remote_id=result.remote_id,
                url=result.url,
                posted_at=now,
                updated_at=now,
                send_token=None,
                send_started_at=None,
            )
        )
        await self.db.run(lambda conn: conn.execute(stmt))


def _intent(row: Any) -> Intent:
    return Intent(
        id=int(row.id),
        key=str(row.idempotency_key),
        state=str(row.state),
        text=str(row.text or ""),
        media_refs=tuple(str(r) for r in row.media_refs or ()),
        attempts=int(row.attempts or 0),
        remote_id=row.remote_id,
        url=row.url,
        send_token=row.send_token,
        send_started_at=row.send_started_at,
    )


class PostOnce:
    """Posts each (job, kind) at most once, across crashes, restarts and key expiry."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self.store = OutboundStore(db, clock)
        self._install: str | None = None

    async def key(self, job_id: int, kind: str) -> str:
        """`fedibot-<install>-<job>-<kind>`: unique per install, stable across attempts."""
        if self._install is None:
            self._install = await install_id(self.db)
        return f"fedibot-{self._install}-{job_id}-{kind}"

    async def posted(self, job_id: int, kind: str) -> PostResult | None:
        """The recorded result of (job, kind), if it was posted."""
        intent = await self.store.get(job_id, kind)
        if intent is None or intent.state != IntentState.POSTED or not intent.remote_id:
            return None
        return PostResult(remote_id=intent.remote_id, url=intent.url)

    async def uploaded(self, job_id: int, kind: str) -> int:
        """How many images an earlier attempt of (job, kind) already uploaded."""
        intent = await self.store.get(job_id, kind)
        return len(intent.media_refs) if intent is not None else 0

    async def send(
        self,
        adapter: Adapter,
        job_id: int,
        kind: str,
        post: OutgoingPost,
        *,
        request: Visibility | None = None,
        maybe_posted: bool = False,
        before_post: Callable[[], Awaitable[None]] | None = None,
    ) -> PostResult:
        """Post `post` for (job, kind) unless it is already on the server.

        `request`: the visibility of the request answered (replies); the post is never wider
        than `reply_visibility(request)`. `maybe_posted`: look on the server even on the first
        attempt recorded here (a job whose earlier attempts predate this table).
        `before_post`: awaited once nothing was found, right before uploading and posting
        (the posting budget: it may raise `TransientError` to hold the post).
        """
        key = await self.key(job_id, kind)
        visibility = post.visibility
        if request is not None:
            visibility = visibility.narrowest(reply_visibility(request))
        post = dataclasses.replace(post, idempotency_key=key, visibility=visibility)
        intent = await self.store.intend(job_id, kind, adapter.name, key, post.text)
        if intent.state == IntentState.POSTED and intent.remote_id:
            return PostResult(remote_id=intent.remote_id, url=intent.url)
        unsettled_for = None
        if intent.send_token is not None and intent.send_started_at is not None:
            unsettled_for = max(0.0, self.clock() - intent.send_started_at)
        if intent.attempts > 0 or maybe_posted:  # we may have posted before a crash: look
            lookup = PostLookup(
                key=key,
                text=intent.text,
                media_refs=intent.media_refs,
                exclude=await self.store.other_posts(job_id, kind),
                unsettled_for=unsettled_for,
            )
            found = await adapter.find_post(post, lookup)
            if found is not None:
                log.info("job %s: found its %s posted before a restart", job_id, kind)
                await self.store.mark_posted(intent.id, found)
                return found
        if before_post is not None:
            await before_post()
        refs = await self._uploads(adapter, intent, post)
        token, started_at, ttl = self._token(adapter, intent)
        await self.store.begin_send(intent.id, token, started_at)
        try:
            result = await adapter.post(
                dataclasses.replace(
                    post, media_refs=tuple(refs), request_token=token, request_token_ttl=ttl
                )
            )
        except OutcomeUnknown as exc:
            # It may be on the server: the next attempt looks, or repeats this token, which
            # it must do while the server remembers it (half the time left: the replier's
            # poll, the claim and the lookup come before the repeat goes out).
            left = adapter.idempotency_window - (self.clock() - started_at)
            exc.retry_within = left / 2 if left > 2.0 else None
            raise
        except AdapterError as exc:
            # Settled only by an answer: the create request itself refused (nothing posted),
            # or a first try that failed before its create left. A repeat that failed
            # anywhere else (a lookup, the parent's check) leaves the earlier call unknown.
            if exc.create_refused or ttl is None:
                await self.store.settle(intent.id)
            raise
        await self.store.mark_posted(intent.id, result)
        return result

    def _token(self, adapter: Adapter, intent: Intent) -> tuple[str, float, float | None]:
        """(token, first sent at, seconds it stays usable): the unanswered call's token while
        the server remembers it (measured now, after the lookup and the uploads), else a
        new one without a limit."""
        now = self.clock()
        if intent.send_token is not None and intent.send_started_at is not None:
            left = adapter.idempotency_window - max(0.0, now - intent.send_started_at)
            if left > 0:
                return intent.send_token, intent.send_started_at, left
        return request_token(intent.key, intent.attempts), now, None

    async def _uploads(self, adapter: Adapter, intent: Intent, post: OutgoingPost) -> list[str]:
        """One server reference per image: the recorded one while the server has it, else a
        new upload, recorded at once (before the status is posted)."""
        refs = list(intent.media_refs[: len(post.media)])
        for index, item in enumerate(post.media):
            if index < len(refs) and await adapter.media_available(refs[index]):
                continue
            ref = await adapter.upload(item)
            if index < len(refs):
                refs[index] = ref
            else:
                refs.append(ref)
            await self.store.set_media(intent.id, refs)
        return refs
