"""The prompt grammar: options, the variants people type, errors, commands, styles, usage."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedibot.config.prompt import DEFAULT_STYLES, PromptConfig, StyleTemplate
from fedibot.intake.grammar import (
    HELP_MARKDOWN,
    MAX_SEED,
    ParsedRequest,
    PromptError,
    PromptRules,
    apply_style,
    parse,
    usage_text,
)

RULES = PromptRules(
    max_n=4,
    max_prompt_chars=1000,
    models=("sdxl-turbo", "Flux Schnell", "tiny"),
    styles=tuple(DEFAULT_STYLES),
)


def ok(text: str, rules: PromptRules = RULES) -> ParsedRequest:
    return parse(text, rules)


def err(text: str, rules: PromptRules = RULES) -> PromptError:
    with pytest.raises(PromptError) as info:
        parse(text, rules)
    return info.value


# --- options ------------------------------------------------------------------------------


def test_free_text_is_the_prompt_and_options_default_to_none() -> None:
    request = ok("a red fox in the snow, watercolor")
    assert request == ParsedRequest(command="generate", prompt="a red fox in the snow, watercolor")


def test_every_option_is_parsed() -> None:
    request = ok(
        "a fox --n 3 --seed 42 --steps 30 --cfg 6.5 --size 768x512 --model tiny "
        "--style photo --private --neg blurry, lowres"
    )
    assert request.prompt == "a fox"
    assert (request.n, request.seed, request.steps, request.cfg) == (3, 42, 30, 6.5)
    assert request.size == (768, 512)
    assert request.aspect is None
    assert (request.model, request.style, request.private) == ("tiny", "photo", True)
    assert request.negative_prompt == "blurry, lowres"


def test_aspect_ratio_is_kept_as_a_ratio() -> None:
    assert ok("a fox --ar 16:9").aspect == (16, 9)
    assert ok("a fox --ar 2.35:1").aspect == (47, 20)
    assert ok("a fox --ar 2/3").aspect == (2, 3)


def test_size_accepts_spaces_and_the_multiplication_sign() -> None:
    assert ok("a fox --size 512 x 768").size == (512, 768)
    assert ok("a fox --size 640×480").size == (640, 480)


def test_seed_accepts_the_full_32_bit_range() -> None:
    assert ok("a fox --seed 0").seed == 0
    assert ok(f"a fox --seed {MAX_SEED}").seed == MAX_SEED


def test_negative_runs_until_the_next_option_and_the_rest_is_prompt() -> None:
    request = ok("a cat --neg dogs, rain --n 2 in a hat")
    assert request.negative_prompt == "dogs, rain"
    assert request.prompt == "a cat in a hat"
    assert request.n == 2


def test_triple_hash_is_the_negative_prompt() -> None:
    request = ok("a lighthouse at night ### blurry, text")
    assert (request.prompt, request.negative_prompt) == ("a lighthouse at night", "blurry, text")
    assert ok("a cat###dog").negative_prompt == "dog"


def test_quoted_negative_ends_at_the_closing_quote() -> None:
    request = ok('a cat --neg "ugly, blurry" on a mat')
    assert (request.prompt, request.negative_prompt) == ("a cat on a mat", "ugly, blurry")


def test_other_mentions_are_removed_from_the_prompt() -> None:
    request = ok("@alice @bob@mastodon.social a cat with @carol@example.org")
    assert request.prompt == "a cat with"
    assert ok("mail x@example.org a cat").prompt == "mail x@example.org a cat"


def test_double_dash_without_a_name_is_just_text() -> None:
    assert ok("a cat -- sitting").prompt == "a cat -- sitting"


# --- variants -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "a fox —n 2",  # em dash (phones)
        "a fox –n 2",  # en dash
        "a fox −n 2",  # minus sign
        "a fox --n=2",
        "a fox --n = 2",
        "a fox --N 2",
        "a fox --n2",
        '--n "2" a fox',
        "a fox --n “2”",
        "a fox --n '2'",
        "a fox --n 2,",
        "a fox\u200b --n 2",
    ],
)
def test_variants_of_n_are_understood(text: str) -> None:
    request = ok(text)
    assert (request.prompt, request.n) == ("a fox", 2)


def test_a_dash_before_an_ordinary_word_stays_text() -> None:
    assert ok("a cat —dreaming").prompt == "a cat —dreaming"


def test_names_are_matched_case_insensitively_and_returned_canonical() -> None:
    request = ok('a fox --MODEL "flux schnell" --Style PHOTO')
    assert (request.model, request.style) == ("Flux Schnell", "photo")
    assert ok("a fox --model “Flux Schnell”").model == "Flux Schnell"


def test_cfg_accepts_a_decimal_comma() -> None:
    assert ok("a fox --cfg 7,5").cfg == 7.5


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a fox --n lots", "--n must be a whole number from 1 to 4 (got 'lots')"),
        ("a fox --n 5", "from 1 to 4 (got '5')"),
        ("a fox --n 0", "from 1 to 4"),
        ("a fox --seed -1", f"from 0 to {MAX_SEED} (got '-1')"),
        (f"a fox --seed {MAX_SEED + 1}", f"from 0 to {MAX_SEED}"),
        ("a fox --steps 0", "--steps must be a whole number from 1 to"),
        ("a fox --steps many", "--steps must be a whole number"),
        ("a fox --cfg high", "--cfg must be a number from 0 to 100"),
        ("a fox --cfg nan", "--cfg must be a number"),
        ("a fox --size big", "--size must be width x height in pixels, e.g. 256x192"),
        ("a fox --size 512", "--size must be width x height"),
        ("a fox --ar wide", "--ar must be an aspect ratio W:H"),
        ("a fox --ar 0:1", "--ar must be an aspect ratio W:H"),
        ("a fox --ar 100:1", "at most 10:1"),
        ("a fox --n", "--n needs a value: a whole number from 1 to 4"),
        ("a fox --seed --n 2", "--seed needs a value"),
        ("a fox --n 2 --n 3", "--n was given twice"),
        ("a fox --size 512x512 --ar 1:1", "either --size or --ar"),
        ("a fox --private=maybe", "--private takes no value"),
    ],
)
def test_bad_options_say_what_was_wrong_and_what_is_allowed(text: str, expected: str) -> None:
    error = err(text)
    assert error.code == "bad_option"
    assert expected in error.message


def test_max_n_comes_from_the_rules() -> None:
    rules = PromptRules(max_n=2)
    assert "from 1 to 2 (got '3')" in err("a fox --n 3", rules).message
    assert ok("a fox --n 2", rules).n == 2


def test_unknown_option_lists_the_options() -> None:
    error = err("a fox --colour red")
    assert error.code == "bad_option"
    assert "--colour" in error.message
    assert "--neg" in error.message and "--style" in error.message


def test_unknown_model_lists_the_models() -> None:
    error = err("a fox --model dalle")
    assert error.code == "unknown_model"
    assert "'dalle'" in error.message
    assert "sdxl-turbo, Flux Schnell, tiny" in error.message


def test_unknown_style_lists_the_styles() -> None:
    error = err("a fox --style cubism")
    assert error.code == "unknown_style"
    assert "photo" in error.message and "anime" in error.message


@pytest.mark.parametrize(
    "text", ["", "   ", "--n 2", "@alice", "... --seed 3", "### only negative"]
)
def test_no_prompt_is_an_empty_prompt_error(text: str) -> None:
    error = err(text)
    assert error.code == "empty_prompt"
    assert "e.g." in error.message


def test_too_long_prompt_and_negative_are_refused_with_the_limit() -> None:
    rules = PromptRules(max_prompt_chars=20)
    error = err("x" * 21, rules)
    assert error.code == "prompt_too_long"
    assert "21 characters" in error.message and "at most 20" in error.message
    assert err("a fox --neg " + "y" * 21, rules).code == "prompt_too_long"
    assert ok("x" * 20, rules).prompt == "x" * 20


def test_huge_input_is_refused_before_scanning() -> None:
    error = err("###" * 5000)
    assert error.code == "prompt_too_long"


# --- commands -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["help", "Help!", " HELP ", "@alice help", "--help", "a fox --help"]
)
def test_help(text: str) -> None:
    assert ok(text) == ParsedRequest(command="help")


def test_help_inside_a_sentence_is_a_prompt() -> None:
    request = ok("help me draw a cat")
    assert (request.command, request.prompt) == ("generate", "help me draw a cat")


@pytest.mark.parametrize("text", ["delete", "Delete.", "delete!"])
def test_delete(text: str) -> None:
    assert ok(text) == ParsedRequest(command="delete")


def test_again_alone_and_with_overrides() -> None:
    assert ok("again") == ParsedRequest(command="again")
    assert ok("Again!") == ParsedRequest(command="again")
    request = ok("again --n 4 —style anime --neg rain")
    assert request.command == "again"
    assert (request.n, request.style, request.negative_prompt) == (4, "anime", "rain")


def test_again_followed_by_words_is_an_ordinary_prompt() -> None:
    request = ok("again a cat in the rain")
    assert (request.command, request.prompt) == ("generate", "again a cat in the rain")


def test_again_overrides_are_validated() -> None:
    assert err("again --n 9").code == "bad_option"


# --- styles, usage ------------------------------------------------------------------------


def test_apply_style_fills_prompt_and_negative() -> None:
    styles = {"photo": StyleTemplate(prompt="photo of {p}, 35mm", negative="{np}, cartoon")}
    request = ok("a fox --style photo --neg blurry", PromptRules(styles=("photo",)))
    assert apply_style(request, styles) == ("photo of a fox, 35mm", "blurry, cartoon")


def test_apply_style_with_empty_negative_leaves_no_stray_comma() -> None:
    styles = {"photo": StyleTemplate(prompt="photo of {p}", negative="{np}, cartoon, lowres")}
    request = ok("a fox --style photo", PromptRules(styles=("photo",)))
    assert apply_style(request, styles) == ("photo of a fox", "cartoon, lowres")


def test_apply_style_without_style_returns_the_request_text() -> None:
    request = ok("a fox ### rain")
    assert apply_style(request, DEFAULT_STYLES) == ("a fox", "rain")


def test_apply_style_refuses_a_style_removed_from_config() -> None:
    request = ok("a fox --style photo")
    with pytest.raises(PromptError) as info:
        apply_style(request, {})
    assert info.value.code == "unknown_style"


def test_rules_from_config() -> None:
    config = PromptConfig(max_n=2, max_prompt_chars=50)
    rules = PromptRules.from_config(config, ["tiny"])
    assert (rules.max_n, rules.max_prompt_chars, rules.models) == (2, 50, ("tiny",))
    assert set(rules.styles) == set(DEFAULT_STYLES)


def test_usage_text_fits_in_a_toot_and_lists_the_grammar() -> None:
    text = usage_text(RULES)
    assert len(text) <= 450
    for option in ("--n 1-4", "--seed", "--steps", "--cfg", "--size", "--ar", "--neg", "###",
                   "--model", "--style", "again", "delete", "tiny", "photo"):  # fmt: skip
        assert option in text


def test_usage_text_stays_short_with_many_long_names() -> None:
    rules = PromptRules(
        models=tuple(f"a-really-long-model-name-{i}" for i in range(40)),
        styles=tuple(f"style-with-a-long-name-{i}" for i in range(40)),
    )
    text = usage_text(rules)
    assert len(text) <= 450
    assert "--style" in text


def test_help_markdown_documents_every_option() -> None:
    for option in ("--neg", "###", "--n", "--seed", "--steps", "--cfg", "--size", "--ar",
                   "--model", "--style", "--private", "`help`", "`again`", "`delete`"):  # fmt: skip
        assert option in HELP_MARKDOWN


# --- property -----------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    ["--n", "—n", "--seed", "--steps", "--cfg", "--size", "--ar", "--model", "--style",
     "--neg", "###", "--private", "--help", "again", "help", "delete", "=", '"', "“", "'",
     "2", "-1", "512x512", "16:9", "1e999", "nan", "tiny", "photo", "@a@b.c", "\u200b", " "]
)  # fmt: skip
_TEXTS = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(_FRAGMENTS, st.text(max_size=8)), max_size=30).map(" ".join),
    st.lists(st.one_of(_FRAGMENTS, st.text(max_size=3)), max_size=30).map("".join),
)


@settings(max_examples=400, deadline=None)
@given(_TEXTS)
def test_parse_never_raises_anything_but_prompt_error(text: str) -> None:
    try:
        request = parse(text, RULES)
    except PromptError as error:
        assert error.code in {
            "bad_option", "empty_prompt", "prompt_too_long", "unknown_model", "unknown_style"
        }  # fmt: skip
        assert error.message
        return
    assert request.command in {"generate", "help", "again", "delete"}
    if request.command == "generate":
        assert request.prompt.strip()
    assert len(request.prompt) <= RULES.max_prompt_chars
    assert request.n is None or 1 <= request.n <= RULES.max_n
    assert request.seed is None or 0 <= request.seed <= MAX_SEED
    assert request.model is None or request.model in RULES.models
    assert request.style is None or request.style in RULES.styles
