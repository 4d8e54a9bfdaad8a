"""Campaign runs end to end: controlled clock → queue → tiny generator → replier → FakeMastodon
through the real MastodonAdapter, on a SQLite file shared across restarts."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from fedibot.campaigns.manager import CampaignManager
from generator.types import GENERATION_FAILED, GenerationError, SafetyResult
from tests.campaigns.conftest import T0, campaign

MINUTE = 60.0


def runs_by_time(records: list[Any]) -> dict[int, str]:
    return {int(r.scheduled_at - T0): r.status for r in records}


async def test_every_minute_for_ten_minutes_posts_ten_times(make_config, bots, fake):
    bot = await bots(make_config())
    for minute in range(10):
        outcomes = await bot.tick(T0 + minute * MINUTE + 1)
        assert [o.status for o in outcomes] == ["enqueued"]

    assert len(fake.posted_statuses) == 10
    assert isinstance(bot.campaigns, CampaignManager)
    prompts = ["a red fox", "a fox in the snow", "a sleeping fox"]
    for i, (status, params) in enumerate(zip(fake.posted_statuses, fake.post_params, strict=True)):
        assert status["visibility"] == "public"
        assert status["in_reply_to_id"] is None
        assert prompts[i % 3] in status["content"] and "#foxes" in params["status"]
        assert len(status["media_attachments"]) == 1
        alt = status["media_attachments"][0]["description"]
        assert alt.startswith("AI-generated image. Prompt: " + prompts[i % 3])
    keys = [p["idempotency_key"] for p in fake.post_params]
    assert len(set(keys)) == 10
    history = await bot.campaigns.store.history("fox")
    assert runs_by_time(history) == {m * 60: "posted" for m in range(10)}
    # asking again at the same instant finds nothing new to do
    assert await bot.campaigns.run_due(T0 + 9 * MINUTE + 1) == []


async def test_restart_in_the_middle_posts_no_run_twice_and_applies_the_grace_rule(
    make_config, bots, fake, clock
):
    config = make_config(campaign(misfire_grace_seconds=120))
    first = await bots(config)
    for minute in range(4):
        await first.tick(T0 + minute * MINUTE + 1)
    assert len(fake.posted_statuses) == 4
    # minute 4 is queued and generated, then the process dies before posting it
    clock.now = T0 + 4 * MINUTE + 1
    await first.campaigns.run_due(clock.now)
    await first.generate()
    await first.crash()

    # Down until 9:30. Late by 270, 210, 150 s (> 120 s grace): skipped; 90 and 30 s: posted.
    second = await bots(config)
    outcomes = await second.tick(T0 + 9 * MINUTE + 30, catch_up=True)
    assert {int(o.scheduled_at - T0): o.status for o in outcomes} == {
        300: "skipped",
        360: "skipped",
        420: "skipped",
        480: "enqueued",
        540: "enqueued",
    }
    assert len(fake.posted_statuses) == 7  # 0-3, the generated minute 4, then 8 and 9
    history = runs_by_time(await second.campaigns.store.history("fox"))
    assert history == {
        0: "posted",
        60: "posted",
        120: "posted",
        180: "posted",
        240: "posted",
        300: "skipped",
        360: "skipped",
        420: "skipped",
        480: "posted",
        540: "posted",
    }
    skipped = [r for r in await second.campaigns.store.history("fox") if r.status == "skipped"]
    assert all("grace" in r.note and r.job_id is None for r in skipped)

    # A second restart at the same moment, and a second scheduler asking again: nothing new.
    await second.crash()
    third = await bots(config)
    assert await third.tick(T0 + 9 * MINUTE + 35, catch_up=True) == []
    assert await third.campaigns.run_due(T0 + 9 * MINUTE + 40) == []
    assert len(fake.posted_statuses) == 7
    stats = await third.app.queue.stats()
    assert stats["done"] == 7 and stats["queued"] == 0

    await third.tick(T0 + 10 * MINUTE + 1)  # and the schedule simply goes on
    assert len(fake.posted_statuses) == 8
    keys = [p["idempotency_key"] for p in fake.post_params]
    assert len(keys) == len(set(keys))


async def test_thread_mode_chains_in_reply_to_across_runs_and_restarts(make_config, bots, fake):
    config = make_config(campaign(thread=True, misfire_grace_seconds=300))
    first = await bots(config)
    await first.tick(T0 + 1)
    await first.tick(T0 + MINUTE + 1)
    await first.crash()

    # Three runs fall due while down (all within grace): generated together, posted
    # concurrently by the replier, and still chained in run order.
    second = await bots(config)
    await second.tick(T0 + 4 * MINUTE + 10, catch_up=True)
    posted = fake.posted_statuses
    assert len(posted) == 5
    assert posted[0]["in_reply_to_id"] is None
    for parent, child in itertools.pairwise(posted):
        assert child["in_reply_to_id"] == parent["id"]
    order = [s["content"] for s in posted]
    prompts = ["a red fox", "a fox in the snow", "a sleeping fox"]
    assert [next(p for p in prompts if p in c) for c in order] == [prompts[i % 3] for i in range(5)]
    state = await second.campaigns.store.state("fox")
    assert state.last_status_id == posted[-1]["id"]


async def test_thread_starts_again_when_the_previous_post_was_deleted(make_config, bots, fake):
    bot = await bots(make_config(campaign(thread=True)))
    await bot.tick(T0 + 1)
    fake.delete_status(fake.posted_statuses[0]["id"], push=False)
    await bot.tick(T0 + MINUTE + 1)
    assert len(fake.posted_statuses) == 2
    assert fake.posted_statuses[1]["in_reply_to_id"] is None
    await bot.tick(T0 + 2 * MINUTE + 1)
    assert fake.posted_statuses[2]["in_reply_to_id"] == fake.posted_statuses[1]["id"]


class FailingFor:
    """The real service, except that jobs whose prompt contains `word` fail (retryably)."""

    def __init__(self, real: Any, word: str) -> None:
        self.real = real
        self.word = word
        self.failed: list[int] = []

    def generate(self, requests: list[Any], progress: Any = None) -> list[Any]:
        results = self.real.generate(requests, progress)
        out = []
        for request, result in zip(requests, results, strict=True):
            if self.word in request.prompt:
                self.failed.append(request.job_id)
                result = GenerationError(GENERATION_FAILED, "the GPU fell over", retryable=True)
            out.append(result)
        return out


async def test_a_failing_generation_is_retried_then_recorded_failed_and_never_posted(
    make_config, bots, fake, clock, service
):
    config = make_config(
        campaign(prompts=["a cursed fox"], max_attempts=3), campaign(name="ok", prompts=["a cat"])
    )
    failing = FailingFor(service, "cursed")
    bot = await bots(config, failing)
    await bot.tick(T0 + 1)
    assert len(failing.failed) == 1
    for step in range(1, 4):  # past each retry's backoff (retry_max_seconds = 2)
        clock.now = T0 + 1 + 3 * step
        await bot.generate()
        await bot.reply()

    assert len(set(failing.failed)) == 1 and len(failing.failed) == 3  # max_attempts
    assert [s["content"] for s in fake.posted_statuses] == [
        s["content"] for s in fake.posted_statuses if "a cat" in s["content"]
    ]
    assert len(fake.posted_statuses) == 1  # only the other campaign's run
    (run,) = await bot.campaigns.store.history("fox")
    assert run.status == "failed" and run.job_state == "failed" and run.attempts == 3
    assert "generation_failed" in run.note
    job = await bot.app.queue.get(run.job_id)
    assert job.reply_remote_id is None


class FlagAll:
    name = "flag-all"

    def classify(self, image: Any) -> SafetyResult:
        return SafetyResult(labels={"FEMALE_BREAST_EXPOSED": 0.9}, flagged=True, classifier="x")


def flagging(service: Any) -> Any:
    from generator.service import GeneratorService

    return GeneratorService(service.config, backend=service.backend, classifier=FlagAll())


@pytest.mark.parametrize("action", ["sensitive", "blur"])
async def test_flagged_images_are_posted_sensitive_behind_a_content_warning(
    make_config, bots, fake, service, action
):
    config = make_config(campaign(spoiler_text="foxes"), policy={"flagged_images": action})
    bot = await bots(config, flagging(service))
    await bot.tick(T0 + 1)
    (status,) = fake.posted_statuses
    assert status["sensitive"] is True
    assert status["spoiler_text"] == "foxes; AI image, may contain nudity"
    assert len(status["media_attachments"]) == 1
    (image,) = await bot.app.queue.images(1)
    assert image.flagged
    stored = (await bot.app.queue.image_bytes(1, [image]))[image.index]
    (media,) = [m for m in fake.media.values() if m.status_id == status["id"]]
    assert (media.size == len(stored)) == (action != "blur")  # blur posts a blurred copy


async def test_withheld_runs_are_generated_again_then_recorded_failed_never_posted(
    make_config, bots, fake, service
):
    config = make_config(campaign(max_attempts=2), policy={"flagged_images": "withhold"})
    bot = await bots(config, flagging(service))
    await bot.tick(T0 + 1)  # round 1: all flagged → a second job
    await bot.generate()
    await bot.reply()  # round 2: all flagged again → failed
    assert fake.posted_statuses == []
    assert fake.media == {}
    (run,) = await bot.campaigns.store.history("fox")
    assert run.status == "failed" and "flagged" in run.note
    jobs = await bot.app.queue.list_jobs()
    assert [(j.state, j.error_code) for j in jobs] == [("failed", "output_flagged")] * 2
    assert len({j.seed for j in jobs}) == 2  # the second round used new seeds


async def test_a_paused_campaign_records_skipped_runs_and_resumes(make_config, bots, fake):
    bot = await bots(make_config())
    await bot.tick(T0 + 1)
    assert await bot.campaigns.store.set_paused("fox", True, T0 + 2)
    await bot.tick(T0 + MINUTE + 1)
    await bot.tick(T0 + 2 * MINUTE + 1)
    assert len(fake.posted_statuses) == 1
    assert await bot.campaigns.store.set_paused("fox", False, T0 + 150)
    await bot.tick(T0 + 3 * MINUTE + 1)
    assert len(fake.posted_statuses) == 2
    history = await bot.campaigns.store.history("fox")
    assert runs_by_time(history) == {0: "posted", 60: "skipped", 120: "skipped", 180: "posted"}
    assert {r.note for r in history if r.status == "skipped"} == {"paused"}


async def test_a_new_campaign_starts_with_its_latest_run_only(make_config, bots, fake):
    bot = await bots(make_config(campaign(misfire_grace_seconds=600)))
    outcomes = await bot.tick(T0 + 5 * MINUTE + 20)
    assert [(o.scheduled_at, o.status) for o in outcomes] == [(T0 + 5 * MINUTE, "enqueued")]
    assert len(fake.posted_statuses) == 1


async def test_schedule_adds_one_coalescing_job_per_enabled_campaign(make_config, bots, clock):
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    config = make_config(
        campaign(cron="0 9 * * 1-5", timezone="Europe/Berlin", misfire_grace_seconds=600),
        campaign(name="often", cron=None, every="6h"),
        campaign(name="off", enabled=False),
    )
    bot = await bots(config)
    scheduler = AsyncIOScheduler(timezone="UTC")
    bot.campaigns.schedule(scheduler)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"campaigns-catch-up", "campaign:fox", "campaign:often"}
    fox = jobs["campaign:fox"]
    assert isinstance(fox.trigger, CronTrigger) and str(fox.trigger.timezone) == "Europe/Berlin"
    assert (fox.misfire_grace_time, fox.coalesce, fox.max_instances) == (600, True, 1)
    assert isinstance(jobs["campaign:often"].trigger, IntervalTrigger)

    # What the job does when it fires: Monday 2030-01-07 09:00 Berlin = 08:00 UTC.
    clock.now = T0 + 8 * 3600 + 2
    await fox.func(*fox.args)
    (run,) = await bot.campaigns.store.history("fox")
    assert (run.scheduled_at, run.status) == (T0 + 8 * 3600, "enqueued")


async def test_thread_posts_keep_run_order_when_the_later_run_is_posted_first(
    make_config, bots, fake, clock
):
    import asyncio

    bot = await bots(make_config(campaign(thread=True)))
    for at in (T0 + 1, T0 + MINUTE + 1):
        clock.now = at
        await bot.campaigns.run_due(at)
    await bot.generate()
    rows = await bot.app.queue.claim_replies("one-replier", limit=10)
    assert len(rows) == 2
    images = [await bot.app.queue.images(row.id) for row in rows]
    later = asyncio.ensure_future(bot.campaigns.post(rows[1], images[1], bot.adapter))

    async def later_is_waiting() -> None:  # in post() first, it waits for the earlier run
        while not bot.campaigns._thread_conditions.get("fox") or not (
            bot.campaigns._thread_conditions["fox"]._waiters
        ):
            await asyncio.sleep(0.01)

    await asyncio.wait_for(later_is_waiting(), 60)
    assert not later.done() and fake.posted_statuses == []
    first = await bot.campaigns.post(rows[0], images[0], bot.adapter)
    second = await asyncio.wait_for(later, 60)
    assert [s["id"] for s in fake.posted_statuses] == [first.remote_id, second.remote_id]
    assert fake.posted_statuses[1]["in_reply_to_id"] == first.remote_id


async def test_a_thread_run_waits_for_an_earlier_run_still_generating(make_config, bots, fake):
    from federation.errors import TransientError

    bot = await bots(make_config(campaign(thread=True)))
    await bot.campaigns.run_due(T0 + 1)
    await bot.campaigns.run_due(T0 + MINUTE + 1)
    jobs = sorted(await bot.app.queue.list_jobs(), key=lambda j: j.id)
    # only the later job gets generated: claim it alone and complete it through the worker path
    await bot.app.queue.cancel(jobs[0].id, "held back by the test")
    await bot.generate()
    await bot.app.queue.retry(jobs[0].id)
    (row,) = await bot.app.queue.claim_replies("one-replier", limit=10)
    assert row.id == jobs[1].id
    with pytest.raises(TransientError, match="earlier run"):
        await bot.campaigns.post(row, await bot.app.queue.images(row.id), bot.adapter)
    assert fake.posted_statuses == []


async def test_a_run_posted_just_before_a_crash_is_not_posted_again(make_config, bots, fake, clock):
    config = make_config(campaign(thread=True))
    first = await bots(config)
    clock.now = T0 + 1
    await first.campaigns.run_due(clock.now)
    await first.generate()
    (row,) = await first.app.queue.claim_replies("dying-replier", limit=10)
    posted = await first.campaigns.post(row, await first.app.queue.images(row.id), first.adapter)
    await first.crash()  # before the replier could mark the job done

    second = await bots(config)
    clock.now = T0 + 340  # the replier's lease (300 s) is gone at the next restart
    assert await second.app.queue.requeue_expired() == 1
    assert await second.reply() == 1
    assert [s["id"] for s in fake.posted_statuses] == [posted.remote_id]
    assert fake.count("POST", "/api/v1/statuses") == 1  # not even a repeated request
    assert fake.count("POST", "/api/v2/media") == 1
    job = await second.app.queue.get(row.id)
    assert (job.state, job.reply_remote_id) == ("done", posted.remote_id)
    await second.tick(T0 + 6 * MINUTE + 1, catch_up=True)  # runs at 5 and 6 min (grace)
    assert [s["in_reply_to_id"] for s in fake.posted_statuses] == [
        None,
        posted.remote_id,
        fake.posted_statuses[1]["id"],
    ]
