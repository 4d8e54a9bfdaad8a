"""The `[fediseer]` config section: where to ask, whom to trust, and how cautiously to apply."""

from __future__ import annotations

import re
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from fediseer_sync.domains import normalize_domain

__all__ = ["FediseerConfig", "normalize_domain"]

_CLIENT_AGENT_RE = re.compile(r"^[^:\s]+:[^:\s]+:\S.*$")


def _normalize_domains(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(normalize_domain(value), None)
    return list(seen)


def _normalize_reasons(values: list[str]) -> list[str]:
    out: dict[str, None] = {}
    for value in values:
        reason = value.strip().lower()
        if not reason:
            raise ValueError("reasons must not be empty strings")
        out.setdefault(reason, None)
    return list(out)


class FediseerConfig(BaseModel):
    """Fediseer trust rules. Reasons match case-insensitively as substrings, like Fediseer's own
    `reasons_csv` filter ("moderated" matches "well moderated")."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Sync the instance allow/deny lists from Fediseer.")
    base_url: str = Field(
        "https://fediseer.com/api/v1",
        description="Fediseer API root, including /api/v1.",
        pattern=r"^https?://\S+$",
    )
    apikey: SecretStr | None = Field(
        None, description="Your instance's Fediseer API key (needed to read non-public lists)."
    )
    client_agent: str = Field(
        "fedibot:0.1.0:unknown",
        description="Client-Agent header, 'name:version:contact' (put your admin contact last).",
    )
    trusted: list[str] = Field(
        default_factory=list,
        description="Instances whose endorsements/censures count: usually yours and a few more.",
    )
    min_endorsements: int = Field(
        1, ge=1, description="Endorsements by trusted instances needed to allow an instance."
    )
    endorsement_reasons: list[str] = Field(
        default_factory=list,
        description="If set, only endorsements whose reason contains one of these count.",
    )
    require_guarantee: bool = Field(
        False, description="Only allow instances that some instance guarantees for."
    )
    deny_censured_by: int = Field(
        0, ge=0, description="Deny instances censured by at least this many trusted (0 = off)."
    )
    censure_reasons: list[str] = Field(
        default_factory=list,
        description="If set, only censures whose reason contains one of these count (csam, spam).",
    )
    include_hesitations: bool = Field(
        False, description="Count hesitations as censures for deny_censured_by."
    )
    max_removal_fraction: float = Field(
        0.3,
        ge=0.0,
        le=1.0,
        description="Hold a sync that would remove more than this share of the allow list "
        "or of the deny list (or empty either list) until it is run with --force.",
    )
    sync_interval_minutes: int = Field(60, ge=5, description="Minutes between scheduled syncs.")
    timeout_seconds: float = Field(30.0, gt=0, le=600, description="Timeout of one HTTP request.")
    max_retries: int = Field(
        3, ge=0, le=10, description="Retries of one request after 5xx, timeouts or garbage."
    )

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("client_agent")
    @classmethod
    def _check_agent(cls, value: str) -> str:
        if not _CLIENT_AGENT_RE.match(value):
            raise ValueError("client_agent must look like 'name:version:contact'")
        return value

    @field_validator("trusted")
    @classmethod
    def _check_trusted(cls, value: list[str]) -> list[str]:
        return _normalize_domains(value)

    @field_validator("endorsement_reasons", "censure_reasons")
    @classmethod
    def _check_reasons(cls, value: list[str]) -> list[str]:
        return _normalize_reasons(value)

    @model_validator(mode="after")
    def _check_counts(self) -> Self:
        if not self.enabled:
            return self
        if not self.trusted:
            raise ValueError("fediseer.enabled needs at least one domain in fediseer.trusted")
        n = len(self.trusted)
        if self.min_endorsements > n:
            raise ValueError(
                f"min_endorsements={self.min_endorsements} is more than the {n} trusted "
                "instances: nothing could ever be allowed"
            )
        if self.deny_censured_by > n:
            raise ValueError(
                f"deny_censured_by={self.deny_censured_by} is more than the {n} trusted "
                "instances: nothing could ever be denied"
            )
        return self
