"""When a campaign runs: its APScheduler trigger and the fire times between two instants.

Interval campaigns are anchored at 2000-01-01 00:00 UTC, so their run times are the same in
every process and after every restart (an id derived from the time is stable).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fedibot.config.campaigns import CampaignConfig, crontab_trigger

INTERVAL_ANCHOR = datetime(2000, 1, 1, tzinfo=UTC)
_TICK = timedelta(microseconds=1)


def trigger_for(campaign: CampaignConfig) -> Any:
    """The APScheduler 3 trigger of a campaign (CronTrigger or IntervalTrigger)."""
    if campaign.cron is not None:
        return crontab_trigger(campaign.cron, campaign.tz)
    from apscheduler.triggers.interval import IntervalTrigger

    return IntervalTrigger(
        seconds=int(campaign.every or 0), start_date=INTERVAL_ANCHOR, timezone=UTC
    )


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def next_fire(campaign: CampaignConfig, after: float, trigger: Any = None) -> float | None:
    """The first run time strictly after `after` (epoch seconds), None if there is none."""
    trigger = trigger or trigger_for(campaign)
    fire = trigger.get_next_fire_time(None, _dt(after) + _TICK)
    return None if fire is None else fire.timestamp()


def fire_times(campaign: CampaignConfig, after: float, until: float) -> Iterator[float]:
    """Run times t with after < t <= until, oldest first."""
    trigger = trigger_for(campaign)
    current = next_fire(campaign, after, trigger)
    while current is not None and current <= until:
        yield current
        current = next_fire(campaign, current, trigger)


def latest_fire(campaign: CampaignConfig, until: float, window: float) -> float | None:
    """The newest run time in (until - window, until], if any."""
    latest = None
    for t in fire_times(campaign, until - window, until):
        latest = t
    return latest


def local_time(campaign: CampaignConfig, epoch: float) -> datetime:
    """A run time in the campaign's time zone (UTC for interval campaigns)."""
    return _dt(epoch).astimezone(campaign.tz)
