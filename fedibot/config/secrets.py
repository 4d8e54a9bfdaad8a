"""`env:NAME` secrets that wait until the code talking to a server needs them."""

from __future__ import annotations

import os
import re
from typing import Any, TypeVar

from pydantic import BaseModel, SecretStr

from fedibot.config.errors import ConfigError

ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
M = TypeVar("M", bound=BaseModel)


def unset_message(path: str, value: str) -> str:
    name = value.removeprefix("env:")
    return f"{{source}}: {path} = {value!r}: the environment variable {name} is not set"


def resolve_secrets(model: M, where: str = "") -> M:
    """`model` (an account's or Fediseer's settings) with every `env:NAME` secret read from
    the environment now; ConfigError naming the key and the variable when it is not set."""
    updates: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            match = ENV_REF.match(value.get_secret_value())
            if match:
                path = f"{where}.{name}" if where else name
                if match.group(1) not in os.environ:
                    raise ConfigError(
                        unset_message(path, value.get_secret_value()).replace("{source}: ", "")
                    )
                updates[name] = SecretStr(os.environ[match.group(1)])
    return model.model_copy(update=updates) if updates else model
