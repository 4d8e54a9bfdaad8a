"""--qr, --qr-position, --qr-module and --strength in the mention grammar, and their resolution."""

from __future__ import annotations

import pytest

from fedibot.config.loader import FedibotConfig
from fedibot.config.prompt import PromptConfig
from fedibot.intake.grammar import (
    HELP_MARKDOWN,
    ParsedRequest,
    PromptError,
    PromptRules,
    parse,
    usage_text,
)
from fedibot.intake.options import resolve_options
from generator.config import ModelConfig

RULES = PromptRules(models=("tiny", "flux"))


def ok(text: str) -> ParsedRequest:
    return parse(text, RULES)


def err(text: str) -> PromptError:
    with pytest.raises(PromptError) as info:
        parse(text, RULES)
    return info.value


def test_qr_with_position_and_module() -> None:
    r = ok("a castle --qr https://example.org/a?b=1 --qr-position top-left --qr-module 6 at night")
    assert (r.qr, r.qr_position, r.qr_module) == ("https://example.org/a?b=1", "top-left", 6)
    assert r.prompt == "a castle at night"


@pytest.mark.parametrize(
    ("text", "qr"),
    [
        ('a fox --qr "hello world"', "hello world"),
        ("a fox —qr hello", "hello"),  # a phone's em dash
        ("a fox --QR=hello", "hello"),
        ("a fox --qr “Grüße aus Köln”", "Grüße aus Köln"),
    ],
)
def test_qr_variants_people_type(text: str, qr: str) -> None:
    assert ok(text).qr == qr


@pytest.mark.parametrize(
    ("value", "position"),
    [("center", "center"), ("Centre", "center"), ("bottom_right", "bottom-right"),
     ("TOP-RIGHT", "top-right"), ('"bottom left"', "bottom-left")],
)  # fmt: skip
def test_qr_position_spellings(value: str, position: str) -> None:
    assert ok(f"a fox --qr x --qr-position {value}").qr_position == position


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a fox --qr-position middle-ish --qr x", ["--qr-position must be", "top-left"]),
        ("a fox --qr x --qr-module 1", ["--qr-module must be", "2 to 64"]),
        ("a fox --qr x --qr-module 65", ["--qr-module must be"]),
        ("a fox --qr x --qr-module big", ["--qr-module must be", "'big'"]),
        ("a fox --qr-position center", ["--qr-position only works together with --qr"]),
        ("a fox --qr-module 4", ["--qr-module only works together with --qr"]),
        ("a fox --qr", ["--qr needs a value"]),
        ("a fox --qr a --qr b", ["--qr was given twice"]),
        (f"a fox --qr {'x' * 501}", ["--qr must be", "500 characters"]),
        ("a fox --qrcode x", ["unknown option --qrcode", "--qr-position"]),
    ],
)
def test_qr_errors_say_what_is_allowed(text: str, words: list[str]) -> None:
    e = err(text)
    assert e.code == "bad_option"
    for word in words:
        assert word in e.message


@pytest.mark.parametrize(("value", "strength"), [("0.6", 0.6), ("1", 1.0), ("0,35", 0.35)])
def test_strength_values(value: str, strength: float) -> None:
    assert ok(f"a fox --strength {value}").strength == strength


@pytest.mark.parametrize("value", ["0", "-0.2", "1.01", "nan", "inf", "half"])
def test_strength_out_of_range(value: str) -> None:
    e = err(f"a fox --strength {value}")
    assert e.code == "bad_option" and "--strength must be" in e.message
    assert "above 0 and at most 1" in e.message


def test_options_not_given_stay_none() -> None:
    r = ok("a fox --n 2")
    assert (r.qr, r.qr_position, r.qr_module, r.strength) == (None, None, None, None)


def test_usage_and_help_mention_the_new_options() -> None:
    text = usage_text(RULES)
    assert "--qr" in text and "--strength" in text and len(text) <= 450
    for option in ("--qr TEXT", "--qr-position", "--qr-module", "--strength"):
        assert option in HELP_MARKDOWN


def test_the_tiny_test_model_is_not_offered_in_help() -> None:
    models = {
        "tiny": ModelConfig(source="builtin:tiny", kind="tiny"),
        "flux": ModelConfig(source="black-forest-labs/FLUX.1-schnell"),
    }
    rules = PromptRules.from_config(PromptConfig(), models)
    assert "Models: flux." in usage_text(rules)
    assert "tiny" not in usage_text(rules)
    assert parse("a fox --model tiny", rules).model == "tiny"  # still accepted when configured


def _config(tmp_path) -> FedibotConfig:
    return FedibotConfig.model_validate({"data_dir": str(tmp_path)})


def test_resolved_options_carry_the_qr(tmp_path) -> None:
    cfg = _config(tmp_path)
    parsed = parse("a fox --qr https://example.org --size 128x128 --qr-position top-right", RULES)
    opts = resolve_options(cfg, parsed)
    assert (opts.qr, opts.qr_position, opts.qr_module) == (
        "https://example.org",
        "top-right",
        None,
    )


def test_resolving_a_qr_that_cannot_fit_is_a_bad_option(tmp_path) -> None:
    parsed = parse(f"a fox --qr {'z' * 120}", RULES)  # 64x64 default size of the tiny model
    with pytest.raises(PromptError) as info:
        resolve_options(_config(tmp_path), parsed)
    assert info.value.code == "bad_option" and "larger size" in info.value.message


def test_strength_without_a_picture_is_refused_when_resolved(tmp_path) -> None:
    with pytest.raises(PromptError) as info:
        resolve_options(_config(tmp_path), parse("a fox --strength 0.5", RULES))
    assert "starting from a picture" in info.value.message
