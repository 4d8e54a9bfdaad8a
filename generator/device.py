"""Device and dtype choice, out-of-memory detection and clean-up (imports torch)."""

from __future__ import annotations

import gc

import torch

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> str:
    """'auto' → cuda, then mps, then cpu; an explicit device that is absent is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if _mps_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU")
    if name == "mps" and not _mps_available():
        raise RuntimeError("device 'mps' was asked for but this torch has no MPS backend")
    return name


def resolve_dtype(device: str, name: str) -> torch.dtype:
    """'auto' → bf16 on GPUs that support it (no fp16 VAE overflow), else fp16; fp32 on CPU."""
    if name != "auto":
        return _DTYPES[name]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32


def is_oom(exc: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors, typed or only worded so."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def free_memory(device: str) -> None:
    """Drop Python garbage and return cached accelerator memory."""
    gc.collect()
    if device == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device == "mps" and _mps_available():
        torch.mps.empty_cache()


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())
