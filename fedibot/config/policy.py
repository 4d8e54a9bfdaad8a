"""Moderation settings: who may use the bot, how much, and what to do with refusals."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class QuotaConfig(BaseModel):
    """Limits per requester and per instance. 0 means no limit."""

    model_config = ConfigDict(extra="forbid")

    user_requests_per_hour: int = Field(10, ge=0, le=100_000)
    user_requests_per_day: int = Field(50, ge=0, le=1_000_000)
    user_images_per_day: int = Field(100, ge=0, le=1_000_000)
    user_jobs_in_flight: int = Field(3, ge=0, le=1000)
    instance_requests_per_hour: int = Field(200, ge=0, le=1_000_000)
    instance_requests_per_day: int = Field(1000, ge=0, le=10_000_000)
    exempt: list[str] = Field(
        default_factory=list, description="accounts (user@domain) without quotas, e.g. admins"
    )


class ReplyOnRefusal(BaseModel):
    """Whether a refused request gets a reply (the refusal is recorded either way)."""

    model_config = ConfigDict(extra="forbid")

    bad_prompt: bool = True  # bad_option, empty_prompt, prompt_too_long, unknown_model/style
    prompt_blocked: bool = True
    quota_exceeded: bool = True
    instance_not_allowed: bool = False
    user_banned: bool = False
    opted_out: bool = False  # #nobot / #noai: never answered, by design


class PolicyConfig(BaseModel):
    """`[policy]`: instance mode, flagged-output handling, and refusal replies."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["open", "blocklist", "allowlist"] = Field(
        "blocklist",
        description=(
            "open: everyone except banned users and instances denied by hand; blocklist: "
            "everyone except denied instances (manual or Fediseer); allowlist: only allowed "
            "instances (manual or Fediseer)"
        ),
    )
    flagged_images: Literal["sensitive", "blur", "withhold"] = Field(
        "blur",
        description="what happens to an image the safety check flagged: sensitive (posted "
        "behind a CW), blur (a blurred copy behind a CW) or withhold (not posted); a request "
        "naming a minor is withheld whatever this says",
    )
    minor_exposure_threshold: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="when the prompt or negative prompt names a minor, any exposure label of "
        "the classifier at or above this score withholds the job's images",
    )
    flagged_spoiler_text: str = Field("AI image, may contain nudity", max_length=200)
    reply_on_refusal: ReplyOnRefusal = Field(default_factory=ReplyOnRefusal)
    refusal_reply_window_minutes: float = Field(
        10.0,
        ge=0,
        le=1440,
        description="at most one refusal reply per requester in this many minutes (further "
        "refusals are recorded without a reply); 0 answers every refusal",
    )
    respect_opt_out: bool = Field(True, description="#nobot / #noai in a profile: do nothing")
