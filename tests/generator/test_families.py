"""Every model family on a tiny random-weight pipeline: detection → load → batch → PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from generator.backend import RequestImages
from generator.config import GeneratorConfig, ModelConfig
from generator.families import FAMILIES, PRESETS
from generator.models import _compile_and_warm
from generator.pngmeta import read_parameters
from generator.service import GeneratorService
from generator.types import GenerationError, GenerationRequest, JobResult
from tests.generator.conftest import FAMILY_KINDS, WrappedPipe, make_config


def req(job_id: int, model: str, seeds: list[int], cfg: GeneratorConfig, **kw: Any):
    preset = cfg.models[model].preset
    base: dict[str, Any] = {"width": 64, "height": 64, "steps": 2, "guidance": preset.guidance}
    base.update(kw)
    return GenerationRequest(job_id=job_id, prompt="a lighthouse", seeds=seeds, model=model, **base)


def pixels(result: Any) -> list[np.ndarray]:
    assert isinstance(result, RequestImages), result
    return [np.asarray(img, dtype=np.int16) for img in result.images]


@pytest.mark.parametrize("kind", FAMILY_KINDS)
def test_family_is_detected_and_batches_with_per_image_seeds(
    family_service: GeneratorService, kind: str
) -> None:
    cfg = family_service.config
    backend = family_service.backend
    loaded = backend.load(kind)
    assert loaded.kind == kind
    assert type(loaded.pipe).__name__ == FAMILIES[kind].pipeline
    assert loaded.memory_bytes() > 0
    calls = backend.stats.calls
    batched = backend.generate(
        [req(1, kind, [5, 6], cfg, negative_prompt="fog"), req(2, kind, [7], cfg)]
    )
    assert backend.stats.calls == calls + 1 and backend.stats.sizes[-1] == 3
    alone = backend.generate([req(3, kind, [6], cfg, negative_prompt="fog")])
    assert np.abs(pixels(batched[0])[1] - pixels(alone[0])[0]).max() <= 3
    five, six = pixels(batched[0])
    assert np.abs(five - six).mean() > 1  # different seeds → different images
    assert batched[0].images[0].size == (64, 64)


@pytest.mark.parametrize("kind", FAMILY_KINDS)
def test_family_writes_png_metadata(family_service: GeneratorService, kind: str) -> None:
    cfg = family_service.config
    (result,) = family_service.generate([req(40, kind, [9], cfg, negative_prompt="blur")])
    assert isinstance(result, JobResult), result
    params = read_parameters(result.images[0].path)
    assert (params.model, params.seed, params.steps) == (kind, 9, 2)
    assert (params.width, params.height) == (64, 64)
    # families without a negative prompt do not claim one was used
    assert params.negative_prompt == ("blur" if FAMILIES[kind].negative_prompt else "")


@pytest.mark.parametrize("kind", FAMILY_KINDS)
def test_family_out_of_memory_splits_the_batch(family_service: GeneratorService, kind: str) -> None:
    cfg = family_service.config
    loaded = family_service.backend.load(kind)
    reqs = [req(i, kind, [100 + i], cfg) for i in range(4)]
    reference = [pixels(r)[0] for r in family_service.backend.generate(reqs)]

    def before(kwargs: dict[str, Any]) -> None:
        if len(kwargs["prompt"]) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory")

    original = loaded.pipe
    wrapped = WrappedPipe(original, before)
    loaded.pipe = wrapped
    try:
        results = family_service.backend.generate(reqs)
    finally:
        loaded.pipe = original
    assert wrapped.calls == [4, 2, 1, 1, 2, 1, 1]
    for got, want in zip(results, reference, strict=True):
        assert np.abs(pixels(got)[0] - want).max() <= 3


@pytest.mark.parametrize("kind", FAMILY_KINDS)
def test_family_warm_up_runs_every_batch_size(
    family_service: GeneratorService, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The torch_compile warm-up path (compile itself replaced: it takes minutes on a CPU)."""
    loaded = family_service.backend.load(kind)
    compiled: list[Any] = []
    monkeypatch.setattr(torch, "compile", lambda module: compiled.append(module) or module)
    calls: list[int] = []
    original = loaded.pipe
    loaded.pipe = WrappedPipe(original, lambda kwargs: calls.append(kwargs["output_type"]))
    try:
        loaded.warmed_batch_sizes.clear()
        _compile_and_warm(loaded, 4)
    finally:
        loaded.pipe = original
    assert compiled and compiled[0] is getattr(original, FAMILIES[kind].denoiser)
    assert loaded.warmed_batch_sizes == {1, 2, 4}
    assert calls == ["latent"] * 3


