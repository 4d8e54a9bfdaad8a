"""Scheduler names in config ↔ diffusers classes ↔ A1111 sampler names (for PNG metadata)."""

from __future__ import annotations

from typing import Any

# config name: (diffusers class, extra config, A1111 sampler name)
SCHEDULERS: dict[str, tuple[str, dict[str, Any], str]] = {
    "euler": ("EulerDiscreteScheduler", {}, "Euler"),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}, "Euler a"),
    "ddim": ("DDIMScheduler", {}, "DDIM"),
    "pndm": ("PNDMScheduler", {}, "PLMS"),
    "lms": ("LMSDiscreteScheduler", {}, "LMS"),
    "heun": ("HeunDiscreteScheduler", {}, "Heun"),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}, "DPM++ 2M"),
    "dpmpp_2m_karras": (
        "DPMSolverMultistepScheduler",
        {"use_karras_sigmas": True},
        "DPM++ 2M Karras",
    ),
    "dpmpp_sde": ("DPMSolverSDEScheduler", {}, "DPM++ SDE"),
    "unipc": ("UniPCMultistepScheduler", {}, "UniPC"),
    "lcm": ("LCMScheduler", {}, "LCM"),
}
_BY_CLASS = {cls: sampler for cls, extra, sampler in SCHEDULERS.values() if not extra}


def apply_scheduler(pipe: Any, name: str) -> None:
    """Replace the pipeline's scheduler by the named one, keeping its training config."""
    if name == "default":
        return
    import diffusers

    cls_name, extra, _ = SCHEDULERS[name]
    cls = getattr(diffusers, cls_name)
    pipe.scheduler = cls.from_config(pipe.scheduler.config, **extra)


def sampler_name(pipe: Any) -> str:
    """The A1111 name of the pipeline's current scheduler (its class name when unknown)."""
    sched = pipe.scheduler
    cls_name = type(sched).__name__
    if cls_name == "DPMSolverMultistepScheduler" and sched.config.get("use_karras_sigmas"):
        return "DPM++ 2M Karras"
    return _BY_CLASS.get(cls_name, cls_name)
