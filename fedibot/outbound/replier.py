"""Posting what the queue has ready: results, error replies, help, deletions, campaign posts.

Every post carries an idempotency key derived from the job id; after a crash in `replying`
the adapter is asked for an earlier reply first, so a reply is never posted twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from federation.base import Adapter
from federation.errors import PermanentError, RemoteGone, TransientError
from federation.types import OutgoingPost, PostResult
from fedibot.config.loader import FedibotConfig
from fedibot.intake.mention_codec import mention_from_dict
from fedibot.moderation.policy import Policy
from fedibot.ops import metrics
from fedibot.outbound.compose import compose_error, compose_result, compose_text
from fedibot.queue.jobs import JobQueue
from fedibot.storage.images import MissingImage, materialized
from fedibot.storage.models import JobState

log = logging.getLogger("fedibot.outbound.replier")

CampaignPoster = Callable[[Any, list[Any], Adapter], Any]


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
    ) -> None:
        self.queue = queue
        self.adapters = adapters
        self.policy = policy
        self.config = config
        self.usage = usage
        self.worker_id = worker_id
        self.campaign_poster = campaign_poster
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        queue.add_listener(self._on_change)

    def _on_change(self, state: str) -> None:
        if state in (JobState.GENERATED, JobState.REJECTED, JobState.FAILED):
            self._wake.set()

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
                await asyncio.gather(*(self._handle(row) for row in rows))
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
        try:
            remote = await self._deliver(row, adapter)
        except RemoteGone as err:
            await self.queue.reply_failed(
                self.worker_id, row.id, err.code, str(err), retryable=False, gone=True
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
            )
        except PermanentError as err:
            metrics.ADAPTER_ERRORS.labels(account=row.bot_account, kind="permanent").inc()
            log.warning("job %s: the server refused the reply: %s", row.id, err)
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
            if remote is _SKIPPED:
                return
            await self.queue.reply_sent(
                self.worker_id,
                row.id,
                remote.remote_id if remote else None,
                remote.url if remote else None,
            )

    async def _deliver(self, row: Any, adapter: Adapter) -> PostResult | object | None:
        if row.kind == "campaign":
            if self.campaign_poster is None:
                raise TransientError("campaigns are not running in this process", 60)
            images = await self.queue.images(row.id)
            async with self._files(row, images) as files:
                return await self.campaign_poster(row, files, adapter)
        mention = mention_from_dict(row.request)
        if row.state != JobState.REPLYING:  # an error reply for a rejected/failed job
            return await self._post(adapter, compose_error(row, mention), row)
        if row.kind == "help":
            return await self._post(adapter, compose_text(row, mention, self.usage), row)
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
            return _SKIPPED
        if not await adapter.request_exists(mention):
            raise RemoteGone(f"request {mention.remote_id} was deleted before the reply")
        images = await self.queue.images(row.id)
        async with self._files(row, images) as files:
            post = compose_result(row, files, mention, self.config, blur=self._blur)
            return await self._post(adapter, post, row)

    def _files(self, row: Any, images: list[Any]) -> Any:
        """The job's images from the image store as local files for the adapter (kept for a
        retry when the post fails, removed when it succeeds). An image missing from the
        store is a transient error: the database may be restoring, or a pre-store image
        file is on another machine."""
        cache = Path(self.config.data_dir) / "cache" / "media"
        return _missing_is_transient(materialized(self.queue, row.id, images, cache))

    async def _tell_about_wait(self, row: Any, adapter: Adapter, wait: float | None) -> None:
        """A requester whose images wait on the server's rate limit for long is told, once,
        roughly how long (e.g. Lemmy's default budget is 6 images an hour)."""
        threshold = self.config.replies.notify_wait_seconds
        if (
            not threshold
            or wait is None
            or wait < threshold
            or row.kind != "mention"
            or row.state != JobState.REPLYING
            or (row.params or {}).get("wait_notice_sent")
        ):
            return
        mention = mention_from_dict(row.request)
        minutes = max(1, round(wait / 60))
        text = (
            f"Your images are ready, but this server only lets me post a few per hour. "
            f"They will follow in about {minutes} minute{'s' if minutes != 1 else ''}."
        )
        post = compose_text(row, mention, text)
        post = dataclasses.replace(post, idempotency_key=f"fedibot-job-{row.id}-wait")
        try:
            notice = await adapter.post(post)
        except Exception as exc:  # the notice is a courtesy: never let it block the reply
            log.info("job %s: could not post the wait notice: %s", row.id, exc)
            return
        await self.queue.update_params(
            row.id, {"wait_notice_sent": True, "wait_notice_id": notice.remote_id}
        )

    async def _post(self, adapter: Adapter, post: OutgoingPost, row: Any) -> PostResult:
        if row.reply_attempts > 1:  # we may have posted before crashing: look first
            existing = await adapter.find_existing_reply(post)
            notice_id = (row.params or {}).get("wait_notice_id")
            if existing is not None and existing.remote_id != notice_id:
                log.info("job %s: found the reply posted before a restart", row.id)
                return existing
        return await adapter.post(post)

    def _blur(self, path: Any) -> Any:
        from fedibot.moderation.policy import blur_image

        return blur_image(path)


_SKIPPED = object()


@contextlib.asynccontextmanager
async def _missing_is_transient(files: Any) -> AsyncIterator[list[Any]]:
    try:
        async with files as out:
            yield out
    except MissingImage as exc:
        raise TransientError(str(exc), 300) from exc
