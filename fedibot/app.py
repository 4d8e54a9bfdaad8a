"""`fedibot run`: adapters' listeners, ingest, replier, scheduler, ops server and (optionally)
a generator worker, in one asyncio process. Everything resumes from the database."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from federation.base import Adapter
from fedibot.config.loader import FedibotConfig
from fedibot.intake.grammar import PromptRules, usage_text
from fedibot.intake.ingest import Ingest
from fedibot.moderation.policy import Policy
from fedibot.moderation.prompt_filter import PromptFilter
from fedibot.ops.metrics import record_budgets
from fedibot.ops.server import OpsServer, record_queue_depth
from fedibot.outbound.budgets import BudgetGate
from fedibot.outbound.post_once import PostOnce
from fedibot.outbound.replier import Replier
from fedibot.queue.jobs import JobQueue, QueueSettings
from fedibot.storage.budgets import BudgetLedger
from fedibot.storage.cursors import DbCursorStore
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade
from fedibot.storage.models import JobState

log = logging.getLogger("fedibot.app")


def queue_settings(config: FedibotConfig, clock: Callable[[], float] = time.time) -> QueueSettings:
    return QueueSettings.from_config(config, clock)


def build_adapter(account: Any, cursors: DbCursorStore) -> Adapter:
    """The account's adapter; its `env:` secrets are read now (ConfigError when unset)."""
    from fedibot.config.secrets import resolve_secrets

    account = resolve_secrets(account, f"account {account.name}")
    if account.platform == "mastodon":
        from federation.mastodon import MastodonAdapter

        return MastodonAdapter(account, cursors)
    from federation.lemmy import LemmyAdapter

    return LemmyAdapter(account, cursors)


def worker_name(role: str, data_dir: str | None = None) -> str:
    """A worker id that survives restarts: role, host and a hash of the data dir, so a
    restarted process takes back at once the jobs its previous incarnation held (see
    JobQueue.requeue_expired). A second live process on the same host and data dir gets a
    suffix (a lock file tells them apart), so two never share an id."""
    host = socket.gethostname()
    if data_dir is None:
        return f"{role}-{host}-{os.getpid()}"
    folder = Path(data_dir).expanduser().resolve()
    digest = hashlib.sha1(str(folder).encode()).hexdigest()[:8]
    name = f"{role}-{host}-{digest}"
    if _lock_identity(folder / f".{role}.lock"):
        return name
    return f"{name}-{os.getpid()}-{next(_SUFFIX)}"


_SUFFIX = itertools.count(1)
_IDENTITY_LOCKS: dict[str, int] = {}


def _lock_identity(path: Path) -> bool:
    """Hold an exclusive lock on `path` for the life of this process (False: taken)."""
    if str(path) in _IDENTITY_LOCKS:
        return False  # this process already runs that role on that data dir
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except (ImportError, OSError):
        return True  # no locking here (e.g. Windows): trust the operator
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _IDENTITY_LOCKS[str(path)] = fd
    return True


def release_worker_names() -> None:
    """Let go of the identity locks (an App stopping; a later App may take the names)."""
    while _IDENTITY_LOCKS:
        _, fd = _IDENTITY_LOCKS.popitem()
        with contextlib.suppress(OSError):
            os.close(fd)


class Generators:
    """What `[generator] backend` asks for, on the shared queue: the local Worker (`local`,
    `local+horde`) and/or a HordeWorker (`horde`, `local+horde`). With `horde` alone no model
    is loaded here (the service only classifies and writes the Horde's images)."""

    def __init__(
        self, config: FedibotConfig, queue: JobQueue, service: Any, *, exit_when_empty: bool = False
    ) -> None:
        from fedibot.queue.work_source import QueueWorkSource
        from generator.worker import Worker

        gen = config.generator
        self.local: Any = None
        self.horde: Any = None
        self._client: Any = None
        if gen.backend in ("local", "local+horde"):
            self.local = Worker(
                QueueWorkSource(queue, config=gen),
                service,
                gen,
                worker_name("worker", config.data_dir),
                exit_when_empty=exit_when_empty,
            )
        if gen.backend in ("horde", "local+horde"):
            from fedibot.queue.horde_store import SqlHordeJobStore
            from generator.horde.client import HordeClient
            from generator.horde.flow import HordeFlow
            from generator.horde.worker import HordeWorker

            horde_id = worker_name("horde", config.data_dir)
            source = QueueWorkSource(queue, kind="horde", config=gen)
            store = SqlHordeJobStore(queue, horde_id, gen.lease_seconds)
            from fedibot.config.secrets import resolve_secrets

            # An `env:NAME` key whose variable was unset at load time is read now (ConfigError
            # naming it), never sent to the Horde as the literal text.
            self._client = HordeClient(resolve_secrets(gen.horde, "generator.horde"))
            self.horde = HordeWorker(
                source,
                HordeFlow(self._client, store, gen),
                service,
                gen,
                signals=source.signals if gen.backend == "local+horde" else None,
                on_notice=lambda job_id, code, text: queue.add_notice(job_id, code, text),
                worker_id=horde_id,
                exit_when_idle=exit_when_empty,
            )

    def runs(self) -> dict[str, Awaitable[Any]]:
        out: dict[str, Awaitable[Any]] = {}
        if self.local is not None:
            out["worker"] = self.local.run()
        if self.horde is not None:
            out["horde-worker"] = self.horde.run()
        return out

    def wake(self) -> None:
        if self.local is not None:
            self.local.wake()
        if self.horde is not None:
            self.horde._wake.set()

    def request_stop(self) -> None:
        if self.local is not None:
            self.local.request_stop()
        if self.horde is not None:
            self.horde.request_stop()

    @property
    def stopping(self) -> bool:
        return any(w is not None and w._stopping for w in (self.local, self.horde))

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


