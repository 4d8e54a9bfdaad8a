"""Quotas counted from the jobs table on a controlled clock: the refusal names when the user
can ask again, refusals never count, instances have their own quota, exempt accounts skip."""

from __future__ import annotations

from datetime import UTC, datetime

from federation.types import Account
from fedibot.config.policy import QuotaConfig
from fedibot.queue.jobs import JobQueue, NewJob, QueueSettings
from fedibot.storage.models import JobState
from tests.policy.conftest import Clock, make_policy

BIG = 1000
T0 = datetime(2027, 1, 15, 13, 0, tzinfo=UTC).timestamp()  # 13:00 UTC


def at(hh: int, mm: int, ss: int = 0, day: int = 15) -> float:
    return datetime(2027, 1, day, hh, mm, ss, tzinfo=UTC).timestamp()


def quotas(**limits: int | list[str]) -> QuotaConfig:
    values: dict = {
        "user_requests_per_hour": BIG,
        "user_requests_per_day": BIG,
        "user_images_per_day": BIG,
        "user_jobs_in_flight": BIG,
        "instance_requests_per_hour": BIG,
        "instance_requests_per_day": BIG,
    }
    values.update(limits)
    return QuotaConfig(**values)


class Jobs:
    """Enqueue jobs through the real queue at chosen times."""

    def __init__(self, db) -> None:
        self.clock = Clock(T0)
        self.queue = JobQueue(db, QueueSettings(clock=self.clock))
        self.count = 0

    async def add(self, acct: str, when: float, n: int = 1, state: str = JobState.QUEUED) -> int:
        self.clock.now = when
        self.count += 1
        result = await self.queue.enqueue(
            NewJob(
                platform="mastodon",
                bot_account="bot",
                remote_id=str(self.count),
                requester=acct,
                requester_domain=acct.rsplit("@", 1)[1],
                prompt="a fox",
                n=n,
                state=state,
                error_code="quota_exceeded" if state == JobState.REJECTED else None,
            )
        )
        return result.job_id


def who(acct: str) -> Account:
    return Account(platform="mastodon", id="1", acct=acct)


async def test_hourly_refusal_names_the_time_the_oldest_request_leaves(db) -> None:
    jobs = Jobs(db)
    await jobs.add("ann@ok.example", at(12, 59), state=JobState.REJECTED)  # never counts
    for minute in (5, 20, 30):
        await jobs.add("ann@ok.example", at(13, minute))
    clock = Clock(at(13, 42))
    policy = make_policy(db, clock=clock, quotas=quotas(user_requests_per_hour=3))
    decision = await policy.check_quota(who("ann@ok.example"))
    assert (decision.allowed, decision.code, decision.reply) == (False, "quota_exceeded", True)
    assert decision.reset_at == at(14, 5)
    assert "3 requests per hour" in decision.message
    assert "You can ask again after 14:05 UTC (in 23 minutes)" in decision.message
    clock.now = at(14, 5)  # the 13:05 request has left the window
    assert (await policy.check_quota(who("ann@ok.example"))).allowed


async def test_reset_time_is_rounded_up_to_the_minute(sqlite_db) -> None:
    jobs = Jobs(sqlite_db)
    await jobs.add("ann@ok.example", at(13, 5, 30))
    await jobs.add("ann@ok.example", at(13, 10))
    policy = make_policy(
        sqlite_db, clock=Clock(at(13, 42)), quotas=quotas(user_requests_per_hour=2)
    )
    decision = await policy.check_quota(who("ann@ok.example"))
    assert decision.reset_at == at(14, 5, 30)
    assert "after 14:06 UTC (in 24 minutes)" in decision.message


async def test_the_latest_reset_among_broken_limits_is_named(db) -> None:
    jobs = Jobs(db)
    await jobs.add("ann@ok.example", at(1, 0))
    await jobs.add("ann@ok.example", at(13, 30))
    policy = make_policy(
        db,
        clock=Clock(at(13, 42)),
        quotas=quotas(user_requests_per_hour=1, user_requests_per_day=2),
    )
    decision = await policy.check_quota(who("ann@ok.example"))
    assert decision.reset_at == at(1, 0, day=16)
    assert "2 requests per day" in decision.message
    assert "after 01:00 UTC tomorrow (in 11 hours 18 minutes)" in decision.message
    assert "user_requests_per_hour 1/1" in decision.reason
    assert "user_requests_per_day 2/2" in decision.reason


