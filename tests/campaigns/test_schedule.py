"""Run times and prompts: pure functions of the campaign, the time and the stored index."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fedibot.campaigns.prompts import choose_prompt, derived_seed, render_text
from fedibot.campaigns.schedule import fire_times, latest_fire, next_fire
from fedibot.config.campaigns import CampaignConfig, crontab_trigger

MONDAY = datetime(2030, 1, 7, tzinfo=UTC).timestamp()


def make(**fields: Any) -> CampaignConfig:
    base: dict[str, Any] = {
        "name": "fox",
        "account": "main",
        "cron": "0 9 * * *",
        "prompts": ["a fox"],
    }
    base.update(fields)
    return CampaignConfig(**base)


def weekdays(expr: str) -> list[str]:
    trigger = crontab_trigger(expr, "UTC")
    out, at = [], datetime(2030, 1, 6, tzinfo=UTC)  # a Sunday
    for _ in range(7):
        at = trigger.get_next_fire_time(None, at.replace(microsecond=1))
        out.append(at.strftime("%a"))
    return sorted(set(out), key=["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"].index)


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("1", ["Mon"]),
        ("0", ["Sun"]),
        ("7", ["Sun"]),
        ("1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("sat,sun", ["Sun", "Sat"]),
        ("5-0", ["Sun", "Fri", "Sat"]),
    ],
)
def test_cron_weekdays_mean_what_crontab_means(field: str, days: list[str]):
    """APScheduler 3 counts Monday as 0; crontab (and our config) count Sunday as 0."""
    assert weekdays(f"0 9 * * {field}") == days


def test_cron_runs_in_the_campaign_time_zone_across_daylight_saving():
    berlin = make(timezone="Europe/Berlin")
    winter = next_fire(berlin, datetime(2030, 1, 7, tzinfo=UTC).timestamp())
    summer = next_fire(berlin, datetime(2030, 7, 1, tzinfo=UTC).timestamp())
    assert datetime.fromtimestamp(winter, UTC).hour == 8
    assert datetime.fromtimestamp(summer, UTC).hour == 7


def test_interval_run_times_do_not_depend_on_when_they_are_computed():
    every = make(cron=None, every="6h")
    starts = [MONDAY + 1, MONDAY + 3 * 3600, MONDAY + 5 * 3600 + 59]
    assert {next_fire(every, s) for s in starts} == {MONDAY + 6 * 3600}
    assert list(fire_times(every, MONDAY, MONDAY + 18 * 3600)) == [
        MONDAY + h * 3600 for h in (6, 12, 18)
    ]


def test_fire_times_exclude_the_start_and_include_the_end():
    minutely = make(cron="* * * * *")
    assert list(fire_times(minutely, MONDAY, MONDAY + 180)) == [
        MONDAY + 60,
        MONDAY + 120,
        MONDAY + 180,
    ]
    assert latest_fire(minutely, MONDAY + 130, 300) == MONDAY + 120
    assert latest_fire(make(), MONDAY + 130, 300) is None  # 9:00 is hours away


def test_sequential_prompts_cycle_and_random_ones_are_stable_per_run():
    seq = make(prompts=["a", "b", "c"])
    assert [choose_prompt(seq, i, MONDAY) for i in range(5)] == ["a", "b", "c", "a", "b"]
    rnd = make(prompts=[str(i) for i in range(50)], order="random")
    picks = [choose_prompt(rnd, 0, MONDAY + 60 * i) for i in range(20)]
    assert picks == [choose_prompt(rnd, 7, MONDAY + 60 * i) for i in range(20)]
    assert len(set(picks)) > 5
    assert derived_seed("fox", MONDAY) == derived_seed("fox", MONDAY)
    assert derived_seed("fox", MONDAY) != derived_seed("fox", MONDAY + 60)


def test_a_template_visits_every_combination_in_sequential_order():
    tpl = make(
        prompts=[],
        template="a {animal} in {place}",
        variables={"animal": ["fox", "owl"], "place": ["snow", "rain", "fog"]},
    )
    prompts = [choose_prompt(tpl, i, MONDAY) for i in range(6)]
    assert len(set(prompts)) == 6
    assert prompts[0] == "a fox in snow" and prompts[5] == "a owl in fog"
    assert choose_prompt(tpl, 6, MONDAY) == prompts[0]
    rnd = tpl.model_copy(update={"order": "random"})
    assert choose_prompt(rnd, 0, MONDAY).startswith("a ")


def test_post_text_fills_the_template_and_appends_hashtags():
    c = make(
        timezone="Europe/Berlin",
        text="{campaign} on {date} at {time}: {prompt}",
        hashtags=["fox", "aiart"],
    )
    text = render_text(c, "a fox", MONDAY + 8 * 3600)
    assert text == "fox on 2030-01-07 at 09:00: a fox\n\n#fox #aiart"
