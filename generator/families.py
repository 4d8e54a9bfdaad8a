"""Model families served through diffusers' own pipeline classes, their presets, and detection.

No torch here: the config, the `fedibot models` command and ingest read this module. Detection
reads `model_index.json` (`_class_name`) of a local folder or of a repo in the local Hugging Face
cache; single `.safetensors` files are recognised from their tensor names and shapes with
diffusers' own `infer_diffusers_model_type` (at load time, when torch is imported anyway).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

Kind = Literal["sd15", "sd2", "sdxl", "sd3", "flux", "sana", "sana_sprint", "pixart_sigma", "tiny"]
KINDS: tuple[str, ...] = get_args(Kind)
TINY_SOURCE = "builtin:tiny"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")


@dataclass(frozen=True)
class Family:
    """How one family is loaded and called; class names are attributes of `diffusers`."""

    kind: str
    label: str
    pipeline: str
    img2img: str | None  # None: no image-to-image pipeline in diffusers for this family
    controlnet: str | None  # text-to-image ControlNet pipeline (QR art)
    denoiser: Literal["unet", "transformer"]
    negative_prompt: bool  # False: the pipeline has no negative prompt (it is ignored)
    single_file: bool  # diffusers has `from_single_file` for this pipeline
    call_kwargs: Mapping[str, Any] = field(default_factory=dict)
    default_preset: str = ""
    pipeline_kwargs: Mapping[str, Any] = field(default_factory=dict)


_NO_CHECKER = {"safety_checker": None, "requires_safety_checker": False}  # output safety is ours

FAMILIES: dict[str, Family] = {
    f.kind: f
    for f in (
        Family(
            "sd15", "Stable Diffusion 1.x", "StableDiffusionPipeline",
            "StableDiffusionImg2ImgPipeline", "StableDiffusionControlNetPipeline", "unet",
            True, True, default_preset="sd15", pipeline_kwargs=_NO_CHECKER,
        ),
        Family(
            "sd2", "Stable Diffusion 2.x", "StableDiffusionPipeline",
            "StableDiffusionImg2ImgPipeline", "StableDiffusionControlNetPipeline", "unet",
            True, True, default_preset="sd2", pipeline_kwargs=_NO_CHECKER,
        ),
        Family(
            "sdxl", "Stable Diffusion XL", "StableDiffusionXLPipeline",
            "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLControlNetPipeline", "unet",
            True, True, default_preset="sdxl",
        ),
        Family(
            "sd3", "Stable Diffusion 3 / 3.5", "StableDiffusion3Pipeline",
            "StableDiffusion3Img2ImgPipeline", "StableDiffusion3ControlNetPipeline",
            "transformer", True, True, default_preset="sd3",
        ),
        Family(
            "flux", "FLUX.1", "FluxPipeline", "FluxImg2ImgPipeline", "FluxControlNetPipeline",
            "transformer", False, True, default_preset="flux-dev",
        ),
        Family(
            "sana", "SANA", "SanaPipeline", None, "SanaControlNetPipeline", "transformer",
            True, False, {"use_resolution_binning": False}, default_preset="sana",
        ),
        Family(
            "sana_sprint", "SANA-Sprint", "SanaSprintPipeline", "SanaSprintImg2ImgPipeline", None,
            "transformer", False, False, {"use_resolution_binning": False},
            default_preset="sana-sprint",
        ),
        Family(
            "pixart_sigma", "PixArt-Σ", "PixArtSigmaPipeline", None, None, "transformer",
            True, False, {"use_resolution_binning": False, "clean_caption": False},
            default_preset="pixart-sigma",
        ),
        Family(
            "tiny", "built-in tiny test model (SD 1.x layout)", "StableDiffusionPipeline",
            "StableDiffusionImg2ImgPipeline", "StableDiffusionControlNetPipeline", "unet",
            True, False, default_preset="tiny", pipeline_kwargs=_NO_CHECKER,
        ),
    )
}  # fmt: skip


def _p(steps: int, guidance: float, size: int, max_size: int, **kw: Any) -> dict[str, Any]:
    preset = {
        "steps": steps,
        "guidance": guidance,
        "width": size,
        "height": size,
        "max_width": max_size,
        "max_height": max_size,
    }
    preset.update(kw)
    return preset


# Built-in presets: defaults and limits a `[generator.models.NAME.preset]` table overrides.
# guidance 0 means "no classifier-free guidance" for the distilled (turbo/schnell) models.
PRESETS: dict[str, dict[str, Any]] = {
    "sd15": _p(25, 7.0, 512, 768, max_steps=50),
    "sd2": _p(25, 7.0, 768, 1024, max_steps=50),
    "sd-turbo": _p(1, 0.0, 512, 768, max_steps=4, max_guidance=1.0),
    "sdxl": _p(30, 6.0, 1024, 1536, max_steps=60),
    "sdxl-turbo": _p(1, 0.0, 512, 1024, max_steps=4, max_guidance=1.0),
    "sd3": _p(28, 4.5, 1024, 1536, max_steps=60, max_guidance=12.0),
    "sd35-turbo": _p(4, 0.0, 1024, 1536, max_steps=8, max_guidance=1.0),
    "flux-dev": _p(28, 3.5, 1024, 1536, max_steps=50, max_guidance=10.0),
    "flux-schnell": _p(4, 0.0, 1024, 1536, max_steps=8, max_guidance=0.0),
    "sana": _p(20, 4.5, 1024, 2048, max_steps=50, max_guidance=12.0),
    "sana-sprint": _p(2, 4.5, 1024, 1536, max_steps=4, max_guidance=10.0),
    "pixart-sigma": _p(20, 4.5, 1024, 2048, max_steps=50, max_guidance=12.0),
    "tiny": _p(4, 5.0, 64, 256, max_steps=50, scheduler="euler"),
}

# diffusers pipeline class → kind (model_index.json `_class_name`)
_CLASS_KINDS = {
    "StableDiffusionPipeline": "sd15",
    "StableDiffusionXLPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3",
    "FluxPipeline": "flux",
    "SanaPipeline": "sana",
    "SanaSprintPipeline": "sana_sprint",
    "PixArtSigmaPipeline": "pixart_sigma",
}
# diffusers' single-file model types → kind
_SINGLE_FILE_KINDS = {
    "v1": "sd15",
    "v2": "sd2",
    "xl_base": "sdxl",
    "playground-v2-5": "sdxl",
    "sd3": "sd3",
    "sd35_medium": "sd3",
    "sd35_large": "sd3",
    "flux-dev": "flux",
    "flux-schnell": "flux",
}
# repo ids / file names → kind, only to pick presets before a model is looked at
_NAME_HINTS: tuple[tuple[str, str], ...] = (
    (r"sana[-_ ]?sprint", "sana_sprint"),
    (r"sana", "sana"),
    (r"pixart[-_ ]?(sigma|σ)", "pixart_sigma"),
    (r"flux", "flux"),
    (r"stable[-_]diffusion[-_]3|\bsd[-_]?3", "sd3"),
    (r"\bxl\b|sdxl|[-_]xl[-_]|stable[-_]diffusion[-_]xl", "sdxl"),
    (r"stable[-_]diffusion[-_]2|\bsd[-_]?2|sd[-_]turbo", "sd2"),
    (r"stable[-_]diffusion[-_]v?1|\bsd[-_]?1", "sd15"),
)


class DetectionError(ValueError):
    """The family of a model could not be told; the message says what to set."""


def family(kind: str) -> Family:
    return FAMILIES[kind]


def kind_from_class(class_name: str) -> str | None:
    return _CLASS_KINDS.get(class_name)


def kind_from_name(source: str) -> str | None:
    """A guess from the repo id or file name (for presets only)."""
    text = source.lower()
    for pattern, kind in _NAME_HINTS:
        if re.search(pattern, text):
            return kind
    return None


def preset_for(kind: str | None, source: str) -> str:
    """The built-in preset for a kind and source name (turbo / schnell variants by name)."""
    text = source.lower()
    if kind not in FAMILIES:  # None, or a wrong kind the config validation reports
        return "sd15"
    if kind == "flux":
        return "flux-schnell" if "schnell" in text else "flux-dev"
    if kind == "sdxl" and ("turbo" in text or "lightning" in text):
        return "sdxl-turbo"
    if kind == "sd3" and "turbo" in text:
        return "sd35-turbo"
    if kind == "sd2" and "turbo" in text:
        return "sd-turbo"
    return FAMILIES[kind].default_preset


def is_single_file(source: str) -> bool:
    return Path(source).suffix.lower() in SINGLE_FILE_SUFFIXES


def read_model_index(source: str, *, cache_only: bool = True) -> dict[str, Any] | None:
    """model_index.json of a local folder, or of a repo id found in the local HF cache."""
    path = Path(source).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        return json.loads(index.read_text()) if index.is_file() else None
    if is_single_file(source) or source.startswith((".", "/", "~")) or source.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - a dependency of diffusers
        return None
    cached = try_to_load_from_cache(source, "model_index.json")
    if isinstance(cached, str) and Path(cached).is_file():
        return json.loads(Path(cached).read_text())
    return None


def detect_kind_from_index(index: Mapping[str, Any], folder: Path | None = None) -> str | None:
    """The kind of a diffusers folder/repo from its `_class_name` (SD 2 by its text width)."""
    kind = kind_from_class(str(index.get("_class_name", "")))
    if kind == "sd15" and folder is not None:
        unet = folder / "unet" / "config.json"
        if unet.is_file() and json.loads(unet.read_text()).get("cross_attention_dim") == 1024:
            return "sd2"
    return kind


def detect_local_kind(source: str) -> str | None:
    """Kind of a local folder or cached repo without importing torch; None when unknown."""
    index = read_model_index(source)
    if index is None:
        return None
    path = Path(source).expanduser()
    return detect_kind_from_index(index, path if path.is_dir() else None)


class _ShapeOnly:
    def __init__(self, shape: list[int]) -> None:
        self.shape = tuple(shape)


class SafetensorsShapes(Mapping[str, _ShapeOnly]):
    """The tensor names and shapes of a .safetensors file, read from its header only."""

    def __init__(self, path: Path) -> None:
        with path.open("rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            if not 0 < size < 100_000_000:
                raise DetectionError(f"{path.name} is not a safetensors file")
            header = json.loads(fh.read(size))
        header.pop("__metadata__", None)
        self._shapes = {k: list(v.get("shape", [])) for k, v in header.items()}

    def __getitem__(self, key: str) -> _ShapeOnly:
        return _ShapeOnly(self._shapes[key])

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)


def detect_single_file_kind(path: Path) -> tuple[str, str]:
    """(kind, diffusers model type) of a single-file checkpoint; DetectionError if unknown."""
    if path.suffix.lower() != ".safetensors":
        raise DetectionError(
            f"cannot tell the family of {path.name!r} (only .safetensors headers are read); "
            f"set kind = one of {', '.join(k for k in KINDS if FAMILIES[k].single_file)}"
        )
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    model_type = str(infer_diffusers_model_type(SafetensorsShapes(path)))
    kind = _SINGLE_FILE_KINDS.get(model_type)
    if kind is None:
        raise DetectionError(
            f"{path.name!r} looks like diffusers model type {model_type!r}, which fedibot "
            f"does not serve from a single file; set kind explicitly or use a diffusers folder"
        )
    return kind, model_type
