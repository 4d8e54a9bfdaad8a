"""The durable queue as the generator worker's WorkSource."""

from __future__ import annotations

import logging
from typing import Any

from fedibot.ops import metrics
from fedibot.queue.jobs import JobQueue
from generator.types import INTERRUPTED, GenerationError, GenerationRequest, JobResult

log = logging.getLogger("fedibot.worker")


def request_from_row(row: Any) -> GenerationRequest:
    """A job row → what the generator needs; the job's images use seeds seed, seed+1, …"""
    return GenerationRequest(
        job_id=int(row.id),
        prompt=row.prompt,
        negative_prompt=row.negative_prompt,
        seeds=[int(row.seed) + i for i in range(max(1, int(row.n)))],
        model=row.model,
        width=int(row.width),
        height=int(row.height),
        steps=int(row.steps),
        guidance=float(row.guidance),
    )


class QueueWorkSource:
    """Claims compatible batches from the SQL queue; records images and errors there."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    async def claim(
        self, worker_id: str, max_batch: int, lease_seconds: float
    ) -> list[GenerationRequest]:
        rows = await self.queue.claim(worker_id, max_batch, lease_seconds, max_images=max_batch)
        return [request_from_row(row) for row in rows]

    async def heartbeat(self, worker_id: str, job_ids: list[int], lease_seconds: float) -> None:
        await self.queue.heartbeat(worker_id, job_ids, lease_seconds)

    async def complete(self, worker_id: str, result: JobResult) -> None:
        rows = [
            {
                "index": image.index,
                "seed": image.seed,
                "path": str(image.path),
                "width": image.width,
                "height": image.height,
                "flagged": image.safety.flagged,
                "safety": {
                    "classifier": image.safety.classifier,
                    "labels": image.safety.labels,
                    "flagged": image.safety.flagged,
                },
            }
            for image in result.images
        ]
        summary = {
            "flagged": any(image.safety.flagged for image in result.images),
            "classifier": result.images[0].safety.classifier if result.images else "none",
        }
        metrics.GENERATION_SECONDS.observe(result.seconds)
        if not await self.queue.complete(
            worker_id, result.job_id, rows, generation_seconds=result.seconds, safety=summary
        ):
            log.warning("job %s finished after its lease was lost; result dropped", result.job_id)

    async def fail(self, worker_id: str, job_id: int, error: GenerationError) -> None:
        if error.code == INTERRUPTED:
            await self.queue.release(worker_id, [job_id])
            return
        await self.queue.fail(
            worker_id, job_id, error.code, error.message, retryable=error.retryable
        )
