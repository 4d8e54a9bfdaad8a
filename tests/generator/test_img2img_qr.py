"""Image-to-image on the same components, and QR-code art that really scans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from generator.backend import RequestImages
from generator.config import ModelConfig, QrConfig
from generator.pngmeta import read_parameters
from generator.qr import decode
from generator.service import GeneratorService
from generator.types import GenerationError, GenerationRequest, JobResult, Progress
from tests.generator.conftest import make_config


def picture(path: Path, seed: int) -> str:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(path)
    return str(path)


def req(job_id: int, seeds: list[int], **kw: Any) -> GenerationRequest:
    return GenerationRequest(job_id=job_id, prompt="a harbour", seeds=seeds, **kw)


def pixels(result: Any) -> list[np.ndarray]:
    assert isinstance(result, RequestImages), result
    return [np.asarray(img, dtype=np.int16) for img in result.images]


def test_img2img_shares_the_loaded_components(service: GeneratorService) -> None:
    loaded = service.backend.load("tiny")
    img2img = loaded.img2img_pipe()
    assert type(img2img).__name__ == "StableDiffusionImg2ImgPipeline"
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert getattr(img2img, name) is getattr(loaded.pipe, name)
    assert loaded.img2img_pipe() is img2img  # built once


def test_img2img_batches_only_with_its_own_kind(service: GeneratorService, tmp_path: Path) -> None:
    a, b = picture(tmp_path / "a.png", 1), picture(tmp_path / "b.jpg", 2)
    backend = service.backend
    calls = backend.stats.calls
    results = backend.generate(
        [
            req(1, [3], init_image=a, strength=0.5, steps=4),
            req(2, [3], init_image=b, strength=0.5, steps=4),
            req(3, [3], steps=4),  # text-to-image: its own call
            req(4, [3], init_image=a, strength=0.75, steps=4),  # other strength: its own call
        ]
    )
    assert backend.stats.calls == calls + 3
    assert sorted(backend.stats.sizes[-3:]) == [1, 1, 2]
    from_a, from_b, plain, stronger = (pixels(r)[0] for r in results)
    assert np.abs(from_a - from_b).max() > 0  # the picture matters
    assert np.abs(from_a - plain).max() > 0
    assert np.abs(from_a - stronger).max() > 0  # and so does strength
    (alone,) = backend.generate([req(5, [3], init_image=a, strength=0.5, steps=4)])
    assert np.abs(pixels(alone)[0] - from_a).max() <= 2  # seeds reproduce in a batch


def test_img2img_progress_counts_the_steps_strength_leaves(service: GeneratorService, tmp_path):
    seen: list[tuple[int, int]] = []

    class Recorder(Progress):
        def step(self, step: int, total: int) -> None:
            seen.append((step, total))

    a = picture(tmp_path / "a.png", 1)
    service.generate([req(1, [1], init_image=a, strength=0.5, steps=8)], progress=Recorder())
    assert seen == [(i, 4) for i in (1, 2, 3, 4)]


def test_img2img_png_records_the_strength(service: GeneratorService, tmp_path: Path) -> None:
    a = picture(tmp_path / "a.png", 1)
    (result,) = service.generate([req(1, [1], init_image=a, strength=0.4, steps=5)])
    assert isinstance(result, JobResult), result
    assert read_parameters(result.images[0].path).denoising_strength == 0.4


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"strength": 0.0}, ["strength 0", "0..1"]),
        ({"strength": 1.5}, ["strength 1.5", "0..1"]),
        ({"strength": float("nan")}, ["strength nan"]),
        ({"strength": 0.1, "steps": 4}, ["no denoising step", "at least 10 steps"]),
        ({"init_image": None, "strength": 0.5}, ["only applies when starting from a picture"]),
        ({"qr": "hello"}, ["cannot be combined"]),
    ],
)
def test_bad_strength_is_refused(
    service: GeneratorService, tmp_path: Path, options: dict[str, Any], words: list[str]
) -> None:
    kw: dict[str, Any] = {"init_image": picture(tmp_path / "a.png", 1), "strength": 0.5}
    kw.update(options)
    (err,) = service.backend.generate([req(1, [1], **kw)])
    assert isinstance(err, GenerationError) and err.code == "bad_option", err
    for word in words:
        assert word in err.message


def test_unreadable_picture_is_bad_option(service: GeneratorService, tmp_path: Path) -> None:
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not a picture")
    err, ok = service.backend.generate(
        [req(1, [1], init_image=str(bad), strength=0.5), req(2, [1])]
    )
    assert isinstance(err, GenerationError) and err.code == "bad_option"
    assert "could not be read" in err.message
    assert isinstance(ok, RequestImages)


def test_family_without_img2img_refuses_a_picture(
    family_service: GeneratorService, tmp_path: Path
) -> None:
    a = picture(tmp_path / "a.png", 1)
    (err,) = family_service.backend.generate(
        [req(1, [1], model="pixart_sigma", width=64, height=64, steps=2, guidance=4.5,
             init_image=a, strength=0.5)]
    )  # fmt: skip
    assert isinstance(err, GenerationError) and err.code == "bad_option"
    assert "PixArt" in err.message and "image-to-image" in err.message


@pytest.mark.parametrize("kind", ["sdxl", "sd3", "flux", "sana_sprint"])
def test_img2img_works_for_families_that_have_it(
    family_service: GeneratorService, tmp_path: Path, kind: str
) -> None:
    a = picture(tmp_path / "a.png", 1)
    guidance = family_service.config.models[kind].preset.guidance
    common = {"model": kind, "width": 64, "height": 64, "steps": 4, "guidance": guidance}
    calls = family_service.backend.stats.calls
    first, second = family_service.backend.generate(
        [
            req(1, [1], init_image=a, strength=0.5, **common),
            req(2, [2], init_image=a, strength=0.5, **common),
        ]
    )
    assert family_service.backend.stats.calls == calls + 1
    assert pixels(first)[0].shape == (64, 64, 3) and isinstance(second, RequestImages)
    loaded = family_service.backend.load(kind)
    denoiser = loaded.family.denoiser
    assert getattr(loaded.img2img_pipe(), denoiser) is getattr(loaded.pipe, denoiser)


# --- QR codes --------------------------------------------------------------------------------

URL = "https://example.org/fedibot?x=1"


@pytest.mark.parametrize("position", ["center", "top-left", "bottom-right"])
def test_qr_result_decodes_to_the_requested_text(service: GeneratorService, position: str):
    (result,) = service.generate(
        [req(1, [4, 5], qr=URL, qr_position=position, width=192, height=128, steps=2)]
    )
    assert isinstance(result, JobResult), result
    for image in result.images:
        with Image.open(image.path) as png:
            assert decode(png) == [URL]
        assert URL in image.alt_text
        assert read_parameters(image.path).qr == URL


def test_qr_is_blended_only_as_strongly_as_needed(service: GeneratorService) -> None:
    (plain,) = service.backend.generate([req(1, [4], width=128, height=128, steps=2)])
    (coded,) = service.backend.generate([req(2, [4], qr=URL, width=128, height=128, steps=2)])
    assert isinstance(coded, RequestImages) and coded.qr_strengths is not None
    (strength,) = coded.qr_strengths
    cfg = service.config.qr
    assert cfg.blend_start <= strength <= cfg.blend_max
    # the picture is still there: not replaced by a plain black-and-white code
    grey = np.asarray(coded.images[0].convert("L"), dtype=np.int16)
    assert ((grey > 10) & (grey < 245)).mean() > 0.2
    assert np.abs(pixels(plain)[0] - pixels(coded)[0]).max() > 0


def test_qr_that_never_scans_is_qr_unreadable(tiny_data_dir: Path) -> None:
    cfg = make_config(tiny_data_dir, qr=QrConfig(blend_start=0.02, blend_step=0.02, blend_max=0.06))
    svc = GeneratorService(cfg)
    try:
        (err,) = svc.generate([req(1, [4], qr=URL, width=128, height=128, steps=2)])
    finally:
        svc.close()
    assert isinstance(err, GenerationError) and err.code == "qr_unreadable"
    assert "did not scan" in err.message


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"qr": "x" * 200, "width": 64, "height": 64}, ["needs at least", "larger size"]),
        ({"qr": URL, "qr_position": "middle"}, ["middle", "center"]),
        ({"qr": URL, "qr_module": 9, "width": 128, "height": 128}, ["larger than"]),
        ({"qr": "   "}, ["empty"]),
        ({"qr": "y" * 301}, ["301 characters", "300"]),
    ],
)
def test_impossible_qr_is_bad_option(
    service: GeneratorService, options: dict[str, Any], words: list[str]
) -> None:
    (err,) = service.backend.generate([req(1, [1], **{"width": 128, "height": 128, **options})])
    assert isinstance(err, GenerationError) and err.code == "bad_option", err
    for word in words:
        assert word in err.message


def test_qr_controlnet_drives_the_pipeline_and_still_scans(
    family_root: Path, tiny_data_dir: Path
) -> None:
    tiny = ModelConfig(source="builtin:tiny", kind="tiny")
    with_net = tiny.model_copy(update={"qr_controlnet": str(family_root / "qr-controlnet")})
    cfg = make_config(tiny_data_dir, models={"plain": tiny, "qr": with_net}, max_loaded_models=2)
    svc = GeneratorService(cfg)
    try:
        common = {"qr": URL, "width": 128, "height": 128, "steps": 2}
        plain, net = svc.backend.generate(
            [req(1, [4], model="plain", **common), req(2, [4], model="qr", **common)]
        )
        loaded = svc.backend.load("qr")
        pipe = loaded.controlnet_pipe()
        assert type(pipe).__name__ == "StableDiffusionControlNetPipeline"
        assert pipe.unet is loaded.pipe.unet  # same components, one more module
        assert svc.backend.load("plain").controlnet_pipe() is None
    finally:
        svc.close()
    assert np.abs(pixels(plain)[0] - pixels(net)[0]).max() > 0  # the ControlNet took part
    assert decode(net.images[0]) == [URL]
