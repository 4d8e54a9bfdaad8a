"""A claimer in its own OS process: claims batches until the queue is empty.

usage: python -m tests.queue.claimer_proc DB_URL WORKER_ID OUT_FILE [--hold] [--go FILE]
    [--lease SECONDS]
Writes one completed job id per line. With --hold it claims one batch, writes the claimed
ids, then sleeps (to be killed mid-lease). With --go it writes OUT_FILE.ready and waits for
FILE to exist before claiming, so several processes start together; each batch then takes a
couple of milliseconds of pretend work, as a real worker's would.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from fedibot.queue.jobs import JobQueue, QueueSettings
from fedibot.storage.database import Database


async def main(url: str, worker: str, out: str, hold: bool) -> None:
    db = Database(url)
    lease = float(sys.argv[sys.argv.index("--lease") + 1]) if "--lease" in sys.argv else 2.0
    queue = JobQueue(db, QueueSettings(per_requester_in_flight=10_000, lease_seconds=lease))
    go = sys.argv[sys.argv.index("--go") + 1] if "--go" in sys.argv else None
    if go:
        Path(out + ".ready").touch()
        while not Path(go).exists():
            await asyncio.sleep(0.01)
    with open(out, "w") as fh:
        if hold:
            batch = await queue.claim(worker, max_batch=8)
            fh.write("".join(f"{r.id}\n" for r in batch))
            fh.flush()
            await asyncio.sleep(3600)
        while batch := await queue.claim(worker, max_batch=8):
            if go:
                await asyncio.sleep(0.002)
            for row in batch:
                if await queue.complete(worker, row.id, []):
                    fh.write(f"{row.id}\n")
    await db.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], "--hold" in sys.argv))
