"""Shared by the end-to-end suites: waiting for conditions and for an App's queue to settle.
(The per-test `data_dir` on the session's tiny model is a fixture in tests/conftest.py.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fedibot.app import App
from fedibot.config.loader import FedibotConfig
from tests.fixtures_path import REPO_ROOT

# Load tests and benchmarks send many requests from few accounts: no quota may interfere.
NO_QUOTAS = {
    "user_requests_per_hour": 0,
    "user_requests_per_day": 0,
    "user_images_per_day": 0,
    "user_jobs_in_flight": 0,
    "instance_requests_per_hour": 0,
    "instance_requests_per_day": 0,
}


async def eventually(
    check: Callable[[], Awaitable[Any] | Any], timeout: float = 60.0, interval: float = 0.05
) -> Any:
    """Wait until `check()` returns something truthy; fail with its last value on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        await asyncio.sleep(interval)


async def settled(app: App, timeout: float = 60.0) -> dict[str, int]:
    """Wait until no job is queued, generating, generated or replying and no error reply is
    pending; return the queue's stats."""

    async def idle() -> dict[str, int] | None:
        stats = await app.queue.stats()
        busy = sum(stats[s] for s in ("queued", "generating", "generated", "replying"))
        pending = [
            j
            for j in await app.queue.list_jobs(limit=1000)
            if j.reply_state in ("pending", "sending")
        ]
        return None if busy or pending else stats

    return await eventually(idle, timeout)


class Apps:
    """Starts whole Apps on one test's database and stops them all at the end.

    `make_config(**sections)` builds the config (sections override parts of it); `prepare`
    may tune each App before it starts (e.g. faster media polls in the adapters)."""

    def __init__(
        self,
        make_config: Callable[..., FedibotConfig],
        prepare: Callable[[App], None] | None = None,
    ) -> None:
        self.make_config = make_config
        self.prepare = prepare
        self._running: list[App] = []

    async def start(
        self,
        *,
        with_worker: bool = True,
        service: Any = None,
        clock: Callable[[], float] = time.time,
        **sections: Any,
    ) -> App:
        """A started App. `with_worker=False` is `fedibot run --no-worker`."""
        app = App(
            self.make_config(**sections), with_worker=with_worker, service=service, clock=clock
        )
        if self.prepare is not None:
            self.prepare(app)
        self._running.append(app)
        await app.start()
        return app

    async def stop(self, app: App) -> None:
        self._running.remove(app)
        await app.stop()

    async def stop_all(self) -> None:
        while self._running:
            await self.stop(self._running[-1])


def to_toml(raw: dict[str, Any]) -> str:
    """Just enough TOML for `raw_config` (tables, one array of tables, scalars)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # a JSON string is a TOML basic string
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    lines: list[str] = []

    def table(name: str, body: dict[str, Any], header: str) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        if name:
            lines.append(header.format(name))
        lines.extend(f"{k} = {value(v)}" for k, v in scalars.items())
        for k, v in body.items():
            if isinstance(v, dict):
                table(f"{name}.{k}" if name else k, v, "[{}]")

    top = {k: v for k, v in raw.items() if k != "accounts"}
    table("", top, "[{}]")
    for account in raw.get("accounts", []):
        table("accounts", account, "[[{}]]")
    return "\n".join(lines) + "\n"


async def run_then_sigkill(
    raw: dict[str, Any], workdir: Path, when: Callable[[], bool], timeout: float = 120.0
) -> None:
    """A real `fedibot run` on `raw` (written to `workdir/config.toml`, its output in
    `workdir/bot.log`), SIGKILLed as soon as `when()` holds. Fails if it exits first."""
    config_file = workdir / "config.toml"
    config_file.write_text(to_toml(raw))
    log_path = workdir / "bot.log"
    with log_path.open("wb") as log_file:
        bot = subprocess.Popen(
            [sys.executable, "-m", "fedibot", "run"],
            cwd=REPO_ROOT,
            env={**os.environ, "FEDIBOT_CONFIG": str(config_file)},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            await eventually(lambda: when() or bot.poll() is not None, timeout=timeout)
            assert bot.poll() is None, log_path.read_text()
            os.kill(bot.pid, signal.SIGKILL)
            await asyncio.to_thread(bot.wait, 10)
        finally:
            if bot.poll() is None:
                bot.kill()
