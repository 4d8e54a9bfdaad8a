"""A parsed request → every generation option decided: defaults from the model's preset
(`generator.requests.build_request`), limits checked (`generator.limits.check_request`).

Shared by mentions (ingest) and campaigns; it reads only the config."""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from fedibot.intake.grammar import ParsedRequest, PromptError, apply_style
from fedibot.queue.jobs import batch_key, options_mode

if TYPE_CHECKING:
    from fedibot.config.loader import FedibotConfig
from generator.config import ModelPreset
from generator.limits import check_request
from generator.requests import build_request


@dataclasses.dataclass(frozen=True)
class Options:
    """A generation request with every option decided."""

    prompt: str
    negative_prompt: str
    model: str
    width: int
    height: int
    steps: int
    guidance: float
    n: int
    seed: int
    style: str | None = None
    qr: str | None = None
    qr_position: str | None = None
    qr_module: int | None = None
    strength: float | None = None
    picture: bool = False  # image-to-image: the job's picture is in job_inputs

    @property
    def mode(self) -> str:
        return options_mode(self)


# Stands in for the picture file while the limits are checked at intake (the worker writes
# the stored picture to a real file).
PICTURE_PLACEHOLDER = "<picture>"


def job_columns(options: Options) -> dict[str, Any]:
    """The queue columns (`NewJob` fields) an Options decides — the one place they are
    mapped, for new jobs and edits alike; `batch_key` is the queue's string of them."""
    values: dict[str, Any] = {
        "prompt": options.prompt,
        "negative_prompt": options.negative_prompt,
        "model": options.model,
        "width": options.width,
        "height": options.height,
        "steps": options.steps,
        "guidance": options.guidance,
        "n": options.n,
        "seed": options.seed,
    }
    mode = options.mode
    strength = options.strength if mode == "img2img" else None
    values["batch_key"] = batch_key(
        options.model,
        options.width,
        options.height,
        options.steps,
        options.guidance,
        mode,
        strength,
    )
    values["mode"], values["strength"] = mode, strength
    return values


def resolve_options(
    config: FedibotConfig,
    parsed: ParsedRequest,
    base: dict[str, Any] | None = None,
    *,
    picture: bool = False,
) -> Options:
    """Fill what `parsed` leaves open from `base` (the options of the result an `again`
    re-rolls), then from the model's preset; PromptError when outside the model's limits.
    `picture`: the request comes with a picture to start from (image-to-image)."""
    base = base or {}
    gen = config.generator
    asked = parsed.model or base.get("model") or gen.default_model
    model = {name.casefold(): name for name in gen.models}.get(asked.casefold())
    if model is None:
        raise PromptError(
            "unknown_model",
            f"the model {asked!r} is not available; available: {', '.join(gen.models)}",
        )
    preset = gen.model(model).preset
    if parsed.command == "again":
        prompt, negative = base.get("prompt", ""), base.get("negative_prompt", "")
        style = base.get("style")
    else:
        prompt, negative = apply_style(parsed, config.prompt.styles)
        style = parsed.style
    width: int | None
    height: int | None
    if parsed.size:
        width, height = parsed.size
    elif parsed.aspect:
        width, height = size_for_aspect(parsed.aspect, preset)
    else:
        width, height = base.get("width"), base.get("height")  # None: the preset's
    request = build_request(
        gen,
        0,
        prompt,
        n=parsed.n or base.get("n") or config.prompt.default_n,
        seed=parsed.seed,  # None: a fresh random seed, also for `again`
        model=model,
        negative_prompt=negative,
        width=width,
        height=height,
        steps=parsed.steps or base.get("steps"),
        guidance=parsed.cfg if parsed.cfg is not None else base.get("guidance"),
        init_image=PICTURE_PLACEHOLDER if picture else None,
        # without a picture check_request refuses --strength; with one, None is the preset's
        strength=(
            parsed.strength
            if parsed.strength is not None
            else (base.get("strength") if picture else None)
        ),
        qr=parsed.qr if parsed.qr is not None else base.get("qr"),
        qr_position=parsed.qr_position or base.get("qr_position"),
        qr_module=parsed.qr_module or base.get("qr_module"),
    )
    error = check_request(gen, request)
    if error is not None:
        raise PromptError("bad_option", _explain_limits(error.message, model, preset))
    return Options(
        prompt=request.prompt,
        negative_prompt=request.negative_prompt,
        model=request.model,
        width=request.width,
        height=request.height,
        steps=request.steps,
        guidance=float(request.guidance),
        n=request.n_images,
        seed=request.seeds[0],
        style=style,
        qr=request.qr,
        qr_position=request.qr_position if request.qr is not None else None,
        qr_module=request.qr_module,
        strength=request.strength,
        picture=picture,
    )


def _explain_limits(message: str, model: str, preset: ModelPreset) -> str:
    return (
        f"{message}. Allowed for {model}: --size up to {preset.max_width}x{preset.max_height} "
        f"(multiples of 8), --steps {preset.min_steps}-{preset.max_steps}, "
        f"--cfg {preset.min_guidance:g}-{preset.max_guidance:g}"
    )


def size_for_aspect(aspect: tuple[int, int], preset: ModelPreset) -> tuple[int, int]:
    """The model's default area at the asked aspect ratio, in multiples of 8, within limits."""
    a, b = aspect
    area = preset.width * preset.height
    width = math.sqrt(area * a / b)
    height = width * b / a
    scale = min(1.0, preset.max_width / width, preset.max_height / height)
    width, height = width * scale, height * scale
    return max(64, int(width // 8 * 8)), max(64, int(height // 8 * 8))
