"""Loading pipelines of every family (repo id, local folder, single file, built-in tiny) and
keeping them warm; image-to-image and ControlNet pipelines share the loaded components.

At most `max_loaded_models` pipelines stay resident; the least recently used is unloaded first.
Any failure to load becomes a one-line `model_unavailable` GenerationError, never a traceback.
"""

from __future__ import annotations

import inspect
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
from generator.families import (
    KINDS,
    DetectionError,
    Family,
    detect_kind_from_index,
    detect_single_file_kind,
    family,
    is_single_file,
)
from generator.schedulers import apply_scheduler, sampler_name
from generator.types import BAD_OPTION, MODEL_UNAVAILABLE, GenerationError, Progress

log = logging.getLogger(__name__)
_CONTROLNET_MODELS = {
    "sd15": "ControlNetModel",
    "sd2": "ControlNetModel",
    "sdxl": "ControlNetModel",
    "tiny": "ControlNetModel",
    "sd3": "SD3ControlNetModel",
    "flux": "FluxControlNetModel",
    "sana": "SanaControlNetModel",
}


@dataclass
class LoadedModel:
    """A resident pipeline and what the backend needs to know about it."""

    name: str
    config: ModelConfig
    pipe: Any
    device: str
    dtype: torch.dtype
    sampler: str
    kind: str = "sd15"
    warmed_batch_sizes: set[int] = field(default_factory=set)
    load_seconds: float = 0.0
    _variants: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def family(self) -> Family:
        return family(self.kind)

    def memory_bytes(self) -> int:
        """Bytes held by the weights of every component (and of the QR ControlNet, if any)."""
        modules = [c for c in self.pipe.components.values() if isinstance(c, torch.nn.Module)]
        modules += [v.controlnet for k, v in self._variants.items() if k == "controlnet"]
        seen: set[int] = set()
        total = 0
        for module in modules:
            for t in (*module.parameters(), *module.buffers()):
                if id(t) not in seen:
                    seen.add(id(t))
                    total += t.numel() * t.element_size()
        return total

    def img2img_pipe(self) -> Any:
        """The family's image-to-image pipeline over the SAME components (no second copy)."""
        if "img2img" not in self._variants:
            name = self.family.img2img
            if name is None:
                raise GenerationError(
                    BAD_OPTION,
                    f"model {self.name!r} ({self.family.label}) cannot start from a picture: "
                    "diffusers has no image-to-image pipeline for it",
                )
            import diffusers

            self._variants["img2img"] = _share(getattr(diffusers, name).from_pipe(self.pipe))
        return self._variants["img2img"]

    def controlnet_pipe(self) -> Any | None:
        """The family's ControlNet pipeline with the configured QR ControlNet, or None."""
        source = self.config.qr_controlnet
        if not source:
            return None
        if "controlnet" not in self._variants:
            import diffusers

            fam = self.family
            net_cls = _CONTROLNET_MODELS.get(self.kind)
            if fam.controlnet is None or net_cls is None:
                raise GenerationError(
                    MODEL_UNAVAILABLE,
                    f"qr_controlnet is set for {self.name!r}, but diffusers has no ControlNet "
                    f"pipeline for {fam.label}",
                )
            local = Path(source).expanduser().is_dir()
            try:
                net = (
                    getattr(diffusers, net_cls)
                    .from_pretrained(
                        str(Path(source).expanduser()) if local else source,
                        local_files_only=local or hub_offline(),
                        **{_dtype_kwarg(): self.dtype},
                    )
                    .to(self.device)
                )
            except Exception as exc:
                raise GenerationError(
                    MODEL_UNAVAILABLE,
                    f"QR ControlNet {source!r} of model {self.name!r} could not be loaded: "
                    f"{_one_line(exc)}",
                ) from exc
            pipe = getattr(diffusers, fam.controlnet).from_pipe(self.pipe, controlnet=net)
            self._variants["controlnet"] = _share(pipe)
        return self._variants["controlnet"]


