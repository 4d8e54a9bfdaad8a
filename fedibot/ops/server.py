"""/healthz and Prometheus /metrics on a local port, served by `fedibot run`; and, when
`[generator.horde] webhook_url` is set, the AI Horde's webhook at that URL's path.

The Horde POSTs `{"request": <request id>, "id": <generation id>, "gen": ..., ...}` after
each delivered generation (AI-Horde `horde/classes/base/processing_generation.py`,
`send_webhook`). Its body is never trusted: the request id only makes the Horde worker check
that request sooner (`HordeFlow.hint`, still rate-limited); the result comes from the Horde's
API. Put the path behind your reverse proxy at the public https URL you configured.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fedibot.ops.metrics import QUEUE_DEPTH, REGISTRY

HealthCheck = Callable[[], Awaitable[dict[str, object]]]
HordeHint = Callable[[str], None]

log = logging.getLogger("fedibot.ops")
WEBHOOK_MAX_BYTES = 16 * 1024 * 1024  # a generation may come inline as base64


class OpsServer:
    def __init__(
        self,
        host: str,
        port: int,
        health: HealthCheck,
        *,
        horde_webhook: tuple[str, HordeHint] | None = None,
    ) -> None:
        self.host, self.port, self.health = host, port, health
        self.horde_webhook = horde_webhook  # (path, hint)
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=WEBHOOK_MAX_BYTES)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        if self.horde_webhook is not None:
            app.router.add_post(self.horde_webhook[0], self._horde_webhook)
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

    async def _horde_webhook(self, request: web.Request) -> web.Response:
        assert self.horde_webhook is not None
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        request_id = body.get("request") if isinstance(body, dict) else None
        if not isinstance(request_id, str) or not 0 < len(request_id) <= 64:
            return web.json_response({"error": "no 'request' id in the body"}, status=400)
        log.debug("Horde webhook for request %s", request_id)
        self.horde_webhook[1](request_id)
        return web.json_response({"ok": True})

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


def record_queue_depth(stats: dict[str, int]) -> None:
    for state, count in stats.items():
        QUEUE_DEPTH.labels(state=state).set(count)
