"""`[[campaigns]]` validation: every mistake is refused at start, naming campaign and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fedibot.config.errors import ConfigError
from fedibot.config.loader import load_config, parse_config


def raw(*campaigns: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "accounts": [
            {
                "name": "main",
                "platform": "mastodon",
                "base_url": "https://a.example",
                "access_token": "t",
            },
            {
                "name": "forum",
                "platform": "lemmy",
                "base_url": "https://l.example",
                "username": "bot",
                "password": "pw",
            },
        ],
        "campaigns": list(campaigns),
        **extra,
    }


def fox(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "daily-fox",
        "account": "main",
        "cron": "0 9 * * *",
        "prompts": ["a fox"],
        **overrides,
    }


def error_of(*campaigns: dict[str, Any], **extra: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw(*campaigns, **extra))
    return str(info.value)


def test_a_bad_cron_expression_is_refused_naming_the_campaign_and_the_field(tmp_path: Path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        '[[accounts]]\nname = "main"\nplatform = "mastodon"\nbase_url = "https://a.example"\n'
        'access_token = "t"\n'
        '[[campaigns]]\nname = "daily-fox"\naccount = "main"\ncron = "61 * * * *"\n'
        'prompts = ["a fox"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    message = str(info.value)
    assert message.startswith(f"{cfg}: campaigns[0].cron = '61 * * * *': campaign 'daily-fox'")
    assert "61" in message and "59" in message  # what was wrong and what is allowed
    assert "fields" in error_of(fox(cron="0 9 * *"))


def test_a_valid_campaign_loads_with_its_defaults():
    config = parse_config(raw(fox(timezone="Europe/Berlin", hashtags=["#fox", "art"])))
    (campaign,) = config.campaigns
    assert campaign.visibility == "public" and campaign.enabled and not campaign.thread
    assert campaign.misfire_grace_seconds == 300
    assert campaign.hashtags == ["fox", "art"]
    assert campaign.schedule_text == "cron '0 9 * * *' Europe/Berlin"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("6h", 21600), ("1h30m", 5400), ("90m", 5400), (3600, 3600), ("2d", 172800)],
)
def test_every_takes_durations(value: Any, seconds: int):
    config = parse_config(raw(fox(cron=None, every=value)))
    assert config.campaigns[0].every == seconds


@pytest.mark.parametrize(
    ("campaign", "key", "words"),
    [
        (fox(every="6h"), "cron", "exactly one schedule"),
        (fox(cron=None), "cron", "exactly one schedule"),
        (fox(cron=None, every="6 hours"), "every", "duration"),
        (fox(cron=None, every=10), "every", "at least 60"),
        (fox(timezone="Mars/Olympus"), "timezone", "IANA"),
        (fox(prompts=[]), "prompts", "either prompts"),
        (
            fox(template="a {animal} in {place}", prompts=[], variables={"animal": ["fox"]}),
            "template",
            "no list for {place}",
        ),
        (
            fox(template="a {animal}", prompts=[], variables={"animal": []}),
            "variables",
            "variables.animal is empty",
        ),
        (fox(account="mian"), "account", "known: forum, main"),
        (fox(account="forum"), "account", "Mastodon-API"),
        (fox(model="sdxl"), "model", "no model called 'sdxl'"),
        (fox(style="noir"), "style", "no style called 'noir'"),
        (fox(options="--steps 999"), "options", "--steps 1-50"),
        (fox(options="and a cat"), "options", "only hold --options"),
        (fox(text="{prompt} {weather}"), "text", "unknown placeholder {weather}"),
        (fox(hashtags=["two words"]), "hashtags", "not a hashtag"),
        (fox(visibility="everyone"), "visibility", "'public'"),
        (fox(colour="red"), "colour", "not a known key"),
    ],
)
def test_each_mistake_names_the_campaign_key(campaign: dict[str, Any], key: str, words: str):
    message = error_of(campaign)
    assert f"campaigns[0].{key}" in message, message
    assert words in message, message
    if key not in ("visibility", "colour"):
        assert "campaign 'daily-fox'" in message


def test_campaign_names_must_be_unique():
    message = error_of(fox(), fox(cron="0 10 * * *"))
    assert "campaigns[1].name = 'daily-fox'" in message and "campaigns[0]" in message
