"""The diffusers backend: validated, batched, seed-reproducible generation with OOM splitting.

All images of compatible requests go through ONE pipeline call (up to `max_batch` images), each
with its own CPU `torch.Generator`, so a seed gives the same image whatever batch it ran in (and
on whatever device, up to float noise). On out-of-memory the batch is halved and retried; a
single image that still does not fit fails its request with `too_large`.

Every family is called through its own diffusers pipeline. Image-to-image requests (an
`init_image` and a `strength`) run through the family's img2img pipeline built with `from_pipe`
on the SAME loaded components; QR requests use the model's QR ControlNet when one is
configured, and every QR image is decoded (and blended until it scans) before it is returned.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch

from generator.config import GeneratorConfig
from generator.device import free_memory, is_oom, resolve_device, resolve_dtype
from generator.limits import check_request
from generator.models import LoadedModel, ModelCache, _one_line, call_kwargs, parameters
from generator.types import (
    BAD_OPTION,
    GENERATION_FAILED,
    QR_UNREADABLE,
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
    negative_prompt_used: bool = True  # False: the family has no negative prompt
    qr_strengths: list[float] | None = None  # per image: the blend that made the code scan
    strength: float | None = None  # image-to-image strength used


@dataclass
class _Prepared:
    """Per-request inputs made before the pipeline call (pictures, QR layouts)."""

    init: dict[int, Any] = field(default_factory=dict)
    qr: dict[int, Any] = field(default_factory=dict)  # req index → QrLayout
    control: dict[int, Any] = field(default_factory=dict)


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
        failed: dict[int, GenerationError] = {}
        prepared = self._prepare(loaded, requests, indices, failed)
        items = [_Item(i, seed) for i in indices if i not in failed for seed in requests[i].seeds]
        images: dict[_Item, Any] = {}
        step = self.config.max_batch
        for start in range(0, len(items), step):
            self._run_splitting(
                loaded, requests, items[start : start + step], images, failed, progress, prepared
            )
        for i in indices:
            if i in failed:
                results[i] = failed[i]
                continue
            req = requests[i]
            imgs = [images[_Item(i, seed)] for seed in req.seeds]
            out = RequestImages(
                imgs,
                loaded.sampler,
                negative_prompt_used=loaded.family.negative_prompt,
                strength=self._strength(loaded, req) if req.mode == "img2img" else None,
            )
            if i in prepared.qr:
                results[i] = self._scannable(req, out, prepared.qr[i])
            else:
                results[i] = out

    def _strength(self, loaded: LoadedModel, req: GenerationRequest) -> float:
        return float(req.strength if req.strength is not None else loaded.config.preset.strength)

    def _prepare(
        self,
        loaded: LoadedModel,
        requests: list[GenerationRequest],
        indices: list[int],
        failed: dict[int, GenerationError],
    ) -> _Prepared:
        """Read init pictures, lay out QR codes, get the variant pipeline ready."""
        from generator import qr

        prepared = _Prepared()
        mode = requests[indices[0]].mode
        try:
            if mode == "img2img":
                loaded.img2img_pipe()
            elif mode == "qr":
                loaded.controlnet_pipe()
        except GenerationError as err:
            for i in indices:
                failed[i] = err
            return prepared
        for i in indices:
            req = requests[i]
            try:
                if req.init_image is not None:
                    prepared.init[i] = _read_picture(req.init_image, req.width, req.height)
                if req.qr is not None:
                    lay = qr.layout(req.qr, req.width, req.height, req.qr_position, req.qr_module)
                    prepared.qr[i] = lay
                    prepared.control[i] = qr.control_image(lay, req.width, req.height)
            except qr.QrError as exc:
                failed[i] = GenerationError(BAD_OPTION, str(exc))
            except GenerationError as err:
                failed[i] = err
        return prepared

    def _scannable(
        self, req: GenerationRequest, out: RequestImages, lay: Any
    ) -> RequestImages | GenerationError:
        """Every image decodes to the request's text, or the request fails `qr_unreadable`."""
        from generator import qr

        text = req.qr or ""
        cfg = self.config.qr
        steps = qr.strengths(cfg.blend_start, cfg.blend_step, cfg.blend_max)
        done: list[Any] = []
        used: list[float] = []
        for seed, image in zip(req.seeds, out.images, strict=True):
            try:
                scanned = qr.make_scannable(image, text, lay, steps)
            except qr.QrError as exc:
                return GenerationError(QR_UNREADABLE, str(exc))
            if scanned is None:
                return GenerationError(
                    QR_UNREADABLE,
                    f"the QR code in the image of seed {seed} did not scan even blended in at "
                    f"{cfg.blend_max:g}; try a larger --size, a shorter text or a larger "
                    "--qr-module",
                )
            done.append(scanned.image)
            used.append(scanned.strength)
        out.images, out.qr_strengths = done, used
        return out

    def _run_splitting(
        self,
        loaded: LoadedModel,
        requests: list[GenerationRequest],
        items: list[_Item],
        images: dict[_Item, Any],
        failed: dict[int, GenerationError],
        progress: Progress,
        prepared: _Prepared,
    ) -> None:
        items = [it for it in items if it.req not in failed]
        if not items:
            return
        out_of_memory = False
        try:
            produced = self._call(loaded, requests, items, progress, prepared)
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
            for part in (items[:half], items[half:]):
                self._run_splitting(loaded, requests, part, images, failed, progress, prepared)
            return
        images.update(zip(items, produced, strict=True))

    def _call(
        self,
        loaded: LoadedModel,
        requests: list[GenerationRequest],
        items: list[_Item],
        progress: Progress,
        prepared: _Prepared,
    ) -> list[Any]:
        first = requests[items[0].req]
        pipe = loaded.pipe
        extra: dict[str, Any] = {}
        total = first.steps
        if first.mode == "img2img":
            pipe = loaded.img2img_pipe()
            strength = self._strength(loaded, first)
            extra["image"] = [prepared.init[it.req] for it in items]
            extra["strength"] = strength
            total = max(1, min(int(first.steps * strength), first.steps))
        elif first.mode == "qr":
            controlled = loaded.controlnet_pipe()
            if controlled is not None:
                pipe = controlled
                names = parameters(type(pipe)) or frozenset()
                key = "control_image" if "control_image" in names else "image"
                extra[key] = [prepared.control[it.req] for it in items]
                extra["controlnet_conditioning_scale"] = loaded.config.qr_controlnet_scale
        progress.batch_started(loaded.name, len(items), total)

        def on_step(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            progress.step(step + 1, total)
            return kwargs

        def on_step_old(step: int, timestep: Any, latents: Any) -> None:
            progress.step(step + 1, total)

        accepted = parameters(type(pipe))
        if accepted is None or "callback_on_step_end" in accepted:
            extra["callback_on_step_end"] = on_step
        elif "callback" in accepted:
            extra.update(callback=on_step_old, callback_steps=1)
        generators = [torch.Generator(device="cpu").manual_seed(it.seed) for it in items]
        kwargs = call_kwargs(
            loaded,
            pipe,
            prompts=[requests[it.req].prompt for it in items],
            negatives=[requests[it.req].negative_prompt for it in items],
            width=first.width,
            height=first.height,
            steps=first.steps,
            guidance=first.guidance,
            generator=generators,
            output_type="pil",
            **extra,
        )
        started = time.perf_counter()
        out = pipe(**kwargs)
        self.stats.calls += 1
        self.stats.images += len(items)
        self.stats.pipeline_seconds += time.perf_counter() - started
        self.stats.sizes.append(len(items))
        return list(out.images)

    def close(self) -> None:
        self.cache.clear()


def _internal_error() -> GenerationError:
    return GenerationError(GENERATION_FAILED, "no result was produced", retryable=True)


def _read_picture(path: str, width: int, height: int) -> Any:
    """The init picture, RGB, cropped to the request's aspect ratio and resized to its size."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise GenerationError(
            BAD_OPTION, f"the picture to start from could not be read: {_one_line(exc)}"
        ) from None
    return ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS)
