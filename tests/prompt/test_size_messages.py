"""--size: the model says what is too large or too small, with its own range; the usage's
example is one the default model takes."""

from __future__ import annotations

import pytest

from fedibot.config.loader import FedibotConfig, load_config
from fedibot.intake.grammar import PromptError, PromptRules, parse, usage_text
from fedibot.intake.options import resolve_options
from tests.fixtures_path import REPO_ROOT


def rules_for(config: FedibotConfig) -> PromptRules:
    gen = config.generator
    return PromptRules.from_config(config.prompt, gen.models, gen.model(gen.default_model).preset)


@pytest.mark.parametrize("text", ["a fox --size 99999x2", "a fox --size 0x512"])
def test_an_out_of_range_size_names_the_models_range_and_echoes_wxh(text: str) -> None:
    config = FedibotConfig()
    parsed = parse(text, rules_for(config))
    with pytest.raises(PromptError) as info:
        resolve_options(config, parsed)
    assert info.value.code == "bad_option"
    message = info.value.message
    assert "for model 'tiny'" in message and "--size up to 256x256" in message
    assert ":" not in message.split(".")[0]  # not "99999:2"
    assert "format" not in message and "must be width x height" not in message


def test_the_usage_example_size_works_with_the_default_model() -> None:
    for config in (FedibotConfig(), load_config(REPO_ROOT / "config.toml")):
        rules = rules_for(config)
        usage = usage_text(rules)
        example = rules.size_example
        assert f"--size {example}" in usage
        options = resolve_options(config, parse(f"a fox --size {example}", rules))
        assert f"{options.width}x{options.height}" == example


def test_a_malformed_size_is_a_format_error_echoing_what_was_typed() -> None:
    with pytest.raises(PromptError) as info:
        parse("a fox --size 12x", rules_for(FedibotConfig()))
    assert "--size must be width x height in pixels" in info.value.message
