"""The A1111 `parameters` chunk: written into stored PNGs and read back."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from generator.pngmeta import Parameters, image_path, parse_parameters, read_parameters, save_png
from generator.service import GeneratorService
from generator.types import GenerationRequest, JobResult


def test_generated_png_carries_parameters_that_read_back(
    service: GeneratorService, tmp_path: Path
) -> None:
    request = GenerationRequest(
        job_id=4242,
        prompt="a castle, on a hill: at night",
        negative_prompt="blurry, low quality",
        seeds=[1234, 1235],
        steps=3,
        guidance=6.5,
    )
    (result,) = service.generate([request])
    assert isinstance(result, JobResult)
    for index, image in enumerate(result.images):
        assert image.path == image_path(service.config.data_dir, 4242, index)
        assert image.path.as_posix().endswith(f"images/4242/{index}.png")
        params = read_parameters(image.path)
        assert params == Parameters(
            prompt="a castle, on a hill: at night",
            negative_prompt="blurry, low quality",
            steps=3,
            sampler="Euler",
            cfg_scale=6.5,
            seed=1234 + index,
            width=64,
            height=64,
            model="tiny",
        )
    with Image.open(result.images[0].path) as img:
        text = img.text["parameters"]
    assert text.splitlines() == [
        "a castle, on a hill: at night",
        "Negative prompt: blurry, low quality",
        "Steps: 3, Sampler: Euler, CFG scale: 6.5, Seed: 1234, Size: 64x64, Model: tiny",
    ]


def test_a1111_text_from_another_tool_parses() -> None:
    text = (
        "masterpiece, a fox\nin the snow\n"
        "Negative prompt: ugly\n"
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 3141592653, Size: 512x768, "
        'Model hash: abc123, Model: "sd, v1.5", Version: v1.6.0'
    )
    p = parse_parameters(text)
    assert p.prompt == "masterpiece, a fox\nin the snow"
    assert p.negative_prompt == "ugly"
    assert (p.steps, p.sampler, p.cfg_scale, p.seed) == (20, "DPM++ 2M Karras", 7.0, 3141592653)
    assert (p.width, p.height, p.model) == (512, 768, "sd, v1.5")


def test_values_with_commas_round_trip(tmp_path: Path) -> None:
    params = Parameters("p", "", 4, "Euler a", 1.0, 7, 64, 64, 'my "model", v2')
    path = save_png(Image.new("RGB", (8, 8)), tmp_path / "x.png", params)
    assert read_parameters(path) == params


def test_png_without_parameters_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(ValueError, match="no 'parameters' chunk"):
        read_parameters(path)
    with pytest.raises(ValueError, match="not an A1111 parameters text"):
        parse_parameters("just a prompt")