def test_lru_unloads_across_families(family_root: Path, tiny_data_dir: Path) -> None:
    from generator.backend import DiffusersBackend
    from tests.generator.conftest import family_models

    models = family_models(family_root)
    cfg = make_config(
        tiny_data_dir, models={k: models[k] for k in ("flux", "sdxl", "pixart_sigma")}
    )
    backend = DiffusersBackend(cfg.model_copy(update={"max_loaded_models": 2}))
    for name in ("flux", "sdxl", "flux", "pixart_sigma"):
        backend.load(name)
    assert backend.cache.loaded_names() == ["flux", "pixart_sigma"]


def test_unknown_pipeline_class_needs_kind(tmp_path: Path, tiny_data_dir: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "model_index.json").write_text('{"_class_name": "KandinskyPipeline"}')
    cfg = make_config(tiny_data_dir, models={"odd": ModelConfig(source=str(folder))})
    from generator.backend import DiffusersBackend

    with pytest.raises(GenerationError) as info:
        DiffusersBackend(cfg).load("odd")
    assert info.value.code == "model_unavailable"
    assert "KandinskyPipeline" in info.value.message and "set kind" in info.value.message


def test_single_file_of_a_family_without_single_file_support_is_refused(
    tmp_path: Path, tiny_data_dir: Path
) -> None:
    path = tmp_path / "sana.safetensors"
    path.write_bytes(b"x")
    cfg = make_config(tiny_data_dir, models={"s": ModelConfig(source=str(path), kind="sana")})
    from generator.backend import DiffusersBackend

    with pytest.raises(GenerationError) as info:
        DiffusersBackend(cfg).load("s")
    assert "single file" in info.value.message and "SANA" in info.value.message


def test_single_safetensors_kind_is_read_from_its_header(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    from generator.families import DetectionError, detect_single_file_kind

    flux_keys = {
        "double_blocks.0.img_attn.norm.key_norm.scale": np.zeros(2, np.float32),
        "img_in.weight": np.zeros((4, 64), np.float32),
    }
    save_file(flux_keys, str(tmp_path / "f.safetensors"))
    assert detect_single_file_kind(tmp_path / "f.safetensors") == ("flux", "flux-schnell")
    save_file(
        {**flux_keys, "guidance_in.in_layer.bias": np.zeros(2, np.float32)},
        str(tmp_path / "d.safetensors"),
    )
    assert detect_single_file_kind(tmp_path / "d.safetensors") == ("flux", "flux-dev")
    (tmp_path / "x.ckpt").write_bytes(b"x")
    with pytest.raises(DetectionError, match="set kind"):
        detect_single_file_kind(tmp_path / "x.ckpt")


@pytest.mark.parametrize(
    ("source", "kind", "preset", "steps", "guidance"),
    [
        ("black-forest-labs/FLUX.1-schnell", None, "flux-schnell", 4, 0.0),
        ("black-forest-labs/FLUX.1-dev", None, "flux-dev", 28, 3.5),
        ("stabilityai/stable-diffusion-3.5-large-turbo", None, "sd35-turbo", 4, 0.0),
        ("stabilityai/stable-diffusion-3.5-large", None, "sd3", 28, 4.5),
        ("stabilityai/sdxl-turbo", None, "sdxl-turbo", 1, 0.0),
        ("Efficient-Large-Model/Sana_Sprint_1.6B_1024px_diffusers", None, "sana-sprint", 2, 4.5),
        ("Efficient-Large-Model/Sana_1600M_1024px_diffusers", None, "sana", 20, 4.5),
        ("PixArt-alpha/PixArt-Sigma-XL-2-1024-MS", None, "pixart-sigma", 20, 4.5),
        ("someone/my-model", "flux", "flux-dev", 28, 3.5),
        ("someone/my-model", None, "sd15", 25, 7.0),
    ],
)
def test_presets_follow_family_and_name(
    source: str, kind: str | None, preset: str, steps: int, guidance: float
) -> None:
    mc = ModelConfig(source=source, kind=kind)
    assert mc.base_preset == preset
    assert (mc.preset.steps, mc.preset.guidance) == (steps, guidance)


def test_config_preset_values_override_the_family_preset() -> None:
    mc = ModelConfig.model_validate(
        {"source": "black-forest-labs/FLUX.1-schnell", "preset": {"width": 768, "height": 512}}
    )
    assert (mc.preset.width, mc.preset.height) == (768, 512)
    assert mc.preset.steps == PRESETS["flux-schnell"]["steps"]
    assert mc.preset.max_guidance == 0.0


def test_folder_kind_is_detected_at_config_time(family_root: Path) -> None:
    mc = ModelConfig(source=str(family_root / "sana_sprint"))
    assert mc.base_preset == "sana-sprint" and mc.preset.steps == 2


def test_tiny_is_only_the_default_when_no_model_is_configured() -> None:
    assert list(GeneratorConfig().models) == ["tiny"]
    cfg = GeneratorConfig(models={"flux": ModelConfig(source="black-forest-labs/FLUX.1-schnell")})
    assert list(cfg.models) == ["flux"] and cfg.default_model == "flux"