class App:
    """The whole bot. `adapters` and `service` may be given (tests, benchmarks)."""

    def __init__(
        self,
        config: FedibotConfig,
        *,
        with_worker: bool = True,
        adapters: dict[str, Adapter] | None = None,
        service: Any = None,
        db: Database | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.with_worker = with_worker
        self.db = db or Database(config.database.url, echo=config.database.echo)
        self.queue = JobQueue(self.db, queue_settings(config, clock))
        self.policy = Policy(
            self.db,
            config.policy,
            config.quotas,
            PromptFilter(config.prompt_filter),
            config.own_domains,
            clock=clock,
        )
        self.ingest = Ingest(self.queue, self.policy, config)
        self.cursors = DbCursorStore(self.db)
        self.adapters = (
            adapters
            if adapters is not None
            else {acc.name: build_adapter(acc, self.cursors) for acc in config.accounts}
        )
        rules = PromptRules.from_config(
            config.prompt,
            config.generator.models,
            config.generator.model(config.generator.default_model).preset,
        )
        # The one way out: every post of this process (replies, notices, campaign runs).
        self.outbound = PostOnce(self.db, clock)
        self.campaigns: Any = None
        if config.campaigns:
            from fedibot.campaigns.manager import CampaignManager

            self.campaigns = CampaignManager(
                config, self.queue, self.db, clock=clock, outbound=self.outbound
            )
        self.replier = Replier(
            self.queue,
            self.adapters,
            self.policy,
            config,
            usage=usage_text(rules),
            worker_id=worker_name("replier", config.data_dir),
            campaign_poster=self._post_campaign,
            outbound=self.outbound,
            gate=BudgetGate(BudgetLedger(self.db, clock), config.replies.grid),
        )
        self._service = service
        self.worker: Any = None
        self.generators: Generators | None = None
        self.ops: OpsServer | None = None
        self.console: Any = None
        self._clock = clock
        self.scheduler: Any = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()
        self.started = asyncio.Event()
        self.db_clock = clock

    def _horde_webhook(self) -> tuple[str, Callable[[str], None]] | None:
        """(path, hint) when `[generator.horde] webhook_url` is set and the Horde is used."""
        gen = self.config.generator
        if gen.backend == "local" or not gen.horde.webhook_url:
            return None
        path = urlsplit(gen.horde.webhook_url).path or "/"

        def hint(request_id: str) -> None:
            horde = self.generators.horde if self.generators is not None else None
            if horde is not None:
                horde.flow.hint(request_id)

        return path, hint

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await upgrade(self.db)
        await self.queue.requeue_expired(owner=self.replier.worker_id)
        from fedibot.storage.images import prune_cache

        cache = Path(self.config.data_dir) / "cache" / "media"
        await asyncio.to_thread(prune_cache, cache)  # files of replies that ended in a retry
        if self.config.server.enabled:
            self.ops = OpsServer(
                self.config.server.host,
                self.config.server.port,
                self.health,
                horde_webhook=self._horde_webhook(),
            )
            await self.ops.start()
            log.info(
                "health and metrics on http://%s:%s/", self.config.server.host, self.ops.bound_port
            )
        if self.config.console.configured:
            from fedibot.console.context import ConsoleContext
            from fedibot.console.server import ConsoleServer

            self.console = ConsoleServer(
                ConsoleContext(self.config, self.db, self.queue, self._clock)
            )
            await self.console.start()
            log.info("operator console on %s", self.console.url)
        self._spawn(self._maintenance(), "maintenance")
        self.replier.expect_start(self.adapters)  # the listeners start them
        for name, adapter in self.adapters.items():
            self._spawn(self._listen(name, adapter), f"listen-{name}")
        self._spawn(self.replier.run(), "replier")
        if self.with_worker:
            self._start_worker()
        self._start_scheduler()
        self.started.set()

    async def run_until_stopped(self) -> None:
        await self.start()
        await self._stopping.wait()
        await self.stop()

    def request_stop(self, signame: str | None = None) -> None:
        if signame and not self._stopping.is_set():
            log.warning(
                "%s received: stopping (finishing the current batch, then closing)", signame
            )
        self._stopping.set()

    async def stop(self) -> None:
        """Finish the current batch, stop listening, close everything."""
        self._stopping.set()
        if self.worker is not None:
            self.worker.request_stop()
        if self.generators is not None:
            self.generators.request_stop()
        self.replier.request_stop()
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        worker_task = next((t for t in self._tasks if t.get_name() == "worker"), None)
        if worker_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(worker_task, timeout=600)
        horde_task = next((t for t in self._tasks if t.get_name() == "horde-worker"), None)
        if horde_task is not None:  # open Horde requests stay recorded; a restart resumes them
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(horde_task), timeout=5)
        for task in self._tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for adapter in self.adapters.values():
            with contextlib.suppress(Exception):
                await adapter.close()
        if self.ops is not None:
            await self.ops.stop()
        if self.console is not None:
            await self.console.stop()
        if self._service is not None and hasattr(self._service, "close"):
            await asyncio.to_thread(self._service.close)
        if self.generators is not None:
            await self.generators.close()
        await self.db.dispose()
        release_worker_names()
        log.info("fedibot stopped: orderly shutdown complete")

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.append(task)

    # ------------------------------------------------------------------ parts
    async def _listen(self, name: str, adapter: Adapter) -> None:
        """Start and listen forever; a crash restarts with backoff (nothing is lost: the
        adapter catches up from its stored cursor)."""
        delay = 1.0
        while not self._stopping.is_set():
            try:
                me = await adapter.start()
                log.info("account %s is %s", name, me.acct)
                self.replier.mark_ready(name)
                delay = 1.0
                await adapter.listen(self.ingest)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                from fedibot.ops import metrics

                metrics.ADAPTER_ERRORS.labels(account=name, kind="listener").inc()
                log.warning("account %s: %s; retrying in %.0fs", name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)

    def _start_worker(self) -> None:
        from generator.service import GeneratorService

        if self._service is None:
            self._service = GeneratorService(self.config.generator)
        generators = self.generators = Generators(self.config, self.queue, self._service)
        self.worker = generators.local or generators.horde
        self.queue.add_listener(
            lambda state: generators.wake() if state == JobState.QUEUED else None
        )
        for name, run in generators.runs().items():
            self._spawn(run, name)

    def _start_scheduler(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self.scheduler = AsyncIOScheduler(timezone="UTC")
        fediseer = self.config.fediseer
        if fediseer.enabled:
            from fedibot.moderation.fediseer_apply import sync_fediseer

            async def _sync() -> None:
                outcome = await sync_fediseer(self.db, fediseer, actor="scheduler")
                log.info("fediseer sync: %s %s", outcome.status, outcome.error or "")

            self.scheduler.add_job(
                _sync,
                "interval",
                minutes=fediseer.sync_interval_minutes,
                jitter=60,
                max_instances=1,
                coalesce=True,
                next_run_time=None,
                id="fediseer-sync",
            )
            self._spawn(_sync(), "fediseer-first-sync")
        if self.config.queue.retention_days > 0:
            self.scheduler.add_job(
                self._purge, "interval", hours=1, max_instances=1, coalesce=True, id="retention"
            )
        if self.campaigns is not None:
            self.campaigns.schedule(self.scheduler)
        self.scheduler.start()

    async def _purge(self) -> None:
        await self.queue.purge(self.config.queue.retention_days * 86400)

    async def _maintenance(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.queue.requeue_expired()
                record_queue_depth(await self.queue.stats())
                if self.replier.gate.ledger is not None:
                    record_budgets(await self.replier.gate.ledger.snapshot(), self.db_clock())
            except Exception:
                log.exception("maintenance pass failed")
            await asyncio.sleep(5)

    async def _post_campaign(self, row: Any, images: list[Any], adapter: Adapter) -> Any:
        if self.campaigns is None:
            from federation.errors import PermanentError

            raise PermanentError(f"campaign job {row.id} but campaigns are not configured")
        return await self.campaigns.post(row, images, adapter)

    async def health(self) -> dict[str, object]:
        stats = await self.queue.stats()
        dead = sorted(t.get_name() for t in self._tasks if t.done() and not t.cancelled())
        dead = [name for name in dead if name != "fediseer-first-sync"]
        return {
            "ok": not dead,
            "stopped_tasks": dead,
            "database": self.db.display_url,
            "queue": {k: v for k, v in stats.items() if v},
            "accounts": sorted(self.adapters),
            "worker": self.generators is not None and not self.generators.stopping,
        }
