"""/healthz and Prometheus /metrics on a local port, served by `fedibot run`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fedibot.ops.metrics import QUEUE_DEPTH, REGISTRY

HealthCheck = Callable[[], Awaitable[dict[str, object]]]


class OpsServer:
    def __init__(self, host: str, port: int, health: HealthCheck) -> None:
        self.host, self.port, self.health = host, port, health
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        addresses = self._runner.addresses  # (host, port, ...) of each bound socket
        self.bound_port = addresses[0][1] if addresses else self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        started = time.perf_counter()
        try:
            body = await self.health()
        except Exception as exc:  # the database is down, say
            return web.json_response({"ok": False, "error": str(exc)}, status=503)
        body["check_ms"] = round((time.perf_counter() - started) * 1000, 2)
        return web.json_response(body, status=200 if body.get("ok") else 503)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def record_queue_depth(stats: dict[str, int]) -> None:
    for state, count in stats.items():
        QUEUE_DEPTH.labels(state=state).set(count)
