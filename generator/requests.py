"""Building requests with a model's preset defaults (no torch; for the CLI and ingest)."""

from __future__ import annotations

import secrets

from generator.config import GeneratorConfig
from generator.types import GenerationRequest

SEED_SPACE = 2**32  # seeds users can copy around; any 0..2**63-1 is accepted


def build_request(
    config: GeneratorConfig,
    job_id: int,
    prompt: str,
    *,
    n: int = 1,
    seed: int | None = None,
    model: str | None = None,
    negative_prompt: str = "",
    width: int | None = None,
    height: int | None = None,
    steps: int | None = None,
    guidance: float | None = None,
    init_image: str | None = None,
    strength: float | None = None,
    qr: str | None = None,
    qr_position: str | None = None,
    qr_module: int | None = None,
) -> GenerationRequest:
    """Fill unset options from the model's preset; seeds are seed, seed+1, … or random.

    `init_image` is a local picture file to start from (image-to-image; `strength` defaults to
    the preset's); `qr` the text of a QR code to put in the images."""
    name = model or config.default_model
    preset = config.model(name).preset
    if init_image is not None and strength is None:
        strength = preset.strength
    first = secrets.randbelow(SEED_SPACE) if seed is None else seed
    return GenerationRequest(
        job_id=job_id,
        prompt=prompt,
        negative_prompt=negative_prompt,
        model=name,
        width=preset.width if width is None else width,
        height=preset.height if height is None else height,
        steps=preset.steps if steps is None else steps,
        guidance=preset.guidance if guidance is None else guidance,
        seeds=[first + i for i in range(max(1, n))],
        init_image=init_image,
        strength=strength,
        qr=qr,
        qr_position=qr_position or "center",
        qr_module=qr_module,
    )
