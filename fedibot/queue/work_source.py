"""The durable queue as the generator worker's WorkSource."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
from pathlib import Path
from typing import Any

from fedibot.ops import metrics
from fedibot.queue.jobs import JobQueue, key_mode
from generator.config import GeneratorConfig
from generator.horde.overflow import OverflowSignals
from generator.horde.payload import ineligible
from generator.types import INTERRUPTED, GenerationError, GenerationRequest, JobResult

log = logging.getLogger("fedibot.worker")


def request_from_row(
    row: Any, options: dict[str, Any] | None = None, init_image: str | None = None
) -> GenerationRequest:
    """A job row → what the generator needs; the job's images use seeds seed, seed+1, …

    `options` is the job's `params["options"]` (QR text and placement, strength), needed for
    every job whose batch key is not plain text-to-image; `init_image` is the local file the
    worker wrote the job's stored picture to (image-to-image)."""
    options = options or {}
    mode = key_mode(getattr(row, "batch_key", None))
    qr = options.get("qr") if mode == "qr" else None
    strength = options.get("strength") if mode == "img2img" else None
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
        init_image=init_image if mode == "img2img" else None,
        strength=float(strength) if strength is not None else None,
        qr=str(qr) if qr is not None else None,
        qr_position=str(options.get("qr_position") or "center") if qr is not None else "center",
        qr_module=int(options["qr_module"])
        if qr is not None and options.get("qr_module")
        else None,
    )


