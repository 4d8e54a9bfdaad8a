"""fetch_trust: read every trusted source and apply the rules, all or nothing.

If any source cannot be read, this raises (a FediseerError) and the caller keeps its last
good lists: there is no partial TrustResult.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fediseer_sync.client import FediseerClient
from fediseer_sync.config import FediseerConfig
from fediseer_sync.errors import FediseerError
from fediseer_sync.models import InstanceEntry, SourceSnapshot, TrustResult
from fediseer_sync.rules import compute_trust

MAX_CONCURRENT_REQUESTS = 4


async def fetch_trust(
    client: FediseerClient,
    config: FediseerConfig,
    *,
    concurrency: int = MAX_CONCURRENT_REQUESTS,
) -> TrustResult:
    """One request series per trusted domain (so provenance says who said what), then the rules.
    Raises the first FediseerError (the other requests are cancelled)."""
    if not config.trusted:
        raise ValueError("fediseer.trusted is empty: nothing to sync from")
    gate = asyncio.Semaphore(concurrency)
    need_censures = config.deny_censured_by > 0
    need_hesitations = need_censures and config.include_hesitations

    async def read(
        call: Callable[[list[str]], Awaitable[list[InstanceEntry]]], domain: str
    ) -> dict[str, InstanceEntry]:
        async with gate:
            return {e.domain: e for e in await call([domain])}

    tasks: dict[tuple[str, str], asyncio.Task[dict[str, InstanceEntry]]] = {}
    try:
        async with asyncio.TaskGroup() as group:
            for domain in config.trusted:
                tasks[domain, "e"] = group.create_task(read(client.approvals, domain))
                if need_censures:
                    tasks[domain, "c"] = group.create_task(read(client.censures_given, domain))
                if need_hesitations:
                    tasks[domain, "h"] = group.create_task(read(client.hesitations_given, domain))
    except BaseExceptionGroup as group_error:
        raise _first_error(group_error) from None

    snapshots = [
        SourceSnapshot(
            domain=domain,
            endorsements=tasks[domain, "e"].result(),
            censures=tasks[domain, "c"].result() if need_censures else None,
            hesitations=tasks[domain, "h"].result() if need_hesitations else None,
        )
        for domain in config.trusted
    ]
    return compute_trust(snapshots, config, fetched_at=datetime.now(UTC))


def _first_error(group: BaseExceptionGroup) -> BaseException:
    """Unwrap the TaskGroup's exception group, preferring a FediseerError."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, FediseerError):
            return exc
    return leaves[0]
