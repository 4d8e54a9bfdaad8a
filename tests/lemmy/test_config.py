"""LemmyAccountConfig: clear validation errors for bad values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from federation.lemmy_config import LemmyAccountConfig

BASE = {"name": "main", "platform": "lemmy", "base_url": "https://lemmy.example/", "username": "b"}


def test_defaults_and_normalised_url() -> None:
    config = LemmyAccountConfig.model_validate({**BASE, "password": "pw"})
    assert config.base_url == "https://lemmy.example"
    assert config.set_bot_flag is True
    assert (config.poll_interval_seconds, config.max_poll_interval_seconds) == (15, 120)
    assert config.locked_post_fallback == "private_message"
    assert "pw" not in repr(config)


def test_password_or_jwt_is_required() -> None:
    with pytest.raises(ValidationError, match="either `password` or `jwt`"):
        LemmyAccountConfig.model_validate(BASE)
    assert LemmyAccountConfig.model_validate({**BASE, "jwt": "t"}).jwt is not None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("locked_post_fallback", "email", "private_message"),
        ("poll_interval_seconds", 0, "greater than 0"),
        ("base_url", "lemmy.example", "http"),
        ("platform", "mastodon", "lemmy"),
        ("surprise", 1, "Extra inputs are not permitted"),
    ],
)
def test_bad_values_name_the_key(key: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        LemmyAccountConfig.model_validate({**BASE, "password": "pw", key: value})
    assert key in str(info.value) and message in str(info.value)


def test_max_poll_interval_below_the_poll_interval_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_poll_interval_seconds"):
        LemmyAccountConfig.model_validate(
            {**BASE, "password": "pw", "poll_interval_seconds": 30, "max_poll_interval_seconds": 5}
        )
