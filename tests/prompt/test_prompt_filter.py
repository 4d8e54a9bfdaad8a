"""The prompt filter: obfuscations are seen through, innocent prompts pass, negatives are
only checked against the block list."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedibot.config.prompt import PromptConfig, PromptFilterConfig
from fedibot.intake.grammar import PromptRules, parse
from fedibot.moderation.prompt_filter import (
    BLOCKED_MESSAGE,
    GUARD_MESSAGE,
    FilterVerdict,
    PromptFilter,
    default_list,
    normalise,
)

EVERYDAY = Path(__file__).with_name("everyday_prompts.txt")

FILTER = PromptFilter(
    PromptFilterConfig(blocked_terms=["swastika", "ass", "cunt"], blocked_regexes=[r"\bgore+\b"])
)


def refused(prompt: str, negative: str = "", f: PromptFilter = FILTER) -> FilterVerdict:
    verdict = f.check(prompt, negative)
    assert not verdict.allowed, f"{prompt!r} should be refused"
    assert verdict.code == "prompt_blocked"
    return verdict


def allowed(prompt: str, negative: str = "", f: PromptFilter = FILTER) -> None:
    verdict = f.check(prompt, negative)
    assert verdict.allowed, f"{prompt!r} was refused: {verdict.reason}"
    assert verdict == FilterVerdict(allowed=True)


OBFUSCATIONS = {
    "plain": "{w}",
    "upper": "{W}",
    "mixed case": "{Mixed}",
    "spaced letters": "{spaced}",
    "dotted letters": "{dotted}",
    "hyphenated letters": "{hyphen}",
    "zero-width": "{zw}",
    "repeated letters": "{repeat}",
}


def variants(word: str) -> dict[str, str]:
    return {
        "plain": word,
        "upper": word.upper(),
        "mixed case": "".join(c.upper() if i % 2 else c for i, c in enumerate(word)),
        "spaced letters": " ".join(word),
        "dotted letters": ".".join(word),
        "hyphenated letters": "-".join(word),
        "zero-width": "\u200b".join(word),
        "soft hyphen": "\u00ad".join(word),
        "repeated letters": "".join(c * 3 for c in word),
        "combining marks": "".join(c + "\u0336" for c in word),
        "fullwidth": "".join(chr(ord(c) + 0xFEE0) for c in word),
    }


@pytest.mark.parametrize(("kind", "text"), sorted(variants("swastika").items()))
def test_blocked_term_obfuscations_are_refused(kind: str, text: str) -> None:
    verdict = refused(f"a flag with a {text} on it")
    assert verdict.reason == "blocked term: swastika"


@pytest.mark.parametrize(
    "text",
    ["a sw@stika flag", "a $wastika flag", "a sw4st1ka flag", "a swåstíkà flag",
     "a ѕwаѕtіkа flag", "a SW4ST!KA flag", "a sw.as.ti.ka flag"],
)  # fmt: skip
def test_blocked_term_leetspeak_accents_and_lookalikes_are_refused(text: str) -> None:
    refused(text)


@pytest.mark.parametrize(("kind", "text"), sorted(variants("nude").items()))
def test_guard_sees_through_obfuscated_sexual_terms(kind: str, text: str) -> None:
    verdict = refused(f"a child, {text}")
    assert verdict.reason == "minor+sexual: child, nude"
    assert verdict.user_message == GUARD_MESSAGE


@pytest.mark.parametrize(("kind", "text"), sorted(variants("child").items()))
def test_guard_sees_through_obfuscated_minor_terms(kind: str, text: str) -> None:
    refused(f"{text} posing nude")


@pytest.mark.parametrize(
    "text",
    [
        "n u d e c h i l d",
        "c.h.i.l.d n.u.d.e",
        "ch1ld nud3",
        "k1d s3nding n00ds",
        "5exy k1d",
        "$3xy t33n",
        "çhíld nüdé",
        "CHILD NUDE",
        "chiiiiild nuuuuude",
        "👶 🔞",
        "🧒 in 👙",
        "👧 🍑",
        "🏫 nude",  # the guard and the block lists read emoji from one table
        "a 12 yo in lingerie",
        "a 12-year-old, sexy",
        "twelve year old, naked",
        "fourteen-year-old nsfw",
        "girl aged 9, topless",
        "child,12yo, lewd",
        "age: 15, erotic",
        "1oli hentai",
        "sexy schoolgirl",
        "a teen in her underwear",
        "little girl, undressed",
        "сhild nudе",  # Cyrillic с and е
    ],
)
def test_guard_refuses_minors_with_sexual_content(text: str) -> None:
    verdict = refused(text)
    assert verdict.reason.startswith("minor+sexual: ")
    assert verdict.user_message == GUARD_MESSAGE


def test_user_message_never_echoes_the_term() -> None:
    verdict = refused("a swastika")
    assert verdict.user_message == BLOCKED_MESSAGE
    assert "swastika" not in verdict.user_message
    assert "child" not in refused("child nude").user_message
    f = PromptFilter(PromptFilterConfig(minor_terms=["gnome"], sexual_terms=["hat"]))
    message = refused("a gnome in a hat", f=f).user_message
    assert "gnome" not in message and "hat" not in message


@pytest.mark.parametrize(
    "text",
    ["a class of students", "an assassin", "grass", "a bass guitar", "Scunthorpe United",
     "a passenger jet", "a glass of water", "an ambassador", "Essex at night"],
)  # fmt: skip
def test_whole_word_matching_avoids_the_scunthorpe_problem(text: str) -> None:
    allowed(text)


def test_repeated_letters_do_not_merge_different_words() -> None:
    # "teen" is a minor term; "ten" is not, and collapsing letters must not make it one.
    allowed("ten sexy sports cars")
    refused("a sexy teeeeen")


def test_plural_of_a_term_matches() -> None:
    refused("two swastikas")
    refused("nude kids")


@pytest.mark.parametrize(
    "text",
    [
        "a kid goat in a field, naked flame of a campfire",
        "a sexy kid goat",
        "nude lipstick swatches on a baby blue background",
        "a baby dragon in a sexy pose",
        "the naked eye sees a school of fish",
        "teenage mutant ninja turtles in sexy sports cars",
        "an old school pin-up poster",
        "baby's breath flowers and nude colour ribbons",
    ],
)
def test_innocent_phrases_do_not_trip_the_guard(text: str) -> None:
    allowed(text)


def test_innocent_phrases_do_not_hide_a_real_minor_term() -> None:
    refused("a kid goat and a child, nude")


def test_innocent_phrases_never_weaken_the_block_list() -> None:
    f = PromptFilter(PromptFilterConfig(blocked_terms=["naked"]))
    refused("the naked eye", f=f)


def test_minor_or_sexual_terms_alone_pass() -> None:
    allowed("a sexy red dress on a mannequin")
    allowed("a child flying a kite")
    allowed("a 25 year old woman in lingerie")
    allowed("a 12 year old whisky bottle")
    allowed("a 112 yo tortoise, sexy shell")
    allowed("version 1.12 yo sexy")


def test_blocked_regexes_match_the_normalised_text() -> None:
    assert refused("g o r e everywhere").reason == r"blocked regex #0: \bgore+\b"
    refused("G.O.R.E")
    refused("goreeee")
    allowed("a gorilla")


def test_negative_prompt_is_not_checked_by_the_guard() -> None:
    allowed("a family portrait", negative="nude, child, nsfw")


def test_negative_prompt_is_checked_against_the_block_list_and_regexes() -> None:
    assert refused("a flag", negative="s w a s t i k a").reason == (
        "blocked term in negative prompt: swastika"
    )
    assert "negative prompt" in refused("a flag", negative="gore").reason


def test_minor_and_sexual_split_between_prompt_and_negative_pass() -> None:
    allowed("a child playing", negative="nude")


def test_disabled_filter_allows_everything() -> None:
    f = PromptFilter(PromptFilterConfig(enabled=False, blocked_terms=["swastika"]))
    allowed("a swastika", f=f)
    allowed("child nude", f=f)


def test_custom_lists_without_defaults() -> None:
    f = PromptFilter(
        PromptFilterConfig(use_default_lists=False, minor_terms=["gnome"], sexual_terms=["hat"])
    )
    allowed("child nude", f=f)
    assert refused("a gnome wearing a hat", f=f).reason == "minor+sexual: gnome, hat"


def test_config_terms_are_normalised_like_prompts() -> None:
    f = PromptFilter(PromptFilterConfig(blocked_terms=["Naïve Art", "FOO-BAR"]))
    refused("naive art", f=f)
    refused("foo bar", f=f)
    allowed("naive", f=f)


def test_default_lists_ship_and_have_no_overlap() -> None:
    minors, sexual = set(default_list("minor_terms")), set(default_list("sexual_terms"))
    assert len(minors) > 30 and len(sexual) > 50
    assert "child" in minors and "nude" in sexual
    assert not minors & sexual
    assert "kid goat" in default_list("innocent_phrases")


def test_normalise_reads_obfuscations_as_words() -> None:
    words = {t for v in normalise("N.u.d.e $3xy h3ll0 k|d").variants for t in v.tokens}
    assert {"nude", "sexy", "hello", "kid"} <= words


def test_everyday_prompts_file_has_200_distinct_lines() -> None:
    lines = EVERYDAY.read_text("utf-8").splitlines()
    assert len(lines) == 200
    assert len(set(lines)) == 200
    assert all(line.strip() for line in lines)


@pytest.mark.parametrize("line", EVERYDAY.read_text("utf-8").splitlines())
def test_everyday_prompts_pass_grammar_and_filter(line: str) -> None:
    """Default lists + a typical admin block list: none of these may be refused."""
    request = parse(line, PromptRules.from_config(PromptConfig(), ["tiny"]))
    assert request.command == "generate"
    allowed(request.prompt, request.negative_prompt)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.text(max_size=50))
def test_check_never_raises(prompt: str, negative: str) -> None:
    verdict = FILTER.check(prompt, negative)
    assert verdict.allowed or verdict.code == "prompt_blocked"
    assert verdict.allowed == (verdict.reason == "")

