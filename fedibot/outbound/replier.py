"""Posting what the queue has ready: results, error replies, help, deletions, campaign posts.

Every post goes through `PostOnce` (the one way out, docs/outbound.md): recorded before it
is attempted, looked for on the server on every retry, so a reply is never posted twice.
Each claimed job is handled on its own: one failing post (or a database error while
recording it) neither cancels the others nor the lease heartbeat they share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from federation.base import Adapter
from federation.errors import PermanentError, RemoteGone, ReplyForbidden, TransientError
from federation.types import OutgoingPost, PostResult, Visibility
from fedibot.config.loader import FedibotConfig
from fedibot.intake.mention_codec import mention_from_dict
from fedibot.moderation.output_check import (
    FLAGGED_OUTPUT,
    MINOR_EXPOSURE,
    held_for_review,
    withhold_reason,
)
from fedibot.moderation.policy import Policy
from fedibot.ops import metrics
from fedibot.outbound.budgets import BudgetGate
from fedibot.outbound.compose import compose_error, compose_result, compose_text
from fedibot.outbound.post_once import NOTICE_KINDS, PostKind, PostOnce
from fedibot.queue.jobs import JobQueue
from fedibot.storage.images import MissingImage, materialized
from fedibot.storage.models import JobState

log = logging.getLogger("fedibot.outbound.replier")

CampaignPoster = Callable[[Any, list[Any], Adapter], Any]

# A held job whose promised time has passed by this much gets one follow-up notice.
FOLLOWUP_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class Skipped:
    """`_deliver` did not post and already settled the job (e.g. the requester was banned
    since the request): nothing left to record."""

    reason: str


class Replier:
    def __init__(
        self,
        queue: JobQueue,
        adapters: dict[str, Adapter],
        policy: Policy,
        config: FedibotConfig,
        *,
        usage: str = "",
        worker_id: str = "replier",
        campaign_poster: CampaignPoster | None = None,
        outbound: PostOnce | None = None,
        gate: BudgetGate | None = None,
    ) -> None:
        self.queue = queue
        self.adapters = adapters
        self.policy = policy
        self.config = config
        self.usage = usage
        self.worker_id = worker_id
        self.campaign_poster = campaign_poster
        self.outbound = outbound or PostOnce(queue.db, queue.settings.clock)
        self.gate = gate or BudgetGate(None)
        # `fedibot run` starts the adapters in their listener tasks: a reply for an account
        # being started (`expect_start`) waits until it is ready (`mark_ready`) instead of
        # reaching an adapter mid-start. Adapters handed over started need no waiting.
        self._ready: dict[str, asyncio.Event] = {}
        self.start_wait_seconds = 30.0
        self._spent_since: dict[int, float] = {}
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        queue.add_listener(self._on_change)

    def _on_change(self, state: str) -> None:
        if state in (JobState.GENERATED, JobState.REJECTED, JobState.FAILED, JobState.WITHHELD):
            self._wake.set()

    def expect_start(self, accounts: Iterable[str]) -> None:
        """These accounts' adapters are being started elsewhere: hold their replies until
        `mark_ready`."""
        for account in accounts:
            self._ready.setdefault(account, asyncio.Event())

    def mark_ready(self, account: str) -> None:
        """The adapter of `account` finished `start()`: its replies may go."""
        self._ready.setdefault(account, asyncio.Event()).set()

    async def _started(self, account: str) -> bool:
        ready = self._ready.get(account)
        if ready is None:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=self.start_wait_seconds)
        return ready.is_set()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Post until stopped. Woken at once by this process's own state changes; the poll
        interval covers work that other processes (`fedibot worker`) finished."""
        poll = self.config.replies.poll_seconds
        while not self._stop.is_set():
            self._wake.clear()
            try:
                handled = await self.process_once()
            except Exception:  # e.g. the database restarting: keep going, the queue holds all
                log.exception("reply pass failed; trying again shortly")
                handled = 0
            if handled == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=poll)

    async def process_once(self) -> int:
        lease = self.config.replies.lease_seconds
        rows = await self.queue.claim_replies(
            self.worker_id, limit=self.config.replies.concurrency, lease_seconds=lease
        )
        if rows:
            # A short lease (a crashed replier's jobs come back soon) kept alive while the
            # posts take their time (uploads, media processing, rate-limit waits).
            keepalive = asyncio.ensure_future(self._heartbeat([r.id for r in rows], lease))
            try:
                await asyncio.gather(
                    *(self._handle_safely(row) for row in rows), return_exceptions=True
                )
            finally:
                keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keepalive
        return len(rows)

    async def _heartbeat(self, job_ids: list[int], lease: float) -> None:
        while True:
            await asyncio.sleep(lease / 3)
            try:
                await self.queue.heartbeat(self.worker_id, job_ids, lease)
            except Exception:  # the next beat tries again; the lease covers two misses
                log.warning("reply lease heartbeat failed", exc_info=True)

    async def _handle_safely(self, row: Any) -> None:
        """One job; whatever goes wrong stays with it. A job whose failure could not even be
        recorded (the database is away) comes back when its lease runs out, and PostOnce
        finds what was already posted."""
        try:
            await self._handle(row)
        except asyncio.CancelledError:
            raise
        except Exception:
            metrics.ADAPTER_ERRORS.labels(account=row.bot_account, kind="unexpected").inc()
            log.exception("job %s: handling the reply failed; it returns after its lease", row.id)

    async def _handle(self, row: Any) -> None:
        adapter = self.adapters.get(row.bot_account)
        if adapter is None:
            await self.queue.reply_failed(
                self.worker_id,
                row.id,
                "account_missing",
                f"no adapter for account {row.bot_account!r}",
                retryable=True,
                retry_after=300,
            )
            return
        if not await self._started(row.bot_account):
            await self.queue.reply_failed(
                self.worker_id,
                row.id,
                "account_starting",
                f"account {row.bot_account!r} has not started yet",
                retryable=True,
                retry_after=5,
            )
            return
        try:
            remote = await self._deliver(row, adapter)
        except RemoteGone as err:
            await self.gate.release(row)
            await self.queue.reply_failed(
                self.worker_id, row.id, err.code, str(err), retryable=False, gone=True
            )
        except ReplyForbidden as err:
            # The requester's server or policy does not let the bot answer: nobody is told
            # (an error reply would be refused the same way); the reason stays on the job.
            metrics.ADAPTER_ERRORS.labels(account=row.bot_account, kind="forbidden").inc()
            log.info("job %s: not allowed to reply: %s", row.id, err)
            await self.gate.release(row)
            await self.queue.reply_failed(
                self.worker_id, row.id, err.code, str(err), retryable=False
            )
        except TransientError as err:
            metrics.ADAPTER_ERRORS.labels(account=row.bot_account, kind="transient").inc()
            await self._tell_about_wait(row, adapter, err.retry_after)
            await self.queue.reply_failed(
                self.worker_id,
                row.id,
                err.code,
                str(err),
                retryable=True,
                retry_after=err.retry_after,
                retry_within=getattr(err, "retry_within", None),
            )
        except PermanentError as err:
            metrics.ADAPTER_ERRORS.labels(account=row.bot_account, kind="permanent").inc()
            log.warning("job %s: the server refused the reply: %s", row.id, err)
            await self.gate.release(row)
            await self.queue.reply_failed(
                self.worker_id, row.id, err.code, str(err), retryable=False
            )
        except Exception as err:  # unknown: keep the job, try again later
            metrics.ADAPTER_ERRORS.labels(account=row.bot_account, kind="unexpected").inc()
            log.exception("job %s: posting failed unexpectedly", row.id)
            await self.queue.reply_failed(
                self.worker_id, row.id, "remote_unavailable", repr(err), retryable=True
            )
        else:
            if isinstance(remote, Skipped):
                return
            posted = remote if isinstance(remote, PostResult) else None
            await self.queue.reply_sent(
                self.worker_id,
                row.id,
                posted.remote_id if posted else None,
                posted.url if posted else None,
            )
        finally:
            since = self._spent_since.pop(row.id, None)
            if since is not None:
                with contextlib.suppress(Exception):
                    await self.gate.settle(row, since)

    async def _withheld(self, row: Any, images: list[Any]) -> bool:
        """The output rules: True when the job was withheld for the operator instead."""
        if (row.params or {}).get("operator_decision"):  # an operator already looked
            return False
        policy = self.config.policy
        reason = withhold_reason(
            row.prompt, row.negative_prompt, images, policy.minor_exposure_threshold
        )
        code, reply = MINOR_EXPOSURE, row.kind == "mention"
        if reason is None and row.kind == "mention":  # campaigns regenerate on their own
            reason = held_for_review(images, policy.flagged_images)
            code, reply = FLAGGED_OUTPUT, False  # the operator's decision tells the requester
        if reason is None:
            return False
        log.warning("job %s withheld (%s): %s", row.id, code, reason)
        await self.queue.withhold(self.worker_id, row.id, code, reason, reply=reply)
        return True

    async def _deliver(self, row: Any, adapter: Adapter) -> PostResult | Skipped | None:
        if row.kind == "campaign":
            if self.campaign_poster is None:
                raise TransientError("campaigns are not running in this process", 60)
            images = await self.queue.images(row.id)
            if await self._withheld(row, images):
                return Skipped("withheld")
            async with self._files(row, images) as files:
                return await self.campaign_poster(row, files, adapter)
        mention = mention_from_dict(row.request)
        escape = adapter.escape_text
        if row.state != JobState.REPLYING:  # an error reply for a rejected/failed/withheld job
            post = compose_error(row, mention, escape=escape)
            return await self._post(adapter, post, row, PostKind.ERROR)
        if row.kind == "help":
            post = compose_text(row, mention, self.usage)
            return await self._post(adapter, post, row, PostKind.HELP)
        if row.kind == "delete":
            target = (row.params or {}).get("target_remote_id")
            if target:
                await adapter.delete(str(target))
            return None
        decision = await self.policy.check_requester(mention.author)
        if not decision.allowed:  # the instance or user was denied since the request
            await self.queue.reply_failed(
                self.worker_id, row.id, decision.code, decision.reason, retryable=False
            )
            return Skipped(decision.code)
        if not await adapter.request_exists(mention):
            raise RemoteGone(f"request {mention.remote_id} was deleted before the reply")
        images = await self.queue.images(row.id)
        if await self._withheld(row, images):
            return Skipped("withheld")
        async with self._files(row, images) as files:
            post = compose_result(row, files, mention, self.config, blur=self._blur, escape=escape)
            if not await self.outbound.uploaded(row.id, PostKind.RESULT):
                # grid or not is decided before the first upload and kept for every retry
                gridded = await self.gate.maybe_grid(row, adapter, post)
                if gridded is not post and not (row.params or {}).get("grid"):
                    await self.queue.update_params(row.id, {"grid": True})
                post = gridded
            elif (row.params or {}).get("grid"):
                post = await self.gate.maybe_grid(row, adapter, post)
            return await self._post(adapter, post, row, PostKind.RESULT)

    def _files(self, row: Any, images: list[Any]) -> Any:
        """The job's images from the image store as local files for the adapter (kept for a
        retry when the post fails, removed when it succeeds). An image missing from the
        store is a transient error: the database may be restoring, or a pre-store image
        file is on another machine."""
        cache = Path(self.config.data_dir) / "cache" / "media"
        return _missing_is_transient(materialized(self.queue, row.id, images, cache))

    async def _tell_about_wait(self, row: Any, adapter: Adapter, wait: float | None) -> None:
        """A requester whose images wait on the server's rate limit for long is told, once,
        roughly how long (e.g. Lemmy's default budget is 6 images an hour); if that time
        passes and the images are still held, once more (never a third time)."""
        threshold = self.config.replies.notify_wait_seconds
        params = row.params or {}
        if (
            not threshold
            or wait is None
            or row.kind != "mention"
            or row.state != JobState.REPLYING
            or params.get("wait_followup_sent")
        ):
            return
        now = self.queue.settings.clock()
        promised = params.get("wait_notice_due_at")
        minutes = max(1, round(wait / 60))
        about = f"about {minutes} minute{'s' if minutes != 1 else ''}"
        if not params.get("wait_notice_sent"):
            if wait < threshold:
                return
            text = (
                f"Your images are ready, but this server only lets me post a few per hour. "
                f"They will follow in {about}."
            )
            kind, notes = (
                PostKind.WAIT,
                {"wait_notice_sent": True, "wait_notice_due_at": now + wait},
            )
        elif promised is not None and now >= float(promised) + FOLLOWUP_GRACE_SECONDS:
            text = (
                f"Sorry, your images are taking longer than I said: the server's posting limit "
                f"still holds them. They should follow in {about}."
            )
            kind = PostKind.WAIT_AGAIN
            notes = {"wait_followup_sent": True}
        else:
            return
        mention = mention_from_dict(row.request)
        post = compose_text(row, mention, text)
        try:  # the notice is a courtesy: never let it block the reply
            notice = await self.outbound.send(
                adapter, int(row.id), kind, post, request=_request_visibility(row)
            )
        except Exception as exc:
            log.info("job %s: could not post the wait notice: %s", row.id, exc)
            return
        with contextlib.suppress(Exception):
            await self.gate.record(row, adapter, post)
        key = "wait_notice_id" if kind == PostKind.WAIT else "wait_followup_id"
        await self.queue.update_params(row.id, {**notes, key: notice.remote_id})

    async def _post(self, adapter: Adapter, post: OutgoingPost, row: Any, kind: str) -> PostResult:
        async def spend_budget() -> None:  # only when it really goes out (not when found)
            since = await self.gate.acquire(row, adapter, post)
            if since is not None:  # dated once the reply is recorded (nothing in between)
                self._spent_since[row.id] = since

        return await self.outbound.send(
            adapter,
            int(row.id),
            kind,
            post,
            request=_request_visibility(row),
            # a job whose earlier tries predate the outbound table: look on the server first
            maybe_posted=row.reply_attempts > 1 and kind not in NOTICE_KINDS,
            before_post=spend_budget,
        )

    def _blur(self, path: Any) -> Any:
        from fedibot.moderation.policy import blur_image

        return blur_image(path)


def _request_visibility(row: Any) -> Visibility | None:
    """The visibility of the request a job answers (replies are never wider than it)."""
    value = (row.request or {}).get("visibility")
    return Visibility(value) if value else None


@contextlib.asynccontextmanager
async def _missing_is_transient(files: Any) -> AsyncIterator[list[Any]]:
    try:
        async with files as out:
            yield out
    except MissingImage as exc:
        raise TransientError(str(exc), 300) from exc
