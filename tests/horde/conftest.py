"""Fixtures: a fake Horde on 127.0.0.1 sharing a manual clock with the client under test."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from generator.config import GeneratorConfig, SafetyConfig
from generator.horde.client import HordeClient
from generator.horde.flow import HordeFlow
from generator.horde.ratelimit import ManualClock
from generator.horde.store import MemoryHordeJobStore
from generator.horde.worker import HordeWorker
from generator.service import GeneratorService
from generator.types import GenerationRequest, SafetyResult
from tests.fakes.horde_server import FakeHorde
from tests.memory_source import MemoryHordeWorkSource

SECRET_KEY = "sEcReT-hOrDe-KeY-4242"


class RecordingClassifier:
    """Stands in for NudeNet: records every image it was shown; flags pure black ones."""

    name = "recording"

    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self._lock = threading.Lock()

    def classify(self, image: Image.Image) -> SafetyResult:
        with self._lock:
            self.seen.append(image.size)
        black = image.convert("L").getextrema() == (0, 0)
        return SafetyResult({"black": 1.0 if black else 0.0}, black, self.name)


def make_config(url: str, tmp: Path, backend: str = "local+horde", **horde: Any) -> GeneratorConfig:
    h: dict[str, Any] = {
        "base_url": url,
        "api_key": SECRET_KEY,
        "contact": "https://bot.example/about",
        "models": {"tiny": "stable_diffusion"},
        "retry_base_s": 1.0,
    }
    h.update(horde)
    return GeneratorConfig(
        data_dir=str(tmp),
        safety=SafetyConfig(classifier="none"),
        backend=backend,  # type: ignore[arg-type]
        horde=h,  # type: ignore[arg-type]
        lease_seconds=600.0,
        heartbeat_seconds=30.0,
        idle_poll_seconds=0.05,
    )


def req(job_id: int, n: int = 1, **kw: Any) -> GenerationRequest:
    return GenerationRequest(
        job_id=job_id,
        prompt=f"a lighthouse {job_id}",
        seeds=[100 * job_id + i for i in range(n)],
        **kw,
    )


async def wait_for(cond: Callable[[], bool | Awaitable[bool]], tries: int = 20000) -> None:
    """Yield to the loop until `cond` holds (no wall-clock timing; bounded by tries)."""
    for _ in range(tries):
        got = cond()
        if not isinstance(got, bool):
            got = await got
        if got:
            return
        await asyncio.sleep(0.001 if _ % 50 == 49 else 0)
    raise AssertionError("condition never became true")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeHorde]:
    async with FakeHorde(clock) as server:
        yield server


class Rig:
    """A config, store, source, classifier and service; `worker()` builds a fresh client and
    worker on them (what a process restart does)."""

    def __init__(self, fake: FakeHorde, clock: ManualClock, tmp: Path, **cfg: Any) -> None:
        self.fake, self.clock = fake, clock
        self.config = make_config(fake.url, tmp, **cfg)
        self.store = MemoryHordeJobStore()
        self.source = MemoryHordeWorkSource(self.config, self.store, max_attempts=1)
        self.classifier = RecordingClassifier()
        self.service = GeneratorService(self.config, classifier=self.classifier)
        self.clients: list[HordeClient] = []
        self.notices: list[tuple[int, str, str]] = []

    def worker(self, **kw: Any) -> HordeWorker:
        client = HordeClient(self.config.horde, clock=self.clock, version="9.9")
        self.clients.append(client)
        flow = HordeFlow(client, self.store, self.config)

        async def notice(job_id: int, code: str, text: str) -> None:
            self.notices.append((job_id, code, text))

        kw.setdefault("exit_when_idle", True)
        return HordeWorker(self.source, flow, self.service, self.config, on_notice=notice, **kw)

    async def run(self, *requests: GenerationRequest) -> HordeWorker:
        for r in requests:
            self.source.put(r)
        worker = self.worker()
        await worker.run()
        return worker

    async def close(self) -> None:
        for c in self.clients:
            await c.close()


@pytest.fixture
async def rig_factory(
    fake: FakeHorde, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    def make(**cfg: Any) -> Rig:
        rig = Rig(fake, clock, tmp_path, **cfg)
        rigs.append(rig)
        return rig

    yield make
    for r in rigs:
        await r.close()


@pytest.fixture
def rig(rig_factory: Callable[..., Rig]) -> Rig:
    return rig_factory()
