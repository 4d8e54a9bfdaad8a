"""Configuration of one bot account on a Mastodon-API server (Mastodon, GoToSocial, Akkoma)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from federation.budgets import BudgetsConfig


class MastodonAccountConfig(BaseModel):
    """One `[[accounts]]` entry with `platform = "mastodon"`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name of this account in config, logs and cursors (e.g. 'main').",
    )
    platform: Literal["mastodon"] = Field("mastodon", description="Always 'mastodon'.")
    base_url: str = Field(
        ..., min_length=1, description="The instance, e.g. 'https://botsin.space'."
    )
    access_token: SecretStr = Field(..., description="OAuth access token of the bot account.")
    client_id: str | None = Field(None, description="OAuth client id (from `fedibot login`).")
    client_secret: SecretStr | None = Field(None, description="OAuth client secret.")
    set_bot_flag: bool = Field(True, description="Mark the account as a bot on start.")
    accept_private_mentions: bool = Field(
        True,
        description="On start, set the notification policy to accept private mentions from "
        "accounts the bot does not follow (Mastodon 4.3+ filters them otherwise).",
    )
    catch_up_interval_seconds: float = Field(
        180,
        ge=5,
        le=86400,
        description="Safety-net catch-up of mention notifications even while streaming.",
    )
    use_streaming: bool = Field(True, description="Receive mentions live over the streaming API.")
    public_reply_visibility: Literal["public", "unlisted"] = Field(
        "unlisted", description="Visibility of replies to public requests."
    )
    request_timeout_seconds: float = Field(
        30, gt=0, le=600, description="Timeout of one HTTP request to the server."
    )
    budgets: BudgetsConfig = Field(
        default_factory=BudgetsConfig,
        description="Posting budgets per kind (statuses, media); see docs/budgets.md.",
    )

    @field_validator("base_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if "://" not in value:
            value = "https://" + value
        if not value.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL, e.g. 'https://mastodon.social'")
        return value
