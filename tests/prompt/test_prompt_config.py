"""Config models: styles are validated, limits are bounded, bad regexes name the key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fedibot.config.prompt import DEFAULT_STYLES, PromptConfig, PromptFilterConfig, StyleTemplate


def test_defaults() -> None:
    config = PromptConfig()
    assert (config.max_prompt_chars, config.max_n, config.default_n) == (1000, 4, 1)
    assert {"photo", "anime", "painting"} <= set(config.styles)


@pytest.mark.parametrize("name", sorted(DEFAULT_STYLES))
def test_default_styles_render(name: str) -> None:
    prompt, negative = DEFAULT_STYLES[name].render("a fox", "rain")
    assert "a fox" in prompt and "{p}" not in prompt
    assert "rain" in negative and "{np}" not in negative


def test_style_prompt_must_contain_p() -> None:
    with pytest.raises(ValidationError, match=r"must contain \{p\}"):
        StyleTemplate(prompt="a photo", negative="{np}")


def test_style_negative_must_contain_np() -> None:
    with pytest.raises(ValidationError, match=r"must contain \{np\}"):
        StyleTemplate(prompt="{p}", negative="blurry")


def test_unknown_placeholder_is_refused_with_its_name() -> None:
    with pytest.raises(ValidationError, match=r"unknown placeholder \{subject\}"):
        StyleTemplate(prompt="{p} and {subject}")


def test_np_in_prompt_is_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError, match=r"\{np\} belongs in 'negative'"):
        StyleTemplate(prompt="{p} {np}")


def test_config_refuses_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="max_images"):
        PromptConfig(max_images=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="negatives"):
        StyleTemplate(prompt="{p}", negatives="{np}")  # type: ignore[call-arg]


@pytest.mark.parametrize("value", [0, 5])
def test_max_n_is_between_1_and_4(value: int) -> None:
    with pytest.raises(ValidationError, match="max_n"):
        PromptConfig(max_n=value)


def test_default_n_may_not_exceed_max_n() -> None:
    with pytest.raises(
        ValidationError, match=r"default_n \(3\) must not be larger than max_n \(2\)"
    ):
        PromptConfig(max_n=2, default_n=3)


def test_style_names_are_lowercase_words() -> None:
    with pytest.raises(ValidationError, match="styles"):
        PromptConfig(styles={"Oil Paint": StyleTemplate()})
    assert "oil-paint" in PromptConfig(styles={"oil-paint": StyleTemplate()}).styles


def test_styles_from_toml_like_dicts() -> None:
    config = PromptConfig.model_validate(
        {"styles": {"noir": {"prompt": "film noir still of {p}", "negative": "{np}, colour"}}}
    )
    assert config.styles["noir"].render("a detective", "") == (
        "film noir still of a detective",
        "colour",
    )


def test_filter_config_bad_regex_names_the_key_and_the_error() -> None:
    with pytest.raises(ValidationError) as info:
        PromptFilterConfig(blocked_regexes=[r"\bok\b", r"gore("])
    text = str(info.value)
    assert "blocked_regexes" in text
    assert "blocked_regexes[1]" in text and "'gore('" in text
    assert "missing )" in text


def test_filter_config_refuses_blank_terms_and_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="entry 1"):
        PromptFilterConfig(blocked_terms=["ok", " ... "])
    with pytest.raises(ValidationError, match="blocklist"):
        PromptFilterConfig(blocklist=["x"])  # type: ignore[call-arg]
