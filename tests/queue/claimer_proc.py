"""A claimer in its own OS process: claims batches until the queue is empty.

usage: python -m tests.queue.claimer_proc DB_URL WORKER_ID OUT_FILE [--hold]
Writes one completed job id per line. With --hold it claims one batch, writes the claimed
ids, then sleeps (to be killed mid-lease).
"""

from __future__ import annotations

import asyncio
import sys

from fedibot.db import Database
from fedibot.queue import JobQueue, QueueSettings


async def main(url: str, worker: str, out: str, hold: bool) -> None:
    db = Database(url)
    queue = JobQueue(db, QueueSettings(per_requester_in_flight=10_000, lease_seconds=2))
    with open(out, "w") as fh:
        if hold:
            batch = await queue.claim(worker, max_batch=8)
            fh.write("".join(f"{r.id}\n" for r in batch))
            fh.flush()
            await asyncio.sleep(3600)
        while batch := await queue.claim(worker, max_batch=8):
            for row in batch:
                if await queue.complete(worker, row.id, []):
                    fh.write(f"{row.id}\n")
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], "--hold" in sys.argv))
