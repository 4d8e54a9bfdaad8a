"""Check a request against its model's preset (no torch; ingest may call it too)."""

from __future__ import annotations

import math

from generator.config import GeneratorConfig, guess_kind
from generator.families import FAMILIES
from generator.types import BAD_OPTION, GenerationError, GenerationRequest

MAX_SEED = 2**63 - 1
MIN_SIZE = 64
MAX_QR_MODULE = 64


def check_request(config: GeneratorConfig, req: GenerationRequest) -> GenerationError | None:
    """None when the request is within its model's limits, else a `bad_option` error."""
    if req.model not in config.models:
        return _bad(f"unknown model {req.model!r}; choose one of {sorted(config.models)}")
    p = config.models[req.model].preset
    if not req.seeds:
        return _bad("a request needs at least one seed")
    for seed in req.seeds:
        if not 0 <= seed <= MAX_SEED:
            return _bad(f"seed {seed} is outside 0..{MAX_SEED}")
    for name, value, top in (
        ("width", req.width, p.max_width),
        ("height", req.height, p.max_height),
    ):
        if not MIN_SIZE <= value <= top:
            return _bad(f"{name} {value} is outside {MIN_SIZE}..{top} for model {req.model!r}")
        if value % 8:
            return _bad(f"{name} {value} must be a multiple of 8")
    if not p.min_steps <= req.steps <= p.max_steps:
        return _bad(
            f"steps {req.steps} is outside {p.min_steps}..{p.max_steps} for model {req.model!r}"
        )
    if not p.min_guidance <= req.guidance <= p.max_guidance:
        return _bad(
            f"guidance {req.guidance} is outside {p.min_guidance}..{p.max_guidance} "
            f"for model {req.model!r}"
        )
    return _check_picture(config, req) or _check_qr(config, req)


def _check_picture(config: GeneratorConfig, req: GenerationRequest) -> GenerationError | None:
    mc = config.models[req.model]
    if req.init_image is None:
        if req.strength is not None:
            return _bad("strength only applies when starting from a picture")
        return None
    strength = mc.preset.strength if req.strength is None else req.strength
    if not (math.isfinite(strength) and 0.0 < strength <= 1.0):
        return _bad(f"strength {strength:g} is outside 0..1 (more than 0, at most 1)")
    if int(req.steps * strength) < 1:
        need = math.ceil(1 / strength)
        return _bad(
            f"with strength {strength:g} and {req.steps} steps no denoising step is left; "
            f"use at least {need} steps or a higher strength"
        )
    kind = guess_kind(mc.source, mc.kind)
    if kind is not None and FAMILIES[kind].img2img is None:
        return _bad(
            f"model {req.model!r} ({FAMILIES[kind].label}) cannot start from a picture; "
            "diffusers has no image-to-image pipeline for it"
        )
    if req.qr is not None:
        return _bad("a QR code cannot be combined with a picture to start from")
    return None


def _check_qr(config: GeneratorConfig, req: GenerationRequest) -> GenerationError | None:
    if req.qr is None:
        return None
    if not req.qr.strip():
        return _bad("the QR text is empty")
    if len(req.qr) > config.qr.max_chars:
        return _bad(f"the QR text has {len(req.qr)} characters; at most {config.qr.max_chars}")
    if req.qr_module is not None and not 1 <= req.qr_module <= MAX_QR_MODULE:
        return _bad(f"QR module size {req.qr_module} is outside 1..{MAX_QR_MODULE} pixels")
    from generator.qr import QrError, check_qr

    try:
        check_qr(req.qr, req.width, req.height, req.qr_position, req.qr_module)
    except QrError as exc:
        return _bad(str(exc))
    return None


def _bad(message: str) -> GenerationError:
    return GenerationError(BAD_OPTION, message, retryable=False)
