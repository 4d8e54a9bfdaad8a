"""Serving the console on its own port (`[console] host`/`port`), apart from the ops server:
/healthz and /metrics stay open to a local scraper while every console page needs sign-in."""

from __future__ import annotations

from aiohttp import web

from fedibot.console.context import ConsoleContext
from fedibot.console.web import build_app


class ConsoleServer:
    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self.app = build_app(ctx)
        self._runner: web.AppRunner | None = None
        self.bound_port: int | None = None

    @property
    def url(self) -> str:
        host = self.ctx.config.console.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.bound_port}/"

    async def start(self) -> None:
        cfg = self.ctx.config.console
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port)
        await site.start()
        addresses = self._runner.addresses
        self.bound_port = int(addresses[0][1]) if addresses else cfg.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
