"""Config validation names the field and what is allowed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from generator.config import GeneratorConfig, ModelConfig, ModelPreset


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"device": "tpu"}, ["device", "'auto'", "'cpu'", "'cuda'", "'mps'"]),
        ({"dtype": "int8"}, ["dtype", "'float16'", "'bfloat16'"]),
        ({"max_batch": 65}, ["max_batch", "64"]),
        ({"max_batch": 0}, ["max_batch", "1"]),
        ({"safety": {"classifier": "magic"}}, ["safety.classifier", "'nudenet'", "'none'"]),
        ({"default_model": "sdxl"}, ["default_model", "'sdxl'", "tiny"]),
        ({"models": {"m": {"source": "x", "kind": "sd4"}}}, ["models.m.kind", "'sdxl'", "'flux'"]),
        (
            {"models": {"m": {"source": "x", "base_preset": "fast"}}},
            ["base_preset", "flux-schnell"],
        ),
        ({"models": {}}, ["models", "at least 1"]),
        ({"bogus": 1}, ["bogus", "Extra inputs are not permitted"]),
    ],
)
def test_bad_values_name_field_and_allowed_values(data: dict, words: list[str]) -> None:
    with pytest.raises(ValidationError) as info:
        GeneratorConfig(**data)
    text = str(info.value)
    for word in words:
        assert word in text


def test_defaults_have_the_builtin_tiny_model() -> None:
    cfg = GeneratorConfig()
    assert cfg.default_model == "tiny"
    assert cfg.models["tiny"].source == "builtin:tiny"
    assert (cfg.max_loaded_models, cfg.max_batch, cfg.data_dir) == (1, 8, "data")
    assert cfg.safety.classifier == "nudenet"


def test_tiny_is_not_added_next_to_configured_models() -> None:
    cfg = GeneratorConfig(models={"turbo": ModelConfig(source="stabilityai/sd-turbo", kind="sd2")})
    assert set(cfg.models) == {"turbo"} and cfg.default_model == "turbo"
    assert cfg.models["turbo"].base_preset == "sd-turbo"


def test_preset_must_be_consistent() -> None:
    with pytest.raises(ValidationError, match=r"min_steps \(10\) > max_steps \(4\)"):
        ModelPreset(min_steps=10, max_steps=4, steps=4)
