"""Age expressions: digits, number words in each language, grades, months."""

from __future__ import annotations

import pytest

from fedibot.moderation.guard import default_lexicon, mentions_minor
from fedibot.moderation.guard.ages import AgeFinder
from fedibot.moderation.guard.normalize import fold


def ages(text: str) -> list[tuple[str, int]]:
    return [(a.kind, a.value) for a in default_lexicon().ages.find(fold(text))]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a girl of 10 years", 10),
        ("aged 9", 9),
        ("age: 15", 15),
        ("9 y/o", 9),
        ("9 y.o.", 9),
        ("12yo", 12),
        ("a 13-year-old", 13),
        ("ten years old", 10),
        ("a fourteen-year-old", 14),
        ("her 10th birthday", 10),
        ("zehn Jahre alt", 10),
        ("ein 10-jähriges Mädchen", 10),
        ("une fille de dix ans", 10),
        ("una niña de diez años", 10),
        ("una bambina di dieci anni", 10),
        ("uma menina de dez anos", 10),
        ("девочка 10 лет", 10),
        ("мальчик, десять лет", 10),
        ("十歳", 10),
        ("十二岁", 12),
        ("10歳", 10),
    ],
)
def test_years(text: str, value: int) -> None:
    assert ("years", value) in ages(text)


@pytest.mark.parametrize(
    "text",
    ["5th grader", "a fifth grader", "grade 3", "3. Klasse", "5 класс", "小学5年生", "五年级"],
)
def test_grades_are_minors(text: str) -> None:
    assert any(kind == "grades" and value <= 12 for kind, value in ages(text))
    assert mentions_minor(text)


@pytest.mark.parametrize(
    "text",
    ["middle school", "elementary school", "Grundschule", "collégienne", "escuela primaria"],
)
def test_school_levels_name_a_minor(text: str) -> None:
    assert mentions_minor(text)


def test_months_are_always_minors() -> None:
    assert ("months", 8) in ages("an 8 month old")
    assert mentions_minor("a 3 months old")


@pytest.mark.parametrize(
    "text",
    [
        "a twenty-one year old",
        "vingt et un ans",
        "treinta y un años",
        "двадцать один год",
        "a 30 year old woman",
        "eighteen years old",
        "二十一岁",
    ],
)
def test_adult_ages_are_not_minors(text: str) -> None:
    assert not mentions_minor(text)


@pytest.mark.parametrize("text", ["a 112 yo tortoise", "version 1.12 yo", "in 2010 years"])
def test_numbers_that_are_not_ages(text: str) -> None:
    assert not any(value < 18 for kind, value in ages(text) if kind == "years")


def test_age_finder_from_plain_data() -> None:
    finder = AgeFinder({"dozen": 12}, {"years": ["{n} winters"], "grades": ["form {n}"]})
    assert [(a.kind, a.value, a.minor) for a in finder.find("a dozen winters")] == [
        ("years", 12, True)
    ]
    assert finder.minors("form 4") == ["form 4"]
    assert finder.minors("20 winters") == []
