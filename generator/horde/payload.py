"""Our GenerationRequest → the Horde's GenerationInputStable, or why it cannot be sent."""

from __future__ import annotations

from generator.config import GeneratorConfig
from generator.horde import api
from generator.horde.api import GenerationInput, ModelGenerationInput
from generator.types import GenerationRequest

# Our scheduler names (generator.config.SchedulerName) → Horde sampler_name and karras.
# `default`, `pndm` and `unipc` have no Horde twin: the Horde's default sampler is used.
SAMPLERS: dict[str, tuple[str, bool]] = {
    "euler": ("k_euler", False),
    "euler_a": ("k_euler_a", False),
    "ddim": ("DDIM", False),
    "lms": ("k_lms", False),
    "heun": ("k_heun", False),
    "dpmpp_2m": ("k_dpmpp_2m", False),
    "dpmpp_2m_karras": ("k_dpmpp_2m", True),
    "dpmpp_sde": ("k_dpmpp_sde", False),
    "lcm": ("lcm", False),
}
assert all(name in api.SAMPLERS for name, _ in SAMPLERS.values())


def ineligible(config: GeneratorConfig, req: GenerationRequest) -> str | None:
    """Why this request cannot go to the Horde (one sentence), or None when it can."""
    if req.model not in config.horde.models:
        return f"model {req.model!r} has no Horde name in horde.models"
    if req.qr is not None:
        return "QR-code art is made locally (the result must be decoded before it is posted)"
    if req.init_image is not None:
        return "image-to-image requests are made locally (the input picture stays here)"
    for name, value in (("width", req.width), ("height", req.height)):
        if value % api.SIZE_MULTIPLE or not api.MIN_SIZE <= value <= api.MAX_SIZE:
            return f"{name} {value} is not a multiple of 64 in 64..3072"
    if req.n_images > api.MAX_N:
        return f"{req.n_images} images; the Horde takes at most {api.MAX_N} per request"
    if req.steps > api.MAX_STEPS:
        return f"steps {req.steps} > {api.MAX_STEPS}"
    if req.guidance > api.MAX_CFG:
        return f"guidance {req.guidance} > {api.MAX_CFG}"
    return None


def sampler_of(config: GeneratorConfig, req: GenerationRequest) -> str:
    """The Horde sampler name we ask for ('' = the Horde's default)."""
    scheduler = config.models[req.model].preset.scheduler
    return SAMPLERS.get(scheduler, ("", False))[0]


def to_payload(config: GeneratorConfig, req: GenerationRequest) -> GenerationInput:
    """The POST body. Call `ineligible` first; this raises ValueError when it would say no."""
    why = ineligible(config, req)
    if why:
        raise ValueError(why)
    h = config.horde
    scheduler = config.models[req.model].preset.scheduler
    sampler, karras = SAMPLERS.get(scheduler, (None, False))
    prompt = req.prompt if not req.negative_prompt else f"{req.prompt} ### {req.negative_prompt}"
    return GenerationInput(
        prompt=prompt,
        params=ModelGenerationInput(
            sampler_name=sampler,
            karras=karras,
            cfg_scale=req.guidance,
            seed=str(req.seeds[0]),
            seed_variation=1 if req.n_images > 1 else None,
            width=req.width,
            height=req.height,
            steps=req.steps,
            n=req.n_images,
        ),
        nsfw=False,
        censor_nsfw=h.censor_nsfw,
        trusted_workers=h.trusted_workers,
        slow_workers=h.slow_workers,
        models=[h.models[req.model]],
        r2=h.r2,
        shared=h.shared or h.anonymous,
        webhook=h.webhook_url,
    )