async def test_images_per_day_counts_images_not_requests(db) -> None:
    jobs = Jobs(db)
    await jobs.add("ann@ok.example", at(9, 0), n=4)
    await jobs.add("ann@ok.example", at(10, 0), n=3)
    policy = make_policy(db, clock=Clock(at(13, 0)), quotas=quotas(user_images_per_day=8))
    assert (await policy.check_quota(who("ann@ok.example"), images=1)).allowed
    refused = await policy.check_quota(who("ann@ok.example"), images=4)
    assert refused.reset_at == at(9, 0, day=16)  # the 4 images of 09:00 free enough room
    assert "8 images per day (7 used, 4 asked)" in refused.message
    too_many = await policy.check_quota(who("ann@ok.example"), images=9)
    assert too_many.reset_at is None and "at most 8 images per day" in too_many.message


async def test_jobs_in_flight(db) -> None:
    jobs = Jobs(db)
    first = await jobs.add("ann@ok.example", at(12, 0))
    await jobs.add("ann@ok.example", at(12, 1))
    policy = make_policy(db, clock=Clock(at(12, 2)), quotas=quotas(user_jobs_in_flight=2))
    refused = await policy.check_quota(who("ann@ok.example"))
    assert refused.code == "quota_exceeded" and refused.reset_at is None
    assert "2 requests in progress" in refused.message
    await jobs.queue.cancel(first)
    assert (await policy.check_quota(who("ann@ok.example"))).allowed


async def test_instance_quota_counts_every_user_of_the_instance(db) -> None:
    jobs = Jobs(db)
    await jobs.add("ann@busy.example", at(13, 10))
    await jobs.add("bob@busy.example", at(13, 20))
    await jobs.add("cat@calm.example", at(13, 25))
    policy = make_policy(db, clock=Clock(at(13, 30)), quotas=quotas(instance_requests_per_hour=2))
    refused = await policy.check_quota(who("dan@busy.example"))
    assert refused.code == "quota_exceeded"
    assert "Accounts on busy.example have reached this bot's limit of 2 requests per hour" in (
        refused.message
    )
    assert "after 14:10 UTC (in 40 minutes)" in refused.message
    assert (await policy.check_quota(who("dan@calm.example"))).allowed


async def test_exempt_accounts_skip_quotas(db) -> None:
    jobs = Jobs(db)
    for minute in range(3):
        await jobs.add("admin@ok.example", at(13, minute))
    limits = quotas(user_requests_per_hour=1, exempt=["@Admin@OK.example"])
    policy = make_policy(db, clock=Clock(at(13, 5)), quotas=limits)
    assert (await policy.check_quota(who("admin@ok.example"))).allowed
    assert (await policy.check_quota(who("other@ok.example"))).allowed
    await jobs.add("other@ok.example", at(13, 4))
    assert not (await policy.check_quota(who("other@ok.example"))).allowed


async def test_quota_status_reports_usage_and_resets(db) -> None:
    jobs = Jobs(db)
    await jobs.add("ann@ok.example", at(13, 10), n=2)
    policy = make_policy(db, clock=Clock(at(13, 30)), quotas=quotas(user_requests_per_hour=1))
    lines = {line.name: line for line in await policy.quota_status("ann@ok.example")}
    hour = lines["user_requests_per_hour"]
    assert (hour.used, hour.limit, hour.exceeded, hour.reset_at) == (1, 1, True, at(14, 10))
    assert lines["user_images_per_day"].used == 2
    assert lines["instance_requests_per_day"].used == 1
    assert lines["user_jobs_in_flight"].used == 1


async def test_quota_refusal_reply_follows_config(sqlite_db) -> None:
    jobs = Jobs(sqlite_db)
    await jobs.add("ann@ok.example", at(13, 10))
    policy = make_policy(
        sqlite_db,
        clock=Clock(at(13, 30)),
        quotas=quotas(user_requests_per_hour=1),
        reply_on_refusal={"quota_exceeded": False},
    )
    decision = await policy.check(who("ann@ok.example"), "a fox")
    assert (decision.code, decision.reply) == ("quota_exceeded", False)
