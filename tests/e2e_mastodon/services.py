"""Generator services for whole-app tests, in the shape `generator.worker.Worker` drives
(`render` / `store` / `generate`): one that always fails, one that waits at a gate."""

from __future__ import annotations

import threading
from typing import Any

from generator.service import GeneratorService


class FailingService:
    """Every render crashes, as a GPU that fell over would."""

    def __init__(self) -> None:
        self.calls = 0

    def render(self, requests: list[Any], progress: Any = None) -> list[Any]:
        self.calls += 1
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    def store(self, requests: list[Any], rendered: list[Any], seconds: float) -> list[Any]:
        raise AssertionError("nothing was rendered, nothing to store")

    def generate(self, requests: list[Any], progress: Any = None) -> list[Any]:
        return self.render(requests, progress)


class GatedService:
    """The real service, but each render waits until `open()` (or `open_for(n)` renders)."""

    def __init__(self, service: GeneratorService) -> None:
        self.service = service
        self.gate = threading.Event()
        self.waiting = threading.Event()  # a render is waiting at the gate

    def open(self) -> None:
        self.gate.set()

    def render(self, requests: list[Any], progress: Any = None) -> list[Any]:
        self.waiting.set()
        if not self.gate.wait(timeout=60):
            raise TimeoutError("the test never opened the gate")
        return self.service.render(requests, progress)

    def store(self, requests: list[Any], rendered: list[Any], seconds: float) -> list[Any]:
        return self.service.store(requests, rendered, seconds)

    def generate(self, requests: list[Any], progress: Any = None) -> list[Any]:
        return self.service.generate(requests, progress)

    def close(self) -> None:
        self.gate.set()
        self.service.close()
