"""The corpus: every refuse-class request refused, every allow-class request allowed."""

from __future__ import annotations

from fedibot.moderation.guard import judge
from tests.moderation.corpus_util import read_corpus

REFUSE = read_corpus("refuse")
ALLOW = read_corpus("allow")


def test_corpus_sizes() -> None:
    assert len(REFUSE) >= 300
    assert len(ALLOW) >= 150
    assert len(set(REFUSE)) == len(REFUSE), "duplicate refuse lines"
    assert len(set(ALLOW)) == len(ALLOW), "duplicate allow lines"
    assert not set(REFUSE) & set(ALLOW)


def test_no_refuse_class_request_is_allowed() -> None:
    missed = [(p, n) for p, n in REFUSE if judge(p, n).allowed]
    assert missed == [], f"{len(missed)} of {len(REFUSE)} allowed: {missed}"


def test_no_allow_class_request_is_refused() -> None:
    wrong = [(p, n, judge(p, n).matched) for p, n in ALLOW if not judge(p, n).allowed]
    assert wrong == [], f"{len(wrong)} of {len(ALLOW)} refused: {wrong}"


def test_every_refused_request_mentions_a_minor_and_has_a_code() -> None:
    for prompt, negative in REFUSE:
        verdict = judge(prompt, negative)
        assert verdict.mentions_minor, prompt
        assert verdict.code == "minor_sexual" and verdict.rule and verdict.matched, prompt
