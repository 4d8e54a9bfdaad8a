"""The diffusers backend: validated, batched, seed-reproducible generation with OOM splitting.

All images of compatible requests go through ONE pipeline call (up to `max_batch` images), each
with its own CPU `torch.Generator`, so a seed gives the same image whatever batch it ran in (and
on whatever device, up to float noise). On out-of-memory the batch is halved and retried; a
single image that still does not fit fails its request with `too_large`.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from generator.config import GeneratorConfig
from generator.device import free_memory, is_oom, resolve_device, resolve_dtype
from generator.limits import check_request
from generator.models import LoadedModel, ModelCache, _one_line
from generator.types import (
    GENERATION_FAILED,
    TOO_LARGE,
    BatchKey,
    BatchStats,
    GenerationError,
    GenerationRequest,
    Progress,
)


@dataclass
class RequestImages:
    """The images of one request, in the order of its seeds."""

    images: list[Any]  # PIL.Image.Image
    sampler: str


@dataclass(frozen=True)
class _Item:
    req: int  # index into the requests list
    seed: int


class DiffusersBackend:
    """Turns requests into PIL images; one instance per process, used from one thread at a time."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        self.dtype = resolve_dtype(self.device, config.dtype)
        if self.device == "cpu" and config.cpu_threads:
            torch.set_num_threads(config.cpu_threads)  # process-wide: torch has no other knob
        self.cache = ModelCache(config, self.device, self.dtype)
        self.stats = BatchStats()
        self._lock = threading.Lock()

    def load(self, model: str, progress: Progress | None = None) -> LoadedModel:
        """Load (or touch) a model ahead of use; raises GenerationError(model_unavailable)."""
        return self.cache.get(model, progress)

    def generate(
        self, requests: list[GenerationRequest], progress: Progress | None = None
    ) -> list[RequestImages | GenerationError]:
        """One result per request, aligned with `requests`."""
        progress = progress or Progress()
        results: list[RequestImages | GenerationError | None] = [None] * len(requests)
        groups: dict[BatchKey, list[int]] = defaultdict(list)
        for i, req in enumerate(requests):
            err = check_request(self.config, req)
            if err is not None:
                results[i] = err
            else:
                groups[req.batch_key].append(i)
        with self._lock:
            for indices in groups.values():
                self._generate_group(requests, indices, results, progress)
        return [r if r is not None else _internal_error() for r in results]

    def _generate_group(
        self,
        requests: list[GenerationRequest],
        indices: list[int],
        results: list[RequestImages | GenerationError | None],
        progress: Progress,
    ) -> None:
        try:
            loaded = self.cache.get(requests[indices[0]].model, progress)
        except GenerationError as err:
            for i in indices:
                results[i] = err
            return
        items = [_Item(i, seed) for i in indices for seed in requests[i].seeds]
        images: dict[_Item, Any] = {}
        failed: dict[int, GenerationError] = {}
        step = self.config.max_batch
        for start in range(0, len(items), step):
            self._run_splitting(
                loaded, requests, items[start : start + step], images, failed, progress
            )
        for i in indices:
            if i in failed:
                results[i] = failed[i]
            else:
                imgs = [images[_Item(i, seed)] for seed in requests[i].seeds]
                results[i] = RequestImages(imgs, loaded.sampler)

    def _run_splitting(
        self,
        loaded: LoadedModel,
        requests: list[GenerationRequest],
        items: list[_Item],
        images: dict[_Item, Any],
        failed: dict[int, GenerationError],
        progress: Progress,
    ) -> None:
        items = [it for it in items if it.req not in failed]
        if not items:
            return
        out_of_memory = False
        try:
            produced = self._call(loaded, requests, items, progress)
        except Exception as exc:
            if not is_oom(exc):
                err = GenerationError(GENERATION_FAILED, _one_line(exc), retryable=True)
                for it in items:
                    failed.setdefault(it.req, err)
                return
            out_of_memory = True  # free memory outside the except: the traceback pins tensors
        if out_of_memory:
            free_memory(self.device)
            if len(items) == 1:
                req = requests[items[0].req]
                failed[items[0].req] = GenerationError(
                    TOO_LARGE,
                    f"one {req.width}x{req.height} image with {req.steps} steps does not fit "
                    f"in {self.device} memory; try a smaller size",
                )
                return
            half = len(items) // 2
            self._run_splitting(loaded, requests, items[:half], images, failed, progress)
            self._run_splitting(loaded, requests, items[half:], images, failed, progress)
            return
        images.update(zip(items, produced, strict=True))

    def _call(
        self,
        loaded: LoadedModel,
        requests: list[GenerationRequest],
        items: list[_Item],
        progress: Progress,
    ) -> list[Any]:
        first = requests[items[0].req]
        progress.batch_started(loaded.name, len(items), first.steps)

        def on_step(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            progress.step(step + 1, first.steps)
            return kwargs

        generators = [torch.Generator(device="cpu").manual_seed(it.seed) for it in items]
        started = time.perf_counter()
        out = loaded.pipe(
            prompt=[requests[it.req].prompt for it in items],
            negative_prompt=[requests[it.req].negative_prompt for it in items],
            width=first.width,
            height=first.height,
            num_inference_steps=first.steps,
            guidance_scale=first.guidance,
            generator=generators,
            output_type="pil",
            callback_on_step_end=on_step,
        )
        self.stats.calls += 1
        self.stats.images += len(items)
        self.stats.pipeline_seconds += time.perf_counter() - started
        self.stats.sizes.append(len(items))
        return list(out.images)

    def close(self) -> None:
        self.cache.clear()


def _internal_error() -> GenerationError:
    return GenerationError(GENERATION_FAILED, "no result was produced", retryable=True)
