"""Check a request against its model's preset (no torch; ingest may call it too)."""

from __future__ import annotations

from generator.config import GeneratorConfig
from generator.types import BAD_OPTION, GenerationError, GenerationRequest

MAX_SEED = 2**63 - 1
MIN_SIZE = 64


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
    return None


def _bad(message: str) -> GenerationError:
    return GenerationError(BAD_OPTION, message, retryable=False)
