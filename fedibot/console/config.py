"""The `[console]` section of config.toml.

[console]
enabled = true
host = "127.0.0.1"
port = 9465

[[console.operators]]
name = "alice"
password_hash = "$argon2id$v=19$m=65536,t=3,p=4$…"   # fedibot console hash-password
token = "env:FEDIBOT_CONSOLE_TOKEN_ALICE"              # optional, instead of / with a password
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class OperatorConfig(BaseModel):
    """One person who may sign in. At least one of `password_hash` and `token`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="shown in the audit log as console:NAME")
    password_hash: str = Field(
        "", description="an argon2 hash made by `fedibot console hash-password`"
    )
    token: SecretStr | None = Field(
        None, description="a long random sign-in token; write it as env:NAME"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("letters, digits, '.', '_' or '-', at most 64")
        return value

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        if value and not value.startswith("$argon2"):
            raise ValueError("must be an argon2 hash made by `fedibot console hash-password`")
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (use env:NAME)")
        return value

    @model_validator(mode="after")
    def _some_secret(self) -> OperatorConfig:
        if not self.password_hash and self.token is None:
            raise ValueError(f"operator {self.name!r} needs a password_hash or a token")
        return self


class ConsoleConfig(BaseModel):
    """The operator console (off unless enabled with at least one operator)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    host: str = Field("127.0.0.1", description="bind address; keep it local behind a proxy")
    port: int = Field(9465, ge=0, le=65535)
    operators: list[OperatorConfig] = Field(default_factory=list)
    secure_cookies: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Secure session cookie: auto = when the request came over TLS (directly or"
        " per X-Forwarded-Proto from a trusted proxy)",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses/networks whose X-Forwarded-For/-Proto headers are believed",
    )
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    idle_minutes: float = Field(60.0, gt=0, le=24 * 60)
    login_window_minutes: float = Field(15.0, gt=0, le=24 * 60)
    max_failures_per_ip: int = Field(10, ge=1, le=10_000)
    max_failures_per_user: int = Field(5, ge=1, le=10_000)
    thumbnail_size: int = Field(256, ge=32, le=1024)
    page_size: int = Field(48, ge=1, le=500)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            ipaddress.ip_network(value, strict=False)  # ValueError names the bad one
        return values

    @model_validator(mode="after")
    def _operators(self) -> ConsoleConfig:
        if self.enabled and not self.operators:
            raise ValueError(
                "console.enabled = true needs at least one [[console.operators]] entry "
                "(the console never runs without sign-in)"
            )
        names = [o.name for o in self.operators]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"console operator names must be unique; repeated: {dupes}")
        return self

    @property
    def configured(self) -> bool:
        return self.enabled and bool(self.operators)
