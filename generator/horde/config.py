"""The `[generator.horde]` section: how to reach the AI Horde and when to overflow to it.

Only pydantic here: `generator.config` imports this module, so it must stay light.
The limits below default to what the Horde documents or enforces (see docs/horde.md):
`check` is cached about 1 s server-side, `status` allows 10 calls per minute per request,
`async` about 2 submissions per second per IP, and a request expires after 20 minutes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

ANONYMOUS_KEY = "0000000000"
DEFAULT_BASE_URL = "https://aihorde.net/api"


class HordeConfig(BaseModel):
    """Connection, request flags, limits, and the overflow rule (as data)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(DEFAULT_BASE_URL, description="the API root, ending in /api")
    api_key: SecretStr = Field(
        SecretStr(ANONYMOUS_KEY),
        description="your Horde API key, written env:NAME; the anonymous key 0000000000 when "
        "unset (lowest priority, images always shared)",
    )
    contact: str = Field(
        "",
        description="a URL or e-mail where the Horde's operators can reach you; sent in the "
        "Client-Agent header (fedibot:<version>:<contact>); required when the Horde is used",
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="our model name → Horde model name; a model not listed never goes to the Horde",
    )
    censor_nsfw: bool = Field(
        True, description="ask workers to censor accidental NSFW (the image becomes a placeholder)"
    )
    trusted_workers: bool = Field(False, description="only trusted workers (slower, safer)")
    slow_workers: bool = Field(True, description="allow slow workers (False costs extra kudos)")
    shared: bool = Field(
        False, description="share images with LAION (cheaper; always true for the anonymous key)"
    )
    r2: bool = Field(True, description="images come as download URLs (True) or inline base64")
    webhook_url: str | None = Field(
        None, description="optional https:// URL the Horde pings on progress (a hint only)"
    )

    overflow_when_expected_wait_s: float = Field(
        120.0,
        ge=0,
        description="local+horde: send a job to the Horde when the local queue would make it "
        "wait longer than this",
    )
    overflow_when_no_local_worker_s: float = Field(
        60.0,
        gt=0,
        description="local+horde: send jobs to the Horde when no local worker has been seen "
        "for this long",
    )
    max_in_flight: int = Field(4, ge=1, le=100, description="Horde requests open at once")

    check_interval_s: float = Field(
        1.0, ge=1.0, description="at most one check per request per this many seconds"
    )
    max_check_interval_s: float = Field(
        10.0, ge=1.0, description="the longest wait between two checks of one request"
    )
    status_per_minute: int = Field(
        10, ge=1, le=10, description="status/cancel calls per request per minute (Horde: 10)"
    )
    submit_interval_s: float = Field(
        1.0, ge=0.5, description="at least this long between two submissions"
    )
    impossible_grace_s: float = Field(
        60.0, ge=0, description="how long a request may stay is_possible=false before we cancel"
    )
    timeout_s: float = Field(
        1200.0, gt=0, description="give up (cancel) a request after this long (Horde: 20 min)"
    )
    max_submissions: int = Field(
        2,
        ge=1,
        le=5,
        description="submissions of one job whose Horde id was never recorded (crash during "
        "submit) before it goes back to local or fails",
    )
    pause_after_ip_timeout_s: float = Field(
        600.0, ge=0, description="stop submitting this long after the Horde timed out our IP"
    )
    http_timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20, description="retries on 5xx, 429, connection errors")
    retry_base_s: float = Field(1.0, gt=0)
    retry_max_s: float = Field(60.0, gt=0)
    max_image_bytes: int = Field(20_000_000, ge=1024, description="cap on one downloaded image")

    @field_validator("base_url")
    @classmethod
    def _http(cls, url: str) -> str:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"must start with https:// or http:// (got {url!r})")
        return url.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _anonymous_when_empty(cls, key: SecretStr) -> SecretStr:
        return key if key.get_secret_value().strip() else SecretStr(ANONYMOUS_KEY)

    @field_validator("webhook_url")
    @classmethod
    def _https(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith("https://"):
            raise ValueError("the Horde only calls https:// webhooks")
        return url

    @field_validator("contact")
    @classmethod
    def _no_colon_tricks(cls, contact: str) -> str:
        if any(c in contact for c in "\r\n"):
            raise ValueError("must be one line")
        return contact.strip()

    @property
    def anonymous(self) -> bool:
        return self.api_key.get_secret_value() == ANONYMOUS_KEY
