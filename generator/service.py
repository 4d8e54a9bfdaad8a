"""The synchronous API the CLI and the worker call: requests in, stored and classified PNGs out.

Importing this module does not import torch; the diffusers backend is built on first use.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from generator.config import GeneratorConfig
from generator.pngmeta import Parameters, image_path, save_png
from generator.qr import alt_text as qr_alt_text
from generator.types import (
    SAFETY_FAILED,
    GeneratedImage,
    GenerationError,
    GenerationRequest,
    JobResult,
    Progress,
)

if TYPE_CHECKING:
    from generator.backend import DiffusersBackend, RequestImages
    from generator.safety import Classifier


class GeneratorService:
    """Generate, classify, and store. Thread-safe: render() calls are serialised, and so are
    store() calls, but one render may run while the previous batch is being stored."""

    def __init__(
        self,
        config: GeneratorConfig,
        *,
        backend: DiffusersBackend | None = None,
        classifier: Classifier | None = None,
    ) -> None:
        self.config = config
        self._backend = backend
        self._classifier = classifier
        self._lock = threading.Lock()  # pipeline calls
        self._store_lock = threading.Lock()  # classification and files
        self._init_lock = threading.Lock()

    @property
    def backend(self) -> DiffusersBackend:
        if self._backend is None:
            from generator.backend import DiffusersBackend

            self._backend = DiffusersBackend(self.config)
        return self._backend

    @property
    def classifier(self) -> Classifier:
        """Built on first use; raises SafetyUnavailable when the configured one cannot run."""
        with self._init_lock:
            if self._classifier is None:
                from generator.safety import make_classifier

                self._classifier = make_classifier(self.config.safety)
            return self._classifier

    def preload(self, model: str | None = None, progress: Progress | None = None) -> None:
        """Load a model (default: `default_model`) and the classifier before the first job."""
        with self._lock:
            self.classifier  # noqa: B018 - fail early on a misconfigured classifier
            self.backend.load(model or self.config.default_model, progress)

    def generate(
        self, requests: list[GenerationRequest], progress: Progress | None = None
    ) -> list[JobResult | GenerationError]:
        """One JobResult or GenerationError per request, aligned with `requests`."""
        started = time.perf_counter()
        rendered = self.render(requests, progress)
        return self.store(requests, rendered, time.perf_counter() - started)

    def render(
        self, requests: list[GenerationRequest], progress: Progress | None = None
    ) -> list[RequestImages | GenerationError]:
        """The pipeline part (GPU): images in memory, nothing classified or stored yet."""
        with self._lock:
            self.classifier  # noqa: B018 - refuse to render what could not be classified
            return self.backend.generate(requests, progress)

    def store(
        self,
        requests: list[GenerationRequest],
        rendered: list[RequestImages | GenerationError],
        seconds: float,
    ) -> list[JobResult | GenerationError]:
        """The CPU part: classify every image, then write its PNG. May overlap with render()."""
        with self._store_lock:
            classifier = self.classifier
            return [
                out
                if isinstance(out, GenerationError)
                else self._store(req, out, classifier, seconds)
                for req, out in zip(requests, rendered, strict=True)
            ]

    def _store(
        self,
        req: GenerationRequest,
        out: RequestImages,
        classifier: Classifier,
        seconds: float,
    ) -> JobResult | GenerationError:
        images: list[GeneratedImage] = []
        for index, (seed, image) in enumerate(zip(req.seeds, out.images, strict=True)):
            try:
                safety = classifier.classify(image)
            except Exception as exc:  # never store an image we could not classify
                return GenerationError(
                    SAFETY_FAILED, f"output classifier {classifier.name} failed: {exc}", True
                )
            params = Parameters(
                prompt=req.prompt,
                negative_prompt=req.negative_prompt if out.negative_prompt_used else "",
                steps=req.steps,
                sampler=out.sampler,
                cfg_scale=req.guidance,
                seed=seed,
                width=req.width,
                height=req.height,
                model=req.model,
                denoising_strength=out.strength,
                qr=req.qr,
            )
            path = save_png(image, image_path(self.config.data_dir, req.job_id, index), params)
            alt = qr_alt_text(req.qr) if req.qr is not None else ""
            images.append(
                GeneratedImage(Path(path), seed, req.width, req.height, safety, index, alt)
            )
        return JobResult(req.job_id, images, req.model, seconds)

    def close(self) -> None:
        """Unload models and free accelerator memory."""
        with self._lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None
