"""Campaign runs: schedule them, enqueue each due run once, post what the queue generated.

A run is identified by (campaign, scheduled time): its job's remote id is
`campaign:<name>:<epoch>` (idempotent in the queue) and its `campaign_runs` row is unique on
the pair, so neither a restart nor a second scheduler ever enqueues a run twice.

Which runs are due (`run_due`, also the start-up catch-up): every run time after the newest
recorded one, up to now. A run late by at most `misfire_grace_seconds` is enqueued; older ones
are recorded `skipped`, as are runs that fell due while the campaign was paused. A campaign
with no recorded run starts with its newest run time, if that is within the grace.

Posting goes through the replier (`App._post_campaign` → `post`) and `PostOnce`: a new
status, or with `thread = true` a reply to the previous run's status, posted strictly in run
order, never twice (docs/outbound.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from federation.errors import PermanentError, RemoteGone, TransientError
from federation.types import PostResult
from fedibot.campaigns import schedule as sched
from fedibot.campaigns.options import resolve_options
from fedibot.campaigns.prompts import choose_prompt, derived_seed, render_text
from fedibot.campaigns.store import MANUAL, CampaignStore, RunStatus
from fedibot.config.campaigns import CampaignConfig
from fedibot.intake.grammar import PromptError
from fedibot.outbound.compose import compose_campaign
from fedibot.outbound.post_once import PostKind, PostOnce
from fedibot.queue.jobs import JobQueue, NewJob
from fedibot.storage.database import Database
from fedibot.storage.images import DB_PREFIX, materialized
from fedibot.storage.models import JobState

if TYPE_CHECKING:
    from federation.base import Adapter
    from fedibot.config.loader import FedibotConfig

log = logging.getLogger("fedibot.campaigns")

CATCH_UP_WINDOW = 86400.0
"""Missed runs older than this (bot down for days) are not listed one by one."""
THREAD_WAIT_SECONDS = 60.0


class OutputWithheld(PermanentError):
    """Every image of the run was withheld by the safety check: nothing to post."""

    code = "output_flagged"


@dataclass(frozen=True)
class RunOutcome:
    """What `run_due`/`catch_up`/`run_now` did with one run time."""

    campaign: str
    scheduled_at: float
    status: str  # enqueued | skipped | failed
    job_id: int | None = None
    note: str = ""


class CampaignManager:
    """All campaigns of one config. Safe to create in every process; scheduling is done by the
    process that calls `schedule` (`fedibot run`)."""

    def __init__(
        self,
        config: FedibotConfig,
        queue: JobQueue,
        db: Database,
        clock: Callable[[], float] = time.time,
        outbound: PostOnce | None = None,
    ) -> None:
        self.config = config
        self.queue = queue
        self.store = CampaignStore(db)
        self.clock = clock
        self.outbound = outbound or PostOnce(db, clock)
        self.campaigns = {c.name: c for c in config.campaigns}
        self._due_locks: dict[str, asyncio.Lock] = {}
        self._thread_conditions: dict[str, asyncio.Condition] = {}

    def campaign(self, name: str) -> CampaignConfig:
        try:
            return self.campaigns[name]
        except KeyError:
            known = ", ".join(sorted(self.campaigns)) or "(none configured)"
            raise KeyError(f"no campaign named {name!r}; known: {known}") from None

    # ------------------------------------------------------------------ scheduling
    def schedule(self, scheduler: Any) -> None:
        """One APScheduler job per enabled campaign, plus a catch-up right at start.

        Paused campaigns keep their job: pause/resume is read from the database at every fire
        (the CLI changes it from another process), and a paused run is recorded as skipped.
        """
        scheduler.add_job(
            self._catch_up_job, id="campaigns-catch-up", max_instances=1, coalesce=True
        )
        for campaign in self.campaigns.values():
            if not campaign.enabled:
                continue
            scheduler.add_job(
                self._fire,
                sched.trigger_for(campaign),
                args=[campaign.name],
                id=f"campaign:{campaign.name}",
                name=f"campaign {campaign.name}",
                misfire_grace_time=max(1, int(campaign.misfire_grace_seconds)),
                coalesce=True,
                max_instances=1,
                replace_existing=True,
            )

    async def _catch_up_job(self) -> None:
        try:
            await self.catch_up(self.clock())
        except Exception:
            log.exception("campaign catch-up failed")

    async def _fire(self, name: str) -> None:
        try:
            await self.run_due(self.clock(), names=[name])
        except Exception:
            log.exception("campaign %s: enqueueing the due run failed", name)

    # ------------------------------------------------------------------ due runs
    async def catch_up(self, now: float) -> list[RunOutcome]:
        """At start: settle runs whose job ended while nobody watched, then handle the runs
        missed while the bot was down (grace rule)."""
        await self.store.reconcile(now)
        return await self.run_due(now)

    async def run_due(self, now: float, names: Iterable[str] | None = None) -> list[RunOutcome]:
        """Enqueue every due run not recorded yet; record the ones too late or paused."""
        outcomes: list[RunOutcome] = []
        chosen = list(names) if names is not None else list(self.campaigns)
        for name in chosen:
            campaign = self.campaigns.get(name)
            if campaign is None or not campaign.enabled:
                continue
            lock = self._due_locks.setdefault(name, asyncio.Lock())
            async with lock:
                outcomes += await self._run_due(campaign, now)
        return outcomes

    async def _run_due(self, campaign: CampaignConfig, now: float) -> list[RunOutcome]:
        name, grace = campaign.name, campaign.misfire_grace_seconds
        since = await self.store.frontier(name)
        if since is None:  # first run ever: only the newest run time, if not too late
            latest = sched.latest_fire(campaign, now, max(grace, 0.0) + 0.001)
            due = [latest] if latest is not None else []
        else:
            start = max(since, now - max(CATCH_UP_WINDOW, grace))
            due = list(sched.fire_times(campaign, start, now))
        if not due:
            return []
        state = await self.store.state(name)
        if state is not None and state.paused:
            await self.store.record_skipped(name, due, "paused", now)
            return [RunOutcome(name, t, RunStatus.SKIPPED, note="paused") for t in due]
        outcomes = []
        late = [t for t in due if now - t > grace]
        if late:
            note = f"missed by more than the {grace:g}s grace (the bot was not running)"
            await self.store.record_skipped(name, late, note, now)
            log.warning("campaign %s: %d run(s) missed and skipped", name, len(late))
            outcomes += [RunOutcome(name, t, RunStatus.SKIPPED, note=note) for t in late]
        for t in due:
            if now - t <= grace:
                outcomes.append(await self._enqueue(campaign, t, now))
        return outcomes

    async def run_now(self, name: str, now: float | None = None) -> RunOutcome:
        """An extra run outside the schedule (`fedibot campaigns run NAME`)."""
        campaign = self.campaign(name)
        return await self._enqueue(campaign, float(int(now or self.clock())), now, manual=True)

    async def _enqueue(
        self, campaign: CampaignConfig, at: float, now: float | None, *, manual: bool = False
    ) -> RunOutcome:
        now = self.clock() if now is None else now
        state = await self.store.state(campaign.name)
        index = int(state.prompt_index) if state is not None else 0
        try:
            job = self.build_job(campaign, at, index, manual=manual)
        except PromptError as err:  # e.g. a template value that makes the prompt too long
            note = f"{err.code}: {err.message}"
            await self.store.mark_failed(campaign.name, at, None, note, now, manual=manual)
            return RunOutcome(campaign.name, at, RunStatus.FAILED, note=note)
        result = await self.queue.enqueue(job)
        await self.store.record_enqueued(
            campaign.name,
            at,
            result.job_id,
            now,
            manual=manual,
            advance_index=campaign.order == "sequential",
        )
        log.info("campaign %s: run %s queued as job %s", campaign.name, int(at), result.job_id)
        return RunOutcome(campaign.name, at, RunStatus.ENQUEUED, result.job_id)

    def build_job(
        self, campaign: CampaignConfig, at: float, index: int, *, manual: bool = False
    ) -> NewJob:
        """The queue job of one run (pure: the same inputs give the same job)."""
        prompt = choose_prompt(campaign, index, at)
        options = resolve_options(
            self.config, campaign, prompt, seed=derived_seed(campaign.name, at)
        )
        account = self.config.account(campaign.account)
        remote_id = f"campaign:{campaign.name}:{'manual:' if manual else ''}{int(at)}"
        params = {
            "campaign": campaign.name,
            "scheduled_at": at,
            "manual": manual,
            "round": 1,
            "max_rounds": campaign.max_attempts or self.config.queue.max_attempts,
            "thread": campaign.thread,
            "text": render_text(campaign, options.prompt, at),
            "spoiler_text": campaign.spoiler_text,
            "language": campaign.language,
            "alt_text": campaign.alt_text or self.config.replies.alt_text,
            "options": dataclasses.asdict(options),
        }
        return NewJob(
            kind="campaign",
            platform=account.platform,
            bot_account=account.name,
            remote_id=remote_id,
            requester=f"campaign:{campaign.name}",
            prompt=options.prompt,
            negative_prompt=options.negative_prompt,
            model=options.model,
            width=options.width,
            height=options.height,
            steps=options.steps,
            guidance=options.guidance,
            n=options.n,
            seed=options.seed,
            visibility=campaign.visibility,
            params=params,
            max_attempts=campaign.max_attempts,
        )

    # ------------------------------------------------------------------ posting
    async def post(self, row: Any, images: list[Any], adapter: Adapter) -> PostResult | None:
        """Post one generated run (the replier calls this for `campaign` jobs).

        A job that failed generation arrives here too (its error "reply"): the run is recorded
        failed and nothing is posted; the replier then just closes the job. Images still in
        the image store (`db:` locations) are written to local files first.
        """
        if any(str(getattr(image, "path", "")).startswith(DB_PREFIX) for image in images):
            cache = Path(self.config.data_dir) / "cache" / "media"
            async with materialized(self.queue, int(row.id), images, cache) as files:
                return await self.post(row, files, adapter)
        params = dict(row.params or {})
        name = str(params.get("campaign") or str(row.requester).removeprefix("campaign:"))
        at = float(params.get("scheduled_at") or 0.0)
        manual = bool(params.get("manual"))
        condition = self._thread_conditions.setdefault(name, asyncio.Condition())
        if row.state != JobState.REPLYING:
            note = f"{row.error_code or row.state}: {row.error_message or ''}".strip()
            await self.store.mark_failed(name, at, int(row.id), note, self.clock(), manual=manual)
            log.warning("campaign %s: run %s failed: %s", name, int(at), note)
            async with condition:  # a later thread part may be waiting for this one
                condition.notify_all()
            return None
        done = await self._posted_before(name, at, row)
        if done is not None:  # posted, then the process died before the job was closed
            return done
        action = self.config.policy.flagged_images
        if images and action == "withhold" and all(image.flagged for image in images):
            await self._all_withheld(row, params, name, at, manual)
        async with condition:
            try:
                result = await self._post_in_order(condition, row, images, adapter, name, at)
                await self.store.mark_posted(
                    name,
                    at,
                    int(row.id),
                    result.remote_id,
                    result.url,
                    self.clock(),
                    manual=manual,
                )
            finally:  # wake later thread parts waiting for this one, posted or not
                condition.notify_all()
        log.info("campaign %s: run %s posted as %s", name, int(at), result.remote_id)
        return result

    async def _post_in_order(
        self,
        condition: asyncio.Condition,
        row: Any,
        images: list[Any],
        adapter: Adapter,
        name: str,
        at: float,
    ) -> PostResult:
        """Send the post; in a thread, after the earlier runs and as a reply to the last."""
        in_reply_to = None
        if (row.params or {}).get("thread"):
            await self._wait_for_earlier_parts(condition, row, name, at)
            state = await self.store.state(name)
            in_reply_to = state.last_status_id if state is not None else None
        try:
            return await self._send(row, images, adapter, in_reply_to)
        except RemoteGone:
            if in_reply_to is None:
                raise
            log.warning("campaign %s: status %s is gone; starting a new thread", name, in_reply_to)
            return await self._send(row, images, adapter, None)

    async def _posted_before(self, name: str, at: float, row: Any) -> PostResult | None:
        run = await self.store.run(name, at)
        if run is None or run.status != RunStatus.POSTED or run.job_id != row.id:
            return None
        remote_id, _, url = run.note.removeprefix(f"{MANUAL}: ").partition(" ")
        return PostResult(remote_id=remote_id, url=url or None)

    async def _send(
        self, row: Any, images: list[Any], adapter: Adapter, in_reply_to: str | None
    ) -> PostResult:
        from fedibot.moderation.policy import blur_image

        post = compose_campaign(
            row,
            images,
            in_reply_to,
            flagged_images=self.config.policy.flagged_images,
            flagged_spoiler_text=self.config.policy.flagged_spoiler_text,
            blur=blur_image,
        )
        # through the one way out: recorded first, looked for on every retry (a run posted
        # just before a crash is found among the bot's statuses by its recorded uploads)
        return await self.outbound.send(adapter, int(row.id), PostKind.CAMPAIGN, post)

    async def _wait_for_earlier_parts(
        self, condition: asyncio.Condition, row: Any, name: str, at: float
    ) -> None:
        """Thread order: wait while this replier posts an earlier run; if an earlier run is not
        ready yet (still generating), come back later."""
        while True:
            earlier = await self.store.earlier_pending(name, at)
            if earlier is None:
                return
            posting_here = (
                earlier.state == JobState.REPLYING and earlier.lease_owner == row.lease_owner
            )
            if not posting_here:
                raise TransientError(
                    f"campaign {name}: waiting for the earlier run {int(earlier.scheduled_at)} "
                    "of the thread",
                    retry_after=30.0,
                )
            try:
                await asyncio.wait_for(condition.wait(), THREAD_WAIT_SECONDS)
            except TimeoutError:
                raise TransientError(
                    f"campaign {name}: the earlier run of the thread is slow to post", 30.0
                ) from None

    async def _all_withheld(
        self, row: Any, params: dict[str, Any], name: str, at: float, manual: bool
    ) -> None:
        """Every image was flagged and the policy withholds them: generate the run again with
        new seeds (up to `max_attempts` rounds), else record it failed. Never posts."""
        round_ = int(params.get("round") or 1)
        rounds = int(params.get("max_rounds") or 1)
        now = self.clock()
        if round_ >= rounds:
            note = f"every image was flagged by the safety check ({round_} rounds)"
            await self.store.mark_failed(name, at, int(row.id), note, now, manual=manual)
            raise OutputWithheld(f"campaign {name}: {note}")
        retry = NewJob(
            kind="campaign",
            platform=row.platform,
            bot_account=row.bot_account,
            remote_id=f"{row.remote_id.split('#')[0]}#{round_ + 1}",
            requester=row.requester,
            prompt=row.prompt,
            negative_prompt=row.negative_prompt,
            model=row.model,
            width=row.width,
            height=row.height,
            steps=row.steps,
            guidance=row.guidance,
            n=row.n,
            seed=(int(row.seed) + int(row.n) * round_) % 2**32,
            visibility=row.visibility,
            params={**params, "round": round_ + 1},
            max_attempts=int(row.max_attempts),
        )
        result = await self.queue.enqueue(retry)
        await self.store.replace_job(
            name,
            at,
            result.job_id,
            f"{MANUAL}: " * manual + f"round {round_ + 1}: every image of job {row.id} was flagged",
        )
        raise OutputWithheld(
            f"campaign {name}: every image was flagged; generating again as job {result.job_id}"
        )

    # ------------------------------------------------------------------ reading
    def next_run(self, name: str, now: float) -> float | None:
        campaign = self.campaign(name)
        return sched.next_fire(campaign, now) if campaign.enabled else None

    async def overview(self, now: float) -> list[dict[str, Any]]:
        """What `campaigns list` shows, one dict per configured campaign."""
        await self.store.reconcile(now)
        states = await self.store.states()
        last = await self.store.last_runs()
        out = []
        for name, campaign in self.campaigns.items():
            state = states.get(name)
            paused = bool(state.paused) if state is not None else False
            next_at = self.next_run(name, now)
            run = last.get(name)
            out.append(
                {
                    "name": name,
                    "account": campaign.account,
                    "schedule": campaign.schedule_text,
                    "enabled": campaign.enabled,
                    "paused": paused,
                    "thread": campaign.thread,
                    "next_run": iso(campaign, next_at) if next_at and not paused else None,
                    "last_run": None
                    if run is None
                    else {
                        "scheduled_at": iso(campaign, run.scheduled_at),
                        "status": run.status,
                        "note": run.note,
                    },
                    "last_status_id": state.last_status_id if state is not None else None,
                }
            )
        return out


def iso(campaign: CampaignConfig, epoch: float) -> str:
    return sched.local_time(campaign, epoch).isoformat()
