"""Plain data shared by the generator and its callers (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# (model, width, height, steps, guidance, mode, strength): mode is "txt2img", "img2img" or
# "qr"; strength is 0.0 unless mode is "img2img".
BatchKey = tuple[str, int, int, int, float, str, float]
QR_POSITIONS = ("center", "top-left", "top-right", "bottom-left", "bottom-right")

# Stable error codes a requester may see.
TOO_LARGE = "too_large"
BAD_OPTION = "bad_option"
MODEL_UNAVAILABLE = "model_unavailable"
GENERATION_FAILED = "generation_failed"
SAFETY_FAILED = "safety_failed"
INTERRUPTED = "interrupted"
QR_UNREADABLE = "qr_unreadable"


@dataclass(frozen=True)
class GenerationRequest:
    """One job: a prompt and its options; one image per seed."""

    job_id: int
    prompt: str
    seeds: list[int]
    negative_prompt: str = ""
    model: str = "tiny"
    width: int = 64
    height: int = 64
    steps: int = 4
    guidance: float = 5.0
    # image-to-image: a local picture file (PNG/JPEG/WebP) the images start from, and how much
    # of it is replaced (0 < strength <= 1; None: the model preset's `strength`)
    init_image: str | None = None
    strength: float | None = None
    # QR-code art: the text the code holds, where it goes, pixels per module (None: auto)
    qr: str | None = None
    qr_position: str = "center"
    qr_module: int | None = None

    @property
    def mode(self) -> str:
        if self.init_image is not None:
            return "img2img"
        return "qr" if self.qr is not None else "txt2img"

    @property
    def batch_key(self) -> BatchKey:
        """Requests with equal keys can share one pipeline call."""
        strength = float(self.strength or 0.0) if self.mode == "img2img" else 0.0
        return (
            self.model,
            self.width,
            self.height,
            self.steps,
            float(self.guidance),
            self.mode,
            strength,
        )

    @property
    def n_images(self) -> int:
        return len(self.seeds)


@dataclass(frozen=True)
class SafetyResult:
    """What the output classifier said about one image."""

    labels: dict[str, float]
    flagged: bool
    classifier: str


@dataclass(frozen=True)
class GeneratedImage:
    """One stored PNG of a job."""

    path: Path
    seed: int
    width: int
    height: int
    safety: SafetyResult
    index: int
    alt_text: str = ""  # e.g. what a QR code in the image says, for the post's description


@dataclass(frozen=True)
class JobResult:
    """All images of one job; `seconds` is the wall time of the batch that made them."""

    job_id: int
    images: list[GeneratedImage]
    model: str
    seconds: float


@dataclass
class GenerationError(Exception):
    """A per-job failure with a stable code and one human sentence."""

    code: str
    message: str
    retryable: bool = False

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class WorkSource(Protocol):
    """Where the worker gets jobs and reports results (the durable queue, or memory in tests).

    `claim` returns requests that share one `batch_key` and together hold at most `max_batch`
    images (one request with more seeds than that may come alone); it may return [].
    Claimed jobs are leased to `worker_id` for `lease_seconds`; `heartbeat` extends the lease.
    `fail` with `error.retryable` true means the job may be queued again.
    """

    async def claim(
        self, worker_id: str, max_batch: int, lease_seconds: float
    ) -> list[GenerationRequest]: ...

    async def heartbeat(self, worker_id: str, job_ids: list[int], lease_seconds: float) -> None: ...

    async def complete(self, worker_id: str, result: JobResult) -> None: ...

    async def fail(self, worker_id: str, job_id: int, error: GenerationError) -> None: ...


class Progress:
    """Progress hook for terminals; every method is a no-op unless overridden.

    Called from the generation thread, so implementations must be thread-safe
    (rich's Progress is).
    """

    def model_loading(self, model: str) -> None:
        """A model starts loading (may take minutes the first time)."""

    def model_loaded(self, model: str, seconds: float) -> None:
        """The model is resident."""

    def batch_started(self, model: str, n_images: int, steps: int) -> None:
        """One pipeline call starts."""

    def step(self, step: int, total: int) -> None:
        """A denoising step of the current pipeline call finished (1-based)."""


@dataclass
class BatchStats:
    """Timing of the pipeline calls made so far (for benchmarks and metrics)."""

    calls: int = 0
    images: int = 0
    pipeline_seconds: float = 0.0
    sizes: list[int] = field(default_factory=list)
