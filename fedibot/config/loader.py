"""config.toml → typed, validated settings.

Values may be written `env:NAME`; they are read from the environment before validation. A
secret (a SecretStr field, e.g. an account's token) whose variable is not set waits until
something that talks to that server needs it (`resolve_secrets`): commands that only use the
database run without the bot's credentials in their environment.
Every problem becomes one line naming the key path, the bad value and what is allowed.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from federation.lemmy_config import LemmyAccountConfig
from federation.mastodon_config import MastodonAccountConfig
from fedibot.config.campaigns import CampaignConfig, check_campaigns
from fedibot.config.errors import ConfigError, describe_validation_error
from fedibot.config.policy import PolicyConfig, QuotaConfig
from fedibot.config.prompt import PromptConfig, PromptFilterConfig
from fedibot.config.secrets import ENV_REF, unset_message
from fedibot.console.config import ConsoleConfig
from fediseer_sync.config import FediseerConfig
from generator.config import GeneratorConfig

DEFAULT_CONFIG_NAME = "config.toml"
ENV_CONFIG = "FEDIBOT_CONFIG"

AccountConfig = Annotated[
    MastodonAccountConfig | LemmyAccountConfig, Field(discriminator="platform")
]


class DatabaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        "sqlite:///data/fedibot.storage.database",
        description="sqlite:///PATH (default) or postgresql://USER:PASSWORD@HOST:PORT/DB",
    )
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        from fedibot.storage.database import normalize_url

        normalize_url(url)  # raises ValueError naming the allowed schemes
        return url


class QueueConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(3, ge=1, le=20)
    retry_base_seconds: float = Field(5.0, gt=0, le=3600)
    retry_max_seconds: float = Field(900.0, gt=0, le=86_400)
    reply_retry_max_seconds: float = Field(3600.0, gt=0, le=86_400)
    per_requester_in_flight: int = Field(2, ge=1, le=1000)
    retention_days: float = Field(14.0, ge=0, le=3650, description="0 keeps jobs forever")
    max_request_age_hours: float = Field(
        24.0,
        ge=0,
        le=24 * 365,
        description="mentions older than this (e.g. history seen on a first start) are ignored;"
        " 0 answers everything",
    )


class RepliesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(
        "Here you go! “{prompt}”",
        max_length=400,
        description="reply text; {prompt}, {model}, {seeds}, {n} are filled in",
    )
    alt_text: str = Field(
        "AI-generated image. Prompt: {prompt}. Model: {model}. Seed: {seed}.",
        max_length=400,
        description="alt text of each image; {prompt}, {model}, {seed}, {negative}",
    )
    poll_seconds: float = Field(1.0, gt=0, le=60, description="how often the replier looks")
    concurrency: int = Field(4, ge=1, le=64, description="replies posted at the same time")
    lease_seconds: float = Field(
        60.0,
        ge=5,
        le=3600,
        description="a reply in progress is held this long (renewed while posting); after a "
        "crash it is retried once the lease runs out",
    )
    notify_wait_seconds: float = Field(
        900.0,
        ge=0,
        le=86_400,
        description="tell a requester once when the server's rate limit holds their images back"
        " longer than this; 0 never tells",
    )
    grid: Literal["never", "when_short", "always"] = Field(
        "when_short",
        description="post several images as ONE grid image (one upload): never, when the "
        "account's media budget would hold the separate uploads back, or always",
    )


class PicturesConfig(BaseModel):
    """Pictures attached to a request (image-to-image): what the bot fetches and accepts."""

    model_config = ConfigDict(extra="forbid")

    max_megabytes: float = Field(
        10.0, gt=0, le=100, description="a larger picture is refused (picture_too_large)"
    )
    max_megapixels: float = Field(
        16.8, gt=0, le=100, description="width x height in millions; 16.8 is 4096 x 4096"
    )
    fetch_timeout_seconds: float = Field(
        20.0, ge=1, le=300, description="the whole fetch, redirects included"
    )
    private_hosts: list[str] = Field(
        default_factory=list,
        description="host names (exact) besides the accounts' own servers that may have "
        "private addresses, e.g. your instance's media host inside your network",
    )


class ServerConfig(BaseModel):
    """The local operations endpoint: /healthz and Prometheus /metrics."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=0, le=65535)


class LoggingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class FedibotConfig(BaseModel):
    """The whole config.toml."""

    model_config = ConfigDict(extra="forbid")

    data_dir: str = Field("data", description="images, the tiny model and the SQLite file")
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)
    prompt: PromptConfig = Field(default_factory=PromptConfig)
    prompt_filter: PromptFilterConfig = Field(default_factory=PromptFilterConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    quotas: QuotaConfig = Field(default_factory=QuotaConfig)
    fediseer: FediseerConfig = Field(default_factory=FediseerConfig)
    replies: RepliesConfig = Field(default_factory=RepliesConfig)
    pictures: PicturesConfig = Field(default_factory=PicturesConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    accounts: list[AccountConfig] = Field(default_factory=list)
    campaigns: list[CampaignConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _share_data_dir(cls, data: Any) -> Any:
        """One data dir for the app and the generator unless the generator names its own."""
        if isinstance(data, dict) and "data_dir" in data:
            gen = data.setdefault("generator", {})
            if isinstance(gen, dict):
                gen.setdefault("data_dir", data["data_dir"])
        return data

    @model_validator(mode="after")
    def _unique_account_names(self) -> FedibotConfig:
        names = [a.name for a in self.accounts]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"account names must be unique; repeated: {', '.join(dupes)}")
        if self.generator.default_model not in self.generator.models:
            raise ValueError(
                f"generator.default_model = {self.generator.default_model!r}: must be one of "
                f"the names in [generator.models]: {', '.join(sorted(self.generator.models))}"
            )
        return self

    @model_validator(mode="after")
    def _check_campaigns(self) -> FedibotConfig:
        """Unique names, known accounts, models, styles and options (names the key)."""
        check_campaigns(self)
        return self

    def account(self, name: str) -> MastodonAccountConfig | LemmyAccountConfig:
        for acc in self.accounts:
            if acc.name == name:
                return acc
        known = ", ".join(a.name for a in self.accounts) or "(none configured)"
        raise ConfigError(f"no account named {name!r} in config; known: {known}")

    @property
    def own_domains(self) -> set[str]:
        """The instances the bot's accounts live on: always allowed (in the normal form)."""
        from urllib.parse import urlparse

        from fediseer_sync.domains import normalize_domain

        found = set()
        for account in self.accounts:
            host = (urlparse(account.base_url).hostname or "").lower()
            try:
                found.add(normalize_domain(host))
            except ValueError:
                if host:
                    found.add(host)
        return found


def resolve_env(value: Any, path: str = "", missing: list[str] | None = None) -> Any:
    """Replace every `env:NAME` string with the variable's value. A variable that is not set
    raises ConfigError; with `missing`, its path is added there and `env:NAME` is kept."""
    if isinstance(value, dict):
        return {k: resolve_env(v, f"{path}.{k}" if path else k, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env(v, f"{path}[{i}]", missing) for i, v in enumerate(value)]
    if isinstance(value, str):
        match = ENV_REF.match(value)
        if match:
            name = match.group(1)
            if name not in os.environ:
                if missing is not None:
                    missing.append(path)
                    return value
                raise ConfigError(unset_message(path, value))
            return os.environ[name]
    return value


def _dotted(loc: tuple[int | str, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _at(model: Any, path: str) -> Any:
    """The value at a `resolve_env` path (`accounts[0].access_token`) in a validated model."""
    value = model
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            value = value[int(part[1:-1])]
        elif isinstance(value, dict):
            value = value[part]
        else:
            value = getattr(value, part)
    return value


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """--config PATH, else $FEDIBOT_CONFIG, else ./config.toml if present, else None."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG])
    default = Path(DEFAULT_CONFIG_NAME)
    return default if default.exists() else None


def load_config(path: str | os.PathLike[str] | None = None) -> FedibotConfig:
    """Read and validate the config; raises ConfigError with one line per problem."""
    file = config_path(path)
    if file is None:
        return FedibotConfig()
    source = str(file)
    if not file.exists():
        raise ConfigError(f"{source}: no such file (pass --config PATH or set {ENV_CONFIG})")
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return parse_config(raw, source)


def parse_config(raw: dict[str, Any], source: str = "config.toml") -> FedibotConfig:
    missing: list[str] = []
    resolved = resolve_env(raw, missing=missing)
    try:
        config = FedibotConfig.model_validate(resolved)
    except ValidationError as exc:
        failed = {_dotted(err["loc"]) for err in exc.errors()}
        for path in missing:  # an unset variable explains its key's error best
            if path in failed:
                message = unset_message(path, _at(resolved, path))
                raise ConfigError(message.replace("{source}", source)) from None
        raise ConfigError(describe_validation_error(source, FedibotConfig, exc)) from None
    for path in missing:  # only a secret may wait for the code that needs it
        try:
            deferred = isinstance(_at(config, path), SecretStr)
        except (AttributeError, IndexError, KeyError, TypeError):
            deferred = False
        if not deferred:
            value = _at(resolved, path)
            raise ConfigError(unset_message(path, value).replace("{source}", source))
    return config
