"""Normalisation: NFKC, confusables, invisibles, bidi, leetspeak, spacing, then casefold."""

from __future__ import annotations

import pytest

from fedibot.moderation.guard.normalize import confusables_table, fold, normalize


def words(text: str) -> set[str]:
    return {w for reading in normalize(text).readings for w in reading.words}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("𝐂𝐇𝐈𝐋𝐃", "child"),  # mathematical bold capitals
        ("𝕔𝕙𝕚𝕝𝕕", "child"),  # double-struck
        ("ℂhild", "child"),  # letterlike symbol, capital: casefold must come after NFKC
        ("ＣＨＩＬＤ", "child"),  # fullwidth
        ("ﬁne", "fine"),  # ligature
    ],
)
def test_nfkc_then_casefold(text: str, expected: str) -> None:
    assert fold(text) == expected


def test_casefold_is_not_applied_before_nfkc() -> None:
    # casefold first would leave "𝐂" (no lowercase mapping) untouched and lose the word
    assert "𝐂".casefold() == "𝐂"
    assert fold("𝐂") == "c"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("сhild", "child"),  # Cyrillic es
        ("nudе", "nude"),  # Cyrillic ie
        ("nаскt", "nackt"),  # Cyrillic a, es, ka (ka via its capital)
        ("ѕеху", "sexy"),  # all look-alikes
        ("nοde", "node"),  # Greek omicron
    ],
)
def test_confusables_are_folded(text: str, expected: str) -> None:
    assert fold(text) == expected


def test_confusables_come_from_the_library_data() -> None:
    table = confusables_table()
    assert len(table) > 300
    assert table[ord("с")] == "c"
    assert all(len(v) == 1 and v.isascii() for v in table.values())


def test_words_of_other_scripts_stay_as_written() -> None:
    assert fold("Девочка") == "девочка"
    assert fold("子供") == "子供"


@pytest.mark.parametrize(
    "char",
    ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\U000e0041", "\u180e"],
)
def test_zero_width_and_invisible_characters_are_removed(char: str) -> None:
    assert fold(char.join("child")) == "child"


@pytest.mark.parametrize("char", ["\u202e", "\u202d", "\u2066", "\u2067", "\u2069", "\u200e"])
def test_bidi_controls_are_removed(char: str) -> None:
    assert fold(f"{char}child\u202c") == "child"


def test_accents_and_combining_marks_are_removed() -> None:
    assert fold("çhíld nüdé") == "child nude"
    assert fold("n\u0336u\u0336d\u0336e\u0336") == "nude"


@pytest.mark.parametrize(
    ("text", "word"),
    [("ch1ld", "child"), ("n00d", "nood"), ("$3xy", "sexy"), ("k|d", "kid"), ("1oli", "loli")],
)
def test_leetspeak_is_read(text: str, word: str) -> None:
    assert word in words(text)


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("c h i l d", "child"),
        ("n.u.d.e", "nude"),
        ("n-u-d-e", "nude"),
        ("n_u_d_e", "nude"),
        ("nu.de", "nude"),
    ],
)
def test_spacing_and_punctuation_are_collapsed(text: str, word: str) -> None:
    assert word in words(text)


def test_digits_glued_to_letters_are_split_in_one_reading() -> None:
    assert {"12", "yo"} <= words("12yo")


def test_compact_text_for_east_asian_scripts() -> None:
    assert normalize("子 供 の ヌ ー ド").compact == "子供のヌード"
    assert normalize("plain ascii").compact == ""


def test_display_is_the_first_reading() -> None:
    assert normalize("𝐂𝐇𝐈𝐋𝐃, N.U.D.E").display == "child nude"
