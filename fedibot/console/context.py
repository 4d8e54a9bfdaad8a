"""What every console handler needs: the config, the database, the queue, a clock."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedibot.config.loader import FedibotConfig
from fedibot.queue.jobs import JobQueue
from fedibot.storage.database import Database


@dataclass
class ConsoleContext:
    config: FedibotConfig
    db: Database
    queue: JobQueue
    clock: Callable[[], float] = time.time
    # Tests hand in a FediseerClient against a fake server; None builds one from config.
    fediseer_client: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return Path(self.config.data_dir)

    @property
    def thumbs_dir(self) -> Path:
        return self.data_dir / "console" / "thumbs"
