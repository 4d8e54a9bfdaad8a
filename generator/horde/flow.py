"""One job on the Horde, as a resumable state machine over a HordeJobStore.

    (no record) ──record_submitting──▶ submitting ──POST 202, record_submitted──▶ submitted
    submitted ──check…check (done)──▶ status ──▶ HordeResult (images) | GenerationError

The flow never writes `done`: the worker does, after the outcome reached the queue, so a crash
in between re-reads the finished request on restart instead of losing it. A record found in
`submitting` (crash or ambiguous POST) is submitted again only while `submissions <
max_submissions` (see store.py for why).

Time: the Horde's limits and the waits run on the client's clock (monotonic, injected in
tests). The request's own age is counted from `submitted_at`, which is wall-clock time
(`wall`), because a job may be resumed by another machine or after a reboot, where a
monotonic reading from the first machine means nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from generator.config import GeneratorConfig
from generator.horde import codes
from generator.horde.api import Generation, RequestStatus
from generator.horde.client import HordeClient, HordeError
from generator.horde.payload import ineligible, to_payload
from generator.horde.store import SUBMITTED, HordeJobRecord, HordeJobStore
from generator.types import GenerationError, GenerationRequest

log = logging.getLogger("generator.horde")


@dataclass(frozen=True)
class HordeImage:
    seed: int
    data: bytes  # WebP (or whatever the worker sent): decoded and classified by our pipeline
    worker: str = ""


@dataclass
class HordeResult:
    job_id: int
    horde_id: str
    images: list[HordeImage]
    censored: int = 0
    notices: list[str] = field(default_factory=list)  # e.g. horde_partially_censored
    kudos: float = 0.0


def censorship(gen: Generation) -> str | None:
    """Our code when a worker censored this image (the image is then a placeholder)."""
    marks = {m.value for m in gen.gen_metadata if m.type == "censorship"}
    if "csam" in marks:
        return codes.HORDE_CENSORED_CSAM
    if gen.censored or gen.state == "censored" or marks:
        return codes.HORDE_CENSORED
    return None


class HordeFlow:
    """Shared by all jobs of one worker (it holds the pause after an IP timeout)."""

    def __init__(
        self,
        client: HordeClient,
        store: HordeJobStore,
        config: GeneratorConfig,
        wall: Callable[[], float] = time.time,
    ):
        self.client = client
        self.wall = wall
        self.store = store
        self.config = config
        self.h = config.horde
        self.clock = client.clock
        self.local = config.backend != "horde"
        self.paused_until = float("-inf")
        self._hints: dict[str, asyncio.Event] = {}

    @property
    def paused(self) -> bool:
        return self.clock.now() < self.paused_until

    def hint(self, horde_id: str) -> None:
        """A webhook said something happened: check sooner (still rate-limited, and the answer
        comes from check/status, never from the webhook's body)."""
        ev = self._hints.get(horde_id)
        if ev is not None:
            ev.set()

    def _error(self, code: str, detail: str = "") -> GenerationError:
        return codes.error(code, detail, local=self.local)

    async def run(self, req: GenerationRequest) -> HordeResult | GenerationError:
        """Submit (unless a recorded id exists) and poll to the end."""
        why = ineligible(self.config, req)
        if why:
            return self._error(codes.HORDE_NOT_ELIGIBLE, why)
        rec = await self.store.get(req.job_id)
        if rec is None or rec.state != SUBMITTED or rec.horde_id is None:
            got = await self._submit(req, rec)
            if isinstance(got, GenerationError):
                return got
            rec = got
        assert rec.horde_id is not None
        try:
            return await self._poll(req, rec.horde_id, self._remaining(rec.submitted_at))
        finally:
            self._hints.pop(rec.horde_id, None)

    async def _submit(
        self, req: GenerationRequest, rec: HordeJobRecord | None
    ) -> HordeJobRecord | GenerationError:
        payload = to_payload(self.config, req)
        while True:
            if rec is not None and rec.state == "submitting":
                if rec.submissions >= self.h.max_submissions:
                    return self._error(
                        codes.HORDE_UNCONFIRMED,
                        f"{rec.submissions} submissions without a recorded Horde id",
                    )
                log.warning(
                    "job %s: a submission may have reached the Horde without its id being "
                    "recorded; submitting again (%d of %d)",
                    req.job_id,
                    rec.submissions + 1,
                    self.h.max_submissions,
                )
            rec = await self.store.record_submitting(req)  # BEFORE the request
            try:
                answer = await self.client.submit(payload)
            except HordeError as exc:
                if exc.rc in codes.PAUSE_RCS:
                    self.paused_until = self.clock.now() + self.h.pause_after_ip_timeout_s
                if exc.ambiguous:
                    await self.clock.sleep(self.h.retry_base_s)
                    continue  # the record stays `submitting`; the count above decides
                return self._error(exc.code, exc.rc or f"HTTP {exc.status}")
            now = self.wall()
            await self.store.record_submitted(req.job_id, answer.id, now)  # AFTER the answer
            for w in answer.warnings:
                log.info("job %s: Horde warning %s", req.job_id, w.code)
            log.info("job %s: Horde request %s (%.1f kudos)", req.job_id, answer.id, answer.kudos)
            return HordeJobRecord(
                req.job_id, req, SUBMITTED, answer.id, rec.submissions, submitted_at=now
            )

    def _remaining(self, submitted_at: float | None) -> float:
        """Seconds left of `timeout_s` for a request submitted at wall time `submitted_at`.
        A value below 10^9 (before 2001) was recorded by an older version on a monotonic
        clock: its age is unknown, so the full time counts from now."""
        if submitted_at is None or submitted_at < 1e9:
            return self.h.timeout_s
        return self.h.timeout_s - max(0.0, self.wall() - submitted_at)

    async def _poll(
        self, req: GenerationRequest, horde_id: str, remaining: float
    ) -> HordeResult | GenerationError:
        impossible_since: float | None = None
        self._hints.setdefault(horde_id, asyncio.Event())
        deadline = self.clock.now() + remaining
        while True:
            now = self.clock.now()
            if now > deadline:
                await self._cancel(horde_id)
                return self._error(codes.HORDE_EXPIRED, f"no result after {self.h.timeout_s:g}s")
            try:
                chk = await self.client.check(horde_id)
            except HordeError as exc:
                if exc.code == codes.HORDE_EXPIRED:
                    return self._error(codes.HORDE_EXPIRED, exc.rc or f"HTTP {exc.status}")
                log.info("job %s: check failed (%s); polling on", req.job_id, exc.code)
                await self._wait(horde_id, self.h.max_check_interval_s)
                continue
            if chk.faulted:
                return self._error(codes.HORDE_FAULTED)
            if chk.done:
                return await self._collect(req, horde_id)
            if not chk.is_possible:
                impossible_since = now if impossible_since is None else impossible_since
                if now - impossible_since >= self.h.impossible_grace_s:
                    await self._cancel(horde_id)
                    return self._error(codes.HORDE_IMPOSSIBLE, self.h.models[req.model])
            else:
                impossible_since = None
            wait = min(max(chk.wait_time / 2, self.h.check_interval_s), self.h.max_check_interval_s)
            await self._wait(horde_id, wait)

    async def _collect(
        self, req: GenerationRequest, horde_id: str
    ) -> HordeResult | GenerationError:
        try:
            st = await self.client.status(horde_id)
        except HordeError as exc:
            code = exc.code if exc.code == codes.HORDE_EXPIRED else codes.HORDE_BUSY
            return self._error(code, exc.rc or f"HTTP {exc.status}")
        return await self.results(req, horde_id, st)

    async def results(
        self, req: GenerationRequest, horde_id: str, st: RequestStatus
    ) -> HordeResult | GenerationError:
        """Generations → images to post, or the code for why there are none."""
        if st.faulted:
            return self._error(codes.HORDE_FAULTED)
        if not st.generations:
            return self._error(codes.HORDE_NO_IMAGES, f"restarted {st.restarted}")
        marks = [censorship(g) for g in st.generations]
        if codes.HORDE_CENSORED_CSAM in marks:  # never post anything from such a request
            return self._error(codes.HORDE_CENSORED_CSAM)
        kept = [(i, g) for i, (g, m) in enumerate(zip(st.generations, marks, strict=True)) if not m]
        if not kept:
            return self._error(codes.HORDE_CENSORED, f"{len(marks)} of {len(marks)} censored")
        images: list[HordeImage] = []
        for i, gen in kept:
            data = await self._image_bytes(gen)
            if data is None:
                continue
            images.append(HordeImage(_seed(gen.seed, req, i), data, gen.worker_name))
        if not images:
            return self._error(codes.HORDE_BAD_IMAGE)
        censored = len(marks) - len(kept)
        notices = [codes.HORDE_PARTIAL_CENSORED] if censored else []
        return HordeResult(req.job_id, horde_id, images, censored, notices, st.kudos)

    async def _image_bytes(self, gen: Generation) -> bytes | None:
        import base64
        import binascii

        if gen.img.startswith(("https://", "http://")):
            try:
                return await self.client.download(gen.img)
            except HordeError as exc:
                log.warning("Horde image %s: %s", gen.id, exc)
                return None
        try:
            return base64.b64decode(gen.img, validate=True) or None
        except (binascii.Error, ValueError):
            return None

    async def _cancel(self, horde_id: str) -> None:
        with contextlib.suppress(HordeError):
            await self.client.cancel(horde_id)

    async def _wait(self, horde_id: str, seconds: float) -> None:
        ev = self._hints.setdefault(horde_id, asyncio.Event())
        if not ev.is_set():
            sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
            waiter = asyncio.ensure_future(ev.wait())
            try:
                await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()
                waiter.cancel()
        ev.clear()


def _seed(text: str, req: GenerationRequest, index: int) -> int:
    """The worker's seed when it is a number, else the one we asked for."""
    try:
        return int(text)
    except ValueError:
        return req.seeds[min(index, len(req.seeds) - 1)]
