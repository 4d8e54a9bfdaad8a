"""Horde image bytes → the in-memory form the local backend hands to GeneratorService.store,
so every Horde image goes through the same output classifier and PNG writer as local ones."""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from generator.horde.flow import HordeResult
from generator.types import GenerationRequest

MAX_PIXELS = 4096 * 4096


@dataclass
class HordeImages:
    """Same fields as generator.backend.RequestImages (which imports torch, so not reused)."""

    images: list[Any]  # PIL.Image.Image
    sampler: str
    negative_prompt_used: bool = True  # the Horde takes the negative prompt for every model
    qr_strengths: list[float] | None = None  # QR requests never go to the Horde
    strength: float | None = None  # nor image-to-image ones (see payload.ineligible)


def decode(data: bytes) -> Image.Image:
    """WebP/PNG/JPEG bytes → an RGB image; ValueError when unreadable or absurdly large."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise ValueError(f"image of {img.width}x{img.height} is too large")
            return img.convert("RGB")
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"unreadable image: {type(exc).__name__}") from None


def rendered(
    req: GenerationRequest, result: HordeResult, sampler: str
) -> tuple[GenerationRequest, HordeImages]:
    """The request narrowed to the seeds actually delivered (censored ones are dropped), and
    its images in that order: GeneratorService.store zips seeds and images one to one."""
    images = [decode(img.data) for img in result.images]
    narrowed = replace(req, seeds=[img.seed for img in result.images])
    return narrowed, HordeImages(images, f"horde:{sampler or 'default'}")