def _share(pipe: Any) -> Any:
    pipe.set_progress_bar_config(disable=True)
    return pipe


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
            loaded.load_seconds = time.perf_counter() - started
            progress.model_loaded(name, loaded.load_seconds)
            return loaded

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def loaded_names(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
            free_memory(self.device)

    def _load(self, name: str, mc: ModelConfig) -> LoadedModel:
        try:
            pipe, kind = load_pipeline(mc, self.config.data_dir, self.dtype)
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
        loaded = LoadedModel(name, mc, pipe, self.device, self.dtype, sampler_name(pipe), kind)
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


def load_pipeline(mc: ModelConfig, data_dir: str, dtype: torch.dtype) -> tuple[Any, str]:
    """Build the pipeline of one model config on the CPU (no device move); (pipe, kind).

    The class is the family's own diffusers pipeline; `kind` comes from the config, else from
    `model_index.json` (folders, repos) or the checkpoint's tensor names (single files)."""
    _quiet_libraries()
    import diffusers

    kwargs: dict[str, Any] = {_dtype_kwarg(): dtype}
    if mc.variant:
        kwargs["variant"] = mc.variant
    source = mc.source
    kind: str | None = mc.kind
    if source == TINY_SOURCE:
        from generator.tiny import ensure_tiny

        source, kind = str(ensure_tiny(data_dir)), "tiny"
    path = Path(source).expanduser()
    if is_single_file(source):
        if not path.is_file():
            raise GenerationError(MODEL_UNAVAILABLE, f"checkpoint file {str(path)!r} not found")
        if kind is None:
            try:
                kind, _ = detect_single_file_kind(path)
            except DetectionError as exc:
                raise GenerationError(MODEL_UNAVAILABLE, str(exc)) from None
        fam = family(kind)
        if not fam.single_file:
            raise GenerationError(
                MODEL_UNAVAILABLE,
                f"diffusers cannot load {fam.label} from a single file ({path.name}); "
                "use the model's diffusers folder or repo id",
            )
        cls = getattr(diffusers, fam.pipeline)
        if mc.single_file_config:
            kwargs["config"] = mc.single_file_config
        kwargs.pop("variant", None)
        kwargs.update(fam.pipeline_kwargs)
        pipe = cls.from_single_file(str(path), local_files_only=hub_offline(), **kwargs)
        return pipe, kind
    if path.is_dir():
        local_only, where = True, str(path)
    elif source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise GenerationError(MODEL_UNAVAILABLE, f"model folder {source!r} not found")
    else:
        local_only, where = hub_offline(), source
    if kind is None:
        index = diffusers.DiffusionPipeline.load_config(where, local_files_only=local_only)
        kind = detect_kind_from_index(index, path if path.is_dir() else None)
        if kind is None:
            raise GenerationError(
                MODEL_UNAVAILABLE,
                f"model {source!r} is a {index.get('_class_name')!r}, which fedibot does not "
                f"serve; set kind = one of {', '.join(k for k in KINDS if k != 'tiny')} if it "
                "is one of those",
            )
    fam = family(kind)
    cls = getattr(diffusers, fam.pipeline)
    kwargs.update(fam.pipeline_kwargs)
    return cls.from_pretrained(where, local_files_only=local_only, **kwargs), kind


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
    if opts.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
    if opts.vae_slicing and hasattr(pipe.vae, "enable_slicing"):
        pipe.vae.enable_slicing()


def _compile_and_warm(loaded: LoadedModel, max_batch: int) -> None:
    """torch.compile the denoiser (UNet or transformer) and run every batch size once."""
    pipe = loaded.pipe
    attr = loaded.family.denoiser
    setattr(pipe, attr, torch.compile(getattr(pipe, attr)))
    preset = loaded.config.preset
    sizes = sorted({1, max_batch} | {2**i for i in range(8) if 2**i < max_batch})
    for n in sizes:
        kwargs = call_kwargs(
            loaded,
            pipe,
            prompts=["warm-up"] * n,
            negatives=[""] * n,
            width=preset.width,
            height=preset.height,
            steps=min(2, preset.max_steps),
            guidance=preset.guidance,
        )
        kwargs["output_type"] = "latent"
        pipe(**kwargs)
        loaded.warmed_batch_sizes.add(n)


def call_kwargs(
    loaded: LoadedModel,
    pipe: Any,
    *,
    prompts: list[str],
    negatives: list[str],
    width: int,
    height: int,
    steps: int,
    guidance: float,
    **extra: Any,
) -> dict[str, Any]:
    """Keyword arguments for one batched call of `pipe`, only those its __call__ accepts."""
    fam = loaded.family
    kwargs: dict[str, Any] = {
        "prompt": prompts,
        "width": width,
        "height": height,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        **fam.call_kwargs,
        **extra,
    }
    if fam.negative_prompt:
        kwargs["negative_prompt"] = negatives
    if loaded.kind == "sana_sprint" and steps != 2:
        kwargs["intermediate_timesteps"] = None  # SCM takes it only with exactly 2 steps
    if loaded.config.options.max_sequence_length:
        kwargs["max_sequence_length"] = loaded.config.options.max_sequence_length
    accepted = parameters(type(pipe))
    if accepted is None:
        return kwargs
    return {k: v for k, v in kwargs.items() if k in accepted}


_PARAMS: dict[type, frozenset[str] | None] = {}


def parameters(cls: type) -> frozenset[str] | None:
    """The named keyword parameters of a pipeline's __call__; None for a bare **kwargs wrapper."""
    if cls not in _PARAMS:
        params = inspect.signature(cls.__call__).parameters.values()
        named = frozenset(
            p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ) - {"self"}
        _PARAMS[cls] = named or None
    return _PARAMS[cls]


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
