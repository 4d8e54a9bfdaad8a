"""Configuration of the generator: devices, models and their presets, batching, safety."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from generator.families import (
    PRESETS,
    TINY_SOURCE,
    DetectionError,
    Kind,
    detect_local_kind,
    kind_from_name,
    preset_for,
)
from generator.horde.config import HordeConfig

Backend = Literal["local", "horde", "local+horde"]

__all__ = ["TINY_SOURCE", "GeneratorConfig", "Kind", "ModelConfig", "ModelPreset"]
SchedulerName = Literal[
    "default",
    "euler",
    "euler_a",
    "ddim",
    "pndm",
    "lms",
    "heun",
    "dpmpp_2m",
    "dpmpp_2m_karras",
    "dpmpp_sde",
    "unipc",
    "lcm",
]

NUDENET_EXPLICIT = [
    "FEMALE_GENITALIA_EXPOSED",
    "MALE_GENITALIA_EXPOSED",
    "FEMALE_BREAST_EXPOSED",
    "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
]


class ModelPreset(BaseModel):
    """Defaults and limits applied to requests for one model."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(25, ge=1, le=200, description="default denoising steps")
    guidance: float = Field(7.0, ge=0.0, le=30.0, description="default CFG scale")
    scheduler: SchedulerName = Field("default", description="'default' keeps the model's own")
    width: int = Field(512, ge=64, le=4096, multiple_of=8)
    height: int = Field(512, ge=64, le=4096, multiple_of=8)
    max_width: int = Field(1024, ge=64, le=4096, multiple_of=8)
    max_height: int = Field(1024, ge=64, le=4096, multiple_of=8)
    min_steps: int = Field(1, ge=1, le=200)
    max_steps: int = Field(50, ge=1, le=200)
    min_guidance: float = Field(0.0, ge=0.0, le=30.0)
    max_guidance: float = Field(20.0, ge=0.0, le=30.0)
    strength: float = Field(
        0.6, gt=0.0, le=1.0, description="default image-to-image strength (1: ignore the picture)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelPreset:
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) > max_steps ({self.max_steps})")
        if self.min_guidance > self.max_guidance:
            raise ValueError(
                f"min_guidance ({self.min_guidance}) > max_guidance ({self.max_guidance})"
            )
        if not self.min_steps <= self.steps <= self.max_steps:
            raise ValueError(f"steps {self.steps} outside min_steps..max_steps")
        if not self.min_guidance <= self.guidance <= self.max_guidance:
            raise ValueError(f"guidance {self.guidance} outside min_guidance..max_guidance")
        if self.width > self.max_width or self.height > self.max_height:
            raise ValueError("default width/height exceed max_width/max_height")
        return self


class ModelOptions(BaseModel):
    """Speed/memory switches for one model."""

    model_config = ConfigDict(extra="forbid")

    torch_compile: bool = Field(False, description="torch.compile the UNet, warmed up at load")
    tiny_vae: str | None = Field(
        None, description="repo id or local folder of an AutoencoderTiny (e.g. madebyollin/taesd)"
    )
    attention_slicing: bool = False
    vae_slicing: bool = False
    max_sequence_length: int | None = Field(
        None,
        ge=8,
        le=1024,
        description="text tokens for T5/Gemma encoders (FLUX, SD3, SANA, PixArt); None: the "
        "pipeline's default",
    )


class ModelConfig(BaseModel):
    """One model served under a short name."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(
        ...,
        min_length=1,
        description="HF repo id, local diffusers folder, single-file .safetensors/.ckpt path, "
        f"or {TINY_SOURCE!r}",
    )
    kind: Kind | None = Field(
        None,
        description="model family; None: read from the model's model_index.json (folders, "
        "repos) or the checkpoint's tensors (.safetensors) when it is loaded",
    )
    base_preset: str | None = Field(
        None,
        description=f"built-in preset the `preset` table overrides, one of {sorted(PRESETS)}; "
        "None: chosen from the family and the source name (turbo, schnell)",
    )
    variant: str | None = Field(None, description="weights variant to load, e.g. 'fp16'")
    single_file_config: str | None = Field(
        None, description="for single-file checkpoints: local folder or repo id with the configs"
    )
    preset: ModelPreset = Field(default_factory=ModelPreset)
    options: ModelOptions = Field(default_factory=ModelOptions)
    qr_controlnet: str | None = Field(
        None,
        description="repo id or local folder of a QR-code ControlNet for this model's family; "
        "None: QR codes are blended into the finished image",
    )
    qr_controlnet_scale: float = Field(1.3, ge=0.0, le=5.0)

    @model_validator(mode="before")
    @classmethod
    def _preset_from_family(cls, data: Any) -> Any:
        """The preset is the family's built-in one overlaid with what the config sets."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        source = str(data.get("source") or "")
        name = data.get("base_preset") or preset_for(guess_kind(source, data.get("kind")), source)
        if name not in PRESETS:
            raise ValueError(f"base_preset {name!r} is not one of {sorted(PRESETS)}")
        user = data.get("preset")
        if isinstance(user, ModelPreset):
            user = user.model_dump(exclude_unset=True)
        data["preset"] = {**PRESETS[name], **(user or {})}
        data["base_preset"] = name
        return data


