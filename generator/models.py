"""Loading pipelines (repo id, local folder, single file, built-in tiny) and keeping them warm.

At most `max_loaded_models` pipelines stay resident; the least recently used is unloaded first.
Any failure to load becomes a one-line `model_unavailable` GenerationError, never a traceback.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from generator.config import TINY_SOURCE, GeneratorConfig, ModelConfig
from generator.device import free_memory
from generator.schedulers import apply_scheduler, sampler_name
from generator.types import MODEL_UNAVAILABLE, GenerationError, Progress

log = logging.getLogger(__name__)
_SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")


@dataclass
class LoadedModel:
    """A resident pipeline and what the backend needs to know about it."""

    name: str
    config: ModelConfig
    pipe: Any
    device: str
    dtype: torch.dtype
    sampler: str
    warmed_batch_sizes: set[int] = field(default_factory=set)


class ModelCache:
    """LRU of loaded pipelines; thread-safe."""

    def __init__(self, config: GeneratorConfig, device: str, dtype: torch.dtype) -> None:
        self.config = config
        self.device = device
        self.dtype = dtype
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.RLock()

    def get(self, name: str, progress: Progress | None = None) -> LoadedModel:
        """The warm pipeline of `name`, loading it (and evicting the LRU one) if needed."""
        with self._lock:
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name]
            if name not in self.config.models:
                raise GenerationError(
                    MODEL_UNAVAILABLE,
                    f"unknown model {name!r}; known: {sorted(self.config.models)}",
                )
            while len(self._models) >= self.config.max_loaded_models:
                old, _ = self._models.popitem(last=False)
                log.info("unloading model %s", old)
                free_memory(self.device)
            progress = progress or Progress()
            progress.model_loading(name)
            started = time.perf_counter()
            loaded = self._load(name, self.config.models[name])
            self._models[name] = loaded
            progress.model_loaded(name, time.perf_counter() - started)
            return loaded

    def loaded_names(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            free_memory(self.device)

    def _load(self, name: str, mc: ModelConfig) -> LoadedModel:
        try:
            pipe = load_pipeline(mc, self.config.data_dir, self.dtype)
            pipe.to(self.device)
            pipe.set_progress_bar_config(disable=True)
            apply_scheduler(pipe, mc.preset.scheduler)
            _apply_options(pipe, mc, self.dtype, self.device)
        except GenerationError:
            raise
        except Exception as exc:
            free_memory(self.device)
            raise GenerationError(
                MODEL_UNAVAILABLE,
                f"model {name!r} could not be loaded from {mc.source!r}: {_one_line(exc)}",
            ) from exc
        loaded = LoadedModel(name, mc, pipe, self.device, self.dtype, sampler_name(pipe))
        if mc.options.torch_compile:
            _compile_and_warm(loaded, self.config.max_batch)
        log.info("model %s loaded on %s (%s)", name, self.device, self.dtype)
        return loaded


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, also when set after it was imported."""
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    try:
        from huggingface_hub import constants

        return env or bool(constants.HF_HUB_OFFLINE)
    except ImportError:  # pragma: no cover - diffusers depends on it
        return env


def load_pipeline(mc: ModelConfig, data_dir: str, dtype: torch.dtype) -> Any:
    """Build the pipeline object of one model config on the CPU (no device move)."""
    _quiet_libraries()
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    cls = StableDiffusionXLPipeline if mc.kind == "sdxl" else StableDiffusionPipeline
    kwargs: dict[str, Any] = {_dtype_kwarg(): dtype}
    if cls is StableDiffusionPipeline:  # output safety is ours; never load their checker
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    if mc.variant:
        kwargs["variant"] = mc.variant
    source = mc.source
    if source == TINY_SOURCE:
        from generator.tiny import ensure_tiny

        source = str(ensure_tiny(data_dir))
    path = Path(source).expanduser()
    if path.suffix.lower() in _SINGLE_FILE_SUFFIXES:
        if not path.is_file():
            raise GenerationError(MODEL_UNAVAILABLE, f"checkpoint file {str(path)!r} not found")
        if mc.single_file_config:
            kwargs["config"] = mc.single_file_config
        kwargs.pop("variant", None)
        return cls.from_single_file(str(path), local_files_only=hub_offline(), **kwargs)
    if path.is_dir():
        return cls.from_pretrained(str(path), local_files_only=True, **kwargs)
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise GenerationError(MODEL_UNAVAILABLE, f"model folder {source!r} not found")
    return cls.from_pretrained(source, local_files_only=hub_offline(), **kwargs)


def _apply_options(pipe: Any, mc: ModelConfig, dtype: torch.dtype, device: str) -> None:
    opts = mc.options
    if opts.tiny_vae:
        from diffusers import AutoencoderTiny

        vae_path = Path(opts.tiny_vae).expanduser()
        local = vae_path.is_dir()
        vae = AutoencoderTiny.from_pretrained(
            str(vae_path) if local else opts.tiny_vae,
            local_files_only=local or hub_offline(),
            **{_dtype_kwarg(): dtype},
        )
        pipe.vae = vae.to(device)
    if opts.attention_slicing:
        pipe.enable_attention_slicing()
    if opts.vae_slicing:
        pipe.vae.enable_slicing()


def _compile_and_warm(loaded: LoadedModel, max_batch: int) -> None:
    """torch.compile the UNet and run every batch size the worker will use once."""
    pipe = loaded.pipe
    pipe.unet = torch.compile(pipe.unet)
    preset = loaded.config.preset
    sizes = sorted({1, max_batch} | {2**i for i in range(8) if 2**i < max_batch})
    for n in sizes:
        pipe(
            prompt=["warm-up"] * n,
            height=preset.height,
            width=preset.width,
            num_inference_steps=min(2, preset.max_steps),
            guidance_scale=preset.guidance,
            output_type="latent",
        )
        loaded.warmed_batch_sizes.add(n)


def _dtype_kwarg() -> str:
    """diffusers renamed `torch_dtype` to `dtype`; use whichever this version wants."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def _quiet_libraries() -> None:
    """No download/loading progress bars or config chatter on the terminal."""
    from transformers.utils import logging as tlog

    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()
    dlog.disable_progress_bar()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