class QueueWorkSource:
    """Claims compatible batches from the SQL queue; records images and errors there.

    Every process that claims also returns expired leases to the queue (at most every
    `sweep_seconds`), and its first claim under a worker id takes back at once whatever that
    id held before a restart. The PNGs the generator wrote are moved into the queue's image
    store with the completion (then deleted here), so any machine can post them.
    """

    def __init__(
        self,
        queue: JobQueue,
        *,
        kind: str = "local",
        sweep_seconds: float = 5.0,
        config: GeneratorConfig | None = None,
    ) -> None:
        self.queue = queue
        self.kind = kind
        self.sweep_seconds = sweep_seconds
        self.config = config  # needed by claim_for_horde (which jobs the Horde can take)
        self._recovered: set[str] = set()
        self._next_sweep = float("-inf")
        self._next_seen = float("-inf")
        self._inputs: dict[int, str] = {}  # job id → its picture's temporary file

    async def _housekeeping(self, worker_id: str) -> None:
        now = self.queue.settings.clock()
        try:
            if worker_id not in self._recovered:
                taken = await self.queue.requeue_expired(owner=worker_id)
                self._recovered.add(worker_id)
                if taken:
                    log.info("took back %d jobs this worker held before a restart", taken)
            if now >= self._next_sweep:
                self._next_sweep = now + self.sweep_seconds
                await self.queue.requeue_expired()
            if now >= self._next_seen:
                self._next_seen = now + self.sweep_seconds
                await self.queue.worker_seen(worker_id, self.kind, socket.gethostname())
        except Exception:  # never let housekeeping stop the claims
            log.exception("returning expired leases failed")

    async def claim(
        self, worker_id: str, max_batch: int, lease_seconds: float
    ) -> list[GenerationRequest]:
        await self._housekeeping(worker_id)
        rows = await self.queue.claim(worker_id, max_batch, lease_seconds, max_images=max_batch)
        return await self._requests(rows)

    async def _requests(self, rows: list[Any]) -> list[GenerationRequest]:
        """Rows → requests; QR and image-to-image jobs get their options (and their stored
        picture, written to a temporary file removed with the job's result or failure)."""
        special = [int(r.id) for r in rows if key_mode(r.batch_key) != "txt2img"]
        options = await self.queue.job_options(special) if special else {}
        requests = []
        for row in rows:
            init_image = None
            if key_mode(row.batch_key) == "img2img":
                init_image = await self._write_picture(int(row.id))
            requests.append(request_from_row(row, options.get(int(row.id)), init_image))
        return requests

    async def _write_picture(self, job_id: int) -> str | None:
        picture = await self.queue.picture(job_id)
        if picture is None:
            log.warning("job %s: its input picture is missing", job_id)
            return None
        suffix = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp"}.get(
            picture.mime_type, ".img"
        )

        def _write() -> str:
            fd, name = tempfile.mkstemp(prefix=f"fedibot-input-{job_id}-", suffix=suffix)
            with open(fd, "wb") as handle:
                handle.write(bytes(picture.data))
            return name

        path = await asyncio.to_thread(_write)
        old = self._inputs.pop(job_id, None)
        if old:
            await asyncio.to_thread(Path(old).unlink, missing_ok=True)
        self._inputs[job_id] = path
        return path

    async def _drop_picture(self, job_id: int) -> None:
        path = self._inputs.pop(job_id, None)
        if path:
            await asyncio.to_thread(Path(path).unlink, missing_ok=True)

    async def start(self, worker_id: str, job_ids: list[int]) -> None:
        """Rendering begins: the jobs count an attempt now (not at the claim)."""
        await self.queue.start(worker_id, job_ids)

    async def heartbeat(self, worker_id: str, job_ids: list[int], lease_seconds: float) -> None:
        await self.queue.heartbeat(worker_id, job_ids, lease_seconds)
        now = self.queue.settings.clock()
        if now >= self._next_seen:
            self._next_seen = now + self.sweep_seconds
            await self.queue.worker_seen(worker_id, self.kind, socket.gethostname())

    async def claim_for_horde(
        self, worker_id: str, max_jobs: int, lease_seconds: float
    ) -> list[GenerationRequest]:
        """Jobs the Horde can take (see JobQueue.claim_for_horde)."""
        config = self.config
        if config is None:
            raise RuntimeError("QueueWorkSource needs the generator config for the Horde")
        await self._housekeeping(worker_id)

        def eligible(row: Any) -> bool:
            # QR and image-to-image jobs need their options and picture: local workers only
            if key_mode(row.batch_key) != "txt2img":
                return False
            return ineligible(config, request_from_row(row)) is None

        rows = await self.queue.claim_for_horde(worker_id, max_jobs, lease_seconds, eligible)
        return [request_from_row(row) for row in rows]

    async def signals(self) -> OverflowSignals:
        """The overflow rule's inputs, from the database (all machines together)."""
        queued, rate, since = await self.queue.overflow_signals()
        return OverflowSignals(queued, rate, since)

    async def complete(self, worker_id: str, result: JobResult) -> None:
        files = [Path(image.path) for image in result.images]
        blobs = await asyncio.to_thread(lambda: [f.read_bytes() for f in files])
        rows = [
            {
                "index": image.index,
                "seed": image.seed,
                "path": str(image.path),
                "data": blob,
                "width": image.width,
                "height": image.height,
                "flagged": image.safety.flagged,
                "safety": {
                    "classifier": image.safety.classifier,
                    "labels": image.safety.labels,
                    "flagged": image.safety.flagged,
                },
            }
            for image, blob in zip(result.images, blobs, strict=True)
        ]
        summary = {
            "flagged": any(image.safety.flagged for image in result.images),
            "classifier": result.images[0].safety.classifier if result.images else "none",
        }
        metrics.GENERATION_SECONDS.observe(result.seconds)
        try:
            if not await self.queue.complete(
                worker_id, result.job_id, rows, generation_seconds=result.seconds, safety=summary
            ):
                log.warning(
                    "job %s finished after its lease was lost; result dropped", result.job_id
                )
        finally:
            await asyncio.to_thread(_remove, files)
            await self._drop_picture(result.job_id)

    async def fail(self, worker_id: str, job_id: int, error: GenerationError) -> None:
        await self._drop_picture(job_id)
        if error.code == INTERRUPTED:
            await self.queue.release(worker_id, [job_id])
            return
        await self.queue.fail(
            worker_id, job_id, error.code, error.message, retryable=error.retryable
        )


def _remove(files: list[Path]) -> None:
    """The generator's PNG files, once their bytes are in the image store (or dropped)."""
    for file in files:
        file.unlink(missing_ok=True)
    for folder in {f.parent for f in files}:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when empty
