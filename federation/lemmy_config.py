"""Configuration of one Lemmy bot account."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from federation.budgets import BudgetsConfig


class LemmyAccountConfig(BaseModel):
    """One bot account on a Lemmy instance (0.19 `/api/v3` or 1.0 `/api/v4`, detected)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="The account's name in config, e.g. 'main'.")
    platform: Literal["lemmy"] = "lemmy"
    base_url: str = Field(..., description="The instance, e.g. https://lemmy.example")
    username: str = Field(..., min_length=1, description="The bot's user name (local part).")
    password: SecretStr | None = Field(None, description="Login password (or give `jwt`).")
    jwt: SecretStr | None = Field(None, description="A login token, used instead of a password.")
    set_bot_flag: bool = Field(True, description="Mark the account as a bot on start.")
    poll_interval_seconds: float = Field(
        15, gt=0, le=3600, description="Seconds between inbox polls while there is traffic."
    )
    max_poll_interval_seconds: float = Field(
        120, gt=0, le=86400, description="Polls back off up to this while the inbox is idle."
    )
    locked_post_fallback: Literal["private_message", "skip"] = Field(
        "private_message", description="How to answer a mention in a locked post."
    )
    request_timeout_seconds: float = Field(
        30, gt=0, le=600, description="Total timeout of one HTTP request."
    )
    budgets: BudgetsConfig = Field(
        default_factory=BudgetsConfig,
        description="Posting budgets (comments, media, messages) below the site's own limits; "
        "see docs/budgets.md.",
    )

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL with a host, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_credentials_and_intervals(self) -> LemmyAccountConfig:
        if self.password is None and self.jwt is None:
            raise ValueError(
                f"lemmy account {self.name!r}: give either `password` or `jwt` (neither is set)"
            )
        if self.max_poll_interval_seconds < self.poll_interval_seconds:
            raise ValueError(
                f"lemmy account {self.name!r}: max_poll_interval_seconds "
                f"({self.max_poll_interval_seconds}) must be >= poll_interval_seconds "
                f"({self.poll_interval_seconds})"
            )
        return self
