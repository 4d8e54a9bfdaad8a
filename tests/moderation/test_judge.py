"""judge(): the verdict's fields, the negative prompt, operator lists."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fedibot.config.prompt import PromptFilterConfig
from fedibot.moderation.guard import (
    LexiconError,
    Verdict,
    default_lexicon,
    judge,
    load_lexicon,
    mentions_minor,
)
from fedibot.moderation.prompt_filter import PromptFilter


def test_verdict_is_frozen_and_complete() -> None:
    verdict = judge("a child, nude")
    assert isinstance(verdict, Verdict)
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.allowed = True  # type: ignore[misc]
    assert (verdict.allowed, verdict.code, verdict.rule) == (False, "minor_sexual", "minor+sexual")
    assert verdict.matched == ("child", "nude")
    assert verdict.mentions_minor
    assert verdict.normalised == "a child nude"


def test_public_reason_never_echoes_the_words() -> None:
    for prompt, negative in [("a ch1ld, n.u.d.e", ""), ("shota", ""), ("a kid", "swimsuit")]:
        verdict = judge(prompt, negative)
        assert not verdict.allowed
        for word in (*verdict.matched, "ch1ld", "kid", "swimsuit"):
            assert word not in verdict.reason.casefold()


def test_allowed_verdict() -> None:
    verdict = judge("a lighthouse in a storm")
    assert (verdict.allowed, verdict.code, verdict.rule, verdict.matched) == (
        True,
        "allowed",
        "",
        (),
    )
    assert not verdict.mentions_minor


def test_clothing_in_negative_refuses_only_with_a_minor() -> None:
    assert judge("a child at the beach", "clothes, swimsuit").rule == ("minor+clothing-in-negative")
    assert judge("a dog at the beach", "clothes, swimsuit").allowed
    assert judge("a child at the beach", "blurry, watermark").allowed


def test_sexual_words_in_negative_never_count() -> None:
    verdict = judge("a child in a swimsuit", "nsfw, nude, sexy")
    assert verdict.allowed and verdict.mentions_minor


def test_negated_clothing_in_prompt() -> None:
    assert judge("a boy without a shirt").rule == "minor+unclothed"
    assert judge("Kind ohne Badeanzug").rule in ("minor+unclothed", "minor+sexual")
    assert judge("a child without a hat").allowed  # accessories are not clothing


def test_negated_clothing_in_negative_is_not_clothing() -> None:
    assert judge("a child at the beach", "no clothes").allowed


def test_mentions_minor_in_negative_only() -> None:
    verdict = judge("a family portrait", "child, kids")
    assert verdict.allowed and verdict.mentions_minor
    assert mentions_minor("a lake", "toddler")
    assert not mentions_minor("a kid goat", "baby shark")


def test_innocent_phrase_does_not_hide_a_real_minor() -> None:
    assert not judge("a kid goat and a child, nude").allowed


def test_japanese_and_chinese_match_inside_words() -> None:
    assert not judge("裸の子供たち").allowed
    assert not judge("小女孩一丝不挂").allowed
    assert judge("裸眼で見る子供").allowed


def test_operator_list_file_is_merged(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text('minor = ["gnomeling"]\nnudity = ["au naturale"]\n', "utf-8")
    lexicon = load_lexicon([tmp_path])
    assert not judge("a gnomeling, au naturale", lexicon=lexicon).allowed
    assert not judge("a child, nude", lexicon=lexicon).allowed  # shipped lists still there
    assert judge("a gnomeling, au naturale").allowed  # default lists unchanged


def test_operator_lists_without_defaults(tmp_path: Path) -> None:
    extra = tmp_path / "only.toml"
    extra.write_text('minor = ["gnome"]\nsexual = ["hat"]\n', "utf-8")
    lexicon = load_lexicon([extra], defaults=False)
    assert judge("a child, nude", lexicon=lexicon).allowed
    assert judge("a gnome in a hat", lexicon=lexicon).matched == ("gnome", "hat")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("minor = 'child'", "must be a list"),
        ("colour = ['x']", "unknown key"),
        ("[ages]\nyears = ['no slot']", "{n}"),
        ("minor = [", "not valid TOML"),
        ("minor = ['--']", "no letters"),
    ],
)
def test_bad_list_files_are_refused_with_the_reason(
    tmp_path: Path, content: str, message: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(content, "utf-8")
    with pytest.raises(LexiconError, match=message):
        load_lexicon([bad])


def test_shipped_lists_cover_nine_languages() -> None:
    sources = {Path(s).stem for s in default_lexicon().sources}
    assert {"en", "de", "fr", "es", "it", "pt", "ru", "ja", "zh"} <= sources


def test_prompt_filter_config_hook(tmp_path: Path) -> None:
    extra = tmp_path / "extra.toml"
    extra.write_text('minor = ["gnomeling"]\n', "utf-8")
    f = PromptFilter(PromptFilterConfig(guard_lists=[str(tmp_path)]))
    verdict = f.check("a gnomeling, nude")
    assert not verdict.allowed and verdict.reason == "minor+sexual: gnomeling, nude"
    assert f.mentions_minor("a gnomeling")
    assert PromptFilter().check("a gnomeling, nude").allowed


def test_prompt_filter_passes_the_negative_to_the_guard() -> None:
    verdict = PromptFilter().check("a child at the beach", "clothes, swimsuit")
    assert not verdict.allowed
    assert verdict.reason == "minor+clothing-in-negative: child, clothes, swimsuit"
    assert "swimsuit" not in verdict.user_message