def guess_kind(source: str, kind: str | None = None) -> str | None:
    """The explicit kind, else what local files say, else a guess from the name (no torch)."""
    if kind:
        return kind
    if source == TINY_SOURCE:
        return "tiny"
    try:
        found = detect_local_kind(source)
    except (OSError, ValueError, DetectionError):
        found = None
    return found or kind_from_name(source)


def tiny_model_config() -> ModelConfig:
    """The built-in random-weight model used by tests and the offline smoke run."""
    return ModelConfig(source=TINY_SOURCE, kind="tiny")


class SafetyConfig(BaseModel):
    """Output classification applied to every image before it is stored."""

    model_config = ConfigDict(extra="forbid")

    classifier: Literal["nudenet", "diffusers", "none"] = "nudenet"
    threshold: float = Field(0.5, ge=0.0, le=1.0, description="score at which a label flags")
    flagged_labels: list[str] = Field(
        default_factory=lambda: list(NUDENET_EXPLICIT),
        description="labels that flag an image (for 'diffusers' the label is 'nsfw_concept')",
    )
    diffusers_checker: str | None = Field(
        None,
        description="local folder holding StableDiffusionSafetyChecker weights "
        "(safety_checker/ and feature_extractor/); required for classifier='diffusers'",
    )


class QrConfig(BaseModel):
    """QR-code art: how hard the code may be blended in before giving up (`qr_unreadable`)."""

    model_config = ConfigDict(extra="forbid")

    blend_start: float = Field(0.35, gt=0.0, le=1.0, description="first blend strength")
    blend_step: float = Field(0.1, gt=0.0, le=1.0, description="added after each failed scan")
    blend_max: float = Field(
        0.95, gt=0.0, le=1.0, description="strongest blend tried (1.0: a plain code)"
    )
    max_chars: int = Field(300, ge=1, le=1200, description="longest QR text accepted")


class GeneratorConfig(BaseModel):
    """The `[generator]` section."""

    model_config = ConfigDict(extra="forbid")

    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    default_model: str = Field(
        "", description="a name from `models`; empty: the first configured model"
    )
    models: dict[str, ModelConfig] = Field(
        default_factory=lambda: {"tiny": tiny_model_config()},
        min_length=1,
        description="short name → model; with none configured only the built-in `tiny` test "
        "model exists (for `fedibot try` and tests); it is never added to a configured list",
    )
    cpu_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="torch intra-op threads on CPU (None: torch's default); 1 is fastest for "
        "tiny models on a busy machine",
    )
    max_loaded_models: int = Field(1, ge=1, le=16)
    max_batch: int = Field(8, ge=1, le=64, description="images per pipeline call")
    lease_seconds: float = Field(
        60.0,
        gt=0,
        description="a job returns to the queue this long after its worker's last heartbeat",
    )
    heartbeat_seconds: float = Field(20.0, gt=0)
    idle_poll_seconds: float = Field(1.0, gt=0, description="wait between empty claims")
    data_dir: str = "data"
    qr: QrConfig = Field(default_factory=lambda: QrConfig())
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    backend: Backend = Field(
        "local",
        description="'local' (this machine's GPU/CPU), 'horde' (only the AI Horde), or "
        "'local+horde' (local, overflowing to the Horde by the rule in [generator.horde])",
    )
    horde: HordeConfig = Field(default_factory=lambda: HordeConfig())

    @model_validator(mode="after")
    def _check(self) -> GeneratorConfig:
        if not self.default_model:
            self.default_model = next(iter(self.models))
        if self.default_model not in self.models:
            raise ValueError(
                f"default_model {self.default_model!r} is not one of the models: "
                f"{sorted(self.models)}"
            )
        if self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError(
                f"heartbeat_seconds ({self.heartbeat_seconds}) must be below "
                f"lease_seconds ({self.lease_seconds})"
            )
        if self.backend != "local":
            self._check_horde()
        return self

    def _check_horde(self) -> None:
        """The Horde is used: it needs a contact and model names it knows (never echo the key)."""
        if not self.horde.contact:
            raise ValueError(
                f"backend = {self.backend!r} needs horde.contact: a URL or e-mail for the "
                "Client-Agent header (fedibot:<version>:<contact>)"
            )
        unknown = sorted(set(self.horde.models) - set(self.models))
        if unknown:
            raise ValueError(
                f"horde.models maps unknown model(s) {unknown}; allowed: {sorted(self.models)}"
            )
        if self.backend == "horde" and self.default_model not in self.horde.models:
            raise ValueError(
                f"backend = 'horde' but default_model {self.default_model!r} has no Horde name "
                f"in horde.models (mapped: {sorted(self.horde.models)})"
            )

    def model(self, name: str) -> ModelConfig:
        """The config of a short name; KeyError naming the known ones."""
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(f"unknown model {name!r}; known: {sorted(self.models)}") from None
