"""Text normalisation for the prompt guard: every obfuscation undone before any comparison.

The order matters and is fixed:

1. invisible characters out: zero-width characters, bidi controls, soft hyphens, variation
   selectors, tag characters and every other format character (Unicode category Cf);
   a few emoji become words ("👶" -> "baby");
2. Unicode NFKC (fullwidth, mathematical bold/italic/double-struck letters, ligatures,
   superscripts -> plain letters and digits), then accents off (NFKD, combining marks of the
   Latin/Greek/Cyrillic blocks dropped: "çhíld" -> "child");
3. confusables folded: in a word that mixes look-alikes with ASCII letters ("сhild") or is
   made of look-alikes only, letters that look like an ASCII letter ("с" Cyrillic es, "ο"
   Greek omicron, "ɑ" Latin alpha) become that letter; a word of another script ("девочка")
   stays as written. The table comes from Unicode's
   confusables.txt as shipped by the `confusable-homoglyphs` package (offline data file);
   Japanese/Chinese/Korean characters are never folded;
4. case folding (str.casefold), so it always sees the NFKC form: "𝐂𝐇𝐈𝐋𝐃" -> "child";
5. words: punctuation inside a word removed ("n.u.d.e" -> "nude"), letters spaced out one by
   one joined ("c h i l d" -> "child"), leetspeak undone in words mixing letters and digits
   or symbols ("ch1ld", "$3xy", "n00d"); each of these gives a *reading* (a tuple of words)
   and the matcher looks at all of them. Repeated letters ("nuuude") are handled by the
   matcher (see lexicon.py).

Terms in the word lists go through exactly the same steps, so lists are written plainly.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

# Invisible characters that are not all category Cf (Hangul fillers, variation selectors,
# the combining grapheme joiner, musical formatting) plus the common Cf ones for speed.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0x1D173, 0x1D17A),
    (0xE0000, 0xE007F), (0xE0100, 0xE01EF),
)  # fmt: skip

# Emoji read as words, by the guard and by the operator's block lists (prompt_filter.py).
EMOJI_WORDS = {
    "🍑": "buttocks",
    "🍆": "penis",
    "💦": "cum",
    "👙": "bikini",
    "🩲": "underwear",
    "👄": "lips",
    "🫦": "seductive",
    "🔞": "nsfw",
    "👶": "baby",
    "🍼": "baby",
    "🧒": "child",
    "👧": "little girl",
    "👦": "little boy",
    "🏫": "school",
    "🚸": "children",
}

#: `str.translate` table: invisible characters removed, emoji replaced by their word
PRE_TABLE: dict[int, str | None] = {
    code: None for start, end in _INVISIBLE_RANGES for code in range(start, end + 1)
}
PRE_TABLE.update({ord(emoji): f" {word} " for emoji, word in EMOJI_WORDS.items()})

# Combining marks of the Latin/Greek/Cyrillic diacritic blocks (what NFKD splits off accents).
_COMBINING = dict.fromkeys(
    [
        *range(0x0300, 0x0370), *range(0x1AB0, 0x1B00), *range(0x1DC0, 0x1E00),
        *range(0x20D0, 0x2100), *range(0xFE20, 0xFE30),
    ]
)  # fmt: skip

_EAST_ASIAN = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "IDEOGRAPHIC", "HALFWIDTH")


def is_east_asian(char: str) -> bool:
    """Han, kana, hangul: scripts written without spaces between words."""
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF
        or 0xAC00 <= code <= 0xD7AF
        or 0xF900 <= code <= 0xFAFF
        or 0xFF66 <= code <= 0xFF9F
        or 0x20000 <= code <= 0x3FFFF
    )


@cache
def confusables_table() -> dict[int, str]:
    """Non-ASCII letter -> the ASCII letter it is confusable with (Unicode confusables.txt).

    Built once from the data file of `confusable-homoglyphs`; follows one extra hop
    (Cyrillic "н" -> small capital "ʜ" -> "H") or the capital letter ("к" -> "К" -> "K" ->
    "k"). East Asian characters are left alone.
    """
    from confusable_homoglyphs.confusables import confusables_data

    data: dict[str, list[dict[str, str]]] = confusables_data

    def ascii_letter(char: str, glyphs: list[dict[str, str]]) -> str | None:
        letters = [g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii()]
        letters = [c for c in letters if c.isalpha()]
        if not letters:
            return None
        same_case = [c for c in letters if c.islower() == char.islower()]
        return (same_case or letters)[0]

    table: dict[int, str] = {}
    for char, glyphs in data.items():
        if len(char) != 1 or char.isascii() or is_east_asian(char):
            continue
        if not unicodedata.category(char).startswith("L"):
            continue
        if unicodedata.name(char, "").startswith(_EAST_ASIAN):
            continue
        letter = ascii_letter(char, glyphs)
        if letter is None:
            for glyph in glyphs:
                other = glyph["c"]
                if len(other) == 1 and not other.isascii() and other in data:
                    letter = ascii_letter(other, data[other])
                    if letter:
                        break
        upper = char.upper()
        if letter is None and upper != char and len(upper) == 1 and upper in data:
            found = ascii_letter(upper, data[upper])  # "к" -> "К" -> "K" -> "k"
            letter = found.lower() if found else None
        if letter:
            table[ord(char)] = letter
    return table


_WORD = re.compile(r"[^\W\d_]+")


def _fold_word(match: re.Match[str]) -> str:
    """Fold look-alikes in a word that mixes them with ASCII letters ("сhild") or consists of
    look-alikes only ("сһіԁ"); a word of another script stays as written ("девочка")."""
    word = match.group(0)
    if word.isascii():
        return word
    table = confusables_table()
    if any(c.isascii() for c in word) or all(c.isascii() or ord(c) in table for c in word):
        return word.translate(table)
    return word


def _strip_invisible(text: str) -> str:
    text = text.translate(PRE_TABLE)
    if not text.isascii() and any(unicodedata.category(c) == "Cf" for c in set(text)):
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return text


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Steps 1-4 (invisibles, NFKC, accents, confusables, casefold) on a whole text."""
    text = _strip_invisible(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = unicodedata.normalize("NFKD", text).translate(_COMBINING)
        text = _WORD.sub(_fold_word, text)
        text = unicodedata.normalize("NFC", text)
    return text.casefold()


# --- words ---------------------------------------------------------------------------------

_LEET_I = str.maketrans("0134578", "oieastb")
_LEET_L = str.maketrans("0134578", "oleastb")  # "1" read as "l" (1oli)
_SYMBOLS = str.maketrans({"@": "a", "$": "s", "€": "e", "¡": "i"})
_BETWEEN_LETTERS_I = re.compile(r"(?<=[^\W_])[!|](?=[^\W_])")
_INNER_PUNCT = re.compile(r"(?<=[^\W_])(?:[^\w\s]|_)+(?=[^\W_])")
_NON_WORD = re.compile(r"[\W_]+")
_SINGLE_RUN = re.compile(r"(?<![^ ])[^ ] [^ ](?![^ ])")  # two one-letter words in a row
_REPEATS = re.compile(r"(.)\1+")
_DIGITS_THEN_LETTERS = re.compile(r"^(\d+)([^\W\d_]+)$")


@lru_cache(maxsize=65536)
def skeleton(word: str) -> str:
    """Repeated letters collapsed: 'nuuude' -> 'nude' (run lengths are checked separately)."""
    return _REPEATS.sub(r"\1", word)


@dataclass(frozen=True)
class Reading:
    """One reading of the text as words; `spaced` marks words joined from single letters."""

    words: tuple[str, ...]
    skeletons: tuple[str, ...]
    spaced: frozenset[int]
    leet: bool = False  # some word had digits or symbols read as letters

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class Normalised:
    """`text`: steps 1-4 applied; `readings`: step 5; `compact`: `text` without spaces and
    punctuation, where Japanese and Chinese terms are looked for as substrings."""

    text: str
    readings: tuple[Reading, ...]
    compact: str

    @property
    def display(self) -> str:
        """The first reading, for people (the CLI's "normalised")."""
        return self.readings[0].text if self.readings else ""


def split_chunks(text: str) -> tuple[list[str], list[str] | None]:
    """Words split at any punctuation, and (None when identical) with the punctuation
    inside a word removed instead ('n.u.d.e' -> 'nude', 'nu-de' -> 'nude')."""
    split: list[str] = []
    inner: list[str] = []
    differs = False
    for chunk in text.split():
        if chunk.isalnum():
            split.append(chunk)
            inner.append(chunk)
            continue
        chunk = chunk.translate(_SYMBOLS)
        if "!" in chunk or "|" in chunk:
            chunk = _BETWEEN_LETTERS_I.sub("i", chunk)
        parts = [part for part in _NON_WORD.split(chunk) if part]
        split.extend(parts)
        joined = _INNER_PUNCT.sub("", chunk)
        if joined == chunk:
            inner.extend(parts)
        else:
            differs = True
            inner.extend(part for part in _NON_WORD.split(joined) if part)
    return split, (inner if differs else None)


def join_single_letters(words: list[str]) -> tuple[list[str], set[int]]:
    """'n u d e' -> 'nude'; returns the words and the indices of the joined ones."""
    if not _SINGLE_RUN.search(" ".join(words)):
        return words, set()
    out: list[str] = []
    spaced: set[int] = set()
    run: list[str] = []
    for word in [*words, ""]:
        if len(word) == 1:
            run.append(word)
            continue
        if len(run) >= 2:
            spaced.add(len(out))
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if word:
            out.append(word)
    return out, spaced


def _reading(words: list[str], spaced: set[int], table: dict[int, int]) -> Reading:
    out = tuple(w if w.isalpha() or w.isdigit() else w.translate(table) for w in words)
    leet = any(a != b for a, b in zip(out, words, strict=True))
    return Reading(out, tuple(map(skeleton, out)), frozenset(spaced), leet)


_INNER_DIGITS = re.compile(r"(?<=[^\W\d_])\d+")


def age_texts(normalised: Normalised) -> list[str]:
    """The texts to look for age expressions in: the folded text, and where leetspeak was
    read, the leet readings plus a version with only digits after a letter read as letters
    ("12y0" -> "12yo", where the full reading would lose the 12)."""
    texts = [normalised.text]
    for reading in normalised.readings:
        if reading.leet:
            texts.append(reading.text)
            texts.append(
                " ".join(
                    _INNER_DIGITS.sub(lambda m: m.group(0).translate(_LEET_I), w)
                    for w in normalised.text.translate(_SYMBOLS).split()
                )
            )
    return list(dict.fromkeys(texts))


def words_of(term: str) -> tuple[str, ...]:
    """A list entry read exactly like a prompt (first reading), so 'Naïve' == 'naive'."""
    normalised = normalize(term)
    return normalised.readings[0].words if normalised.readings else ()


def normalize(text: str) -> Normalised:
    """All readings of `text` the matcher looks at (see the module docstring)."""
    folded = fold(text)
    split, inner = split_chunks(folded)
    readings: list[Reading] = []
    seen: set[tuple[str, ...]] = set()
    for words in (split, inner):
        if words is None:
            continue
        words, spaced = join_single_letters(words)
        candidates = [_reading(words, spaced, _LEET_I)]
        if any(_DIGITS_THEN_LETTERS.match(w) for w in words):  # '12yo', '1boy' -> '12 yo'
            split_digits = [p for w in words for p in _DIGITS_THEN_LETTERS.sub(r"\1 \2", w).split()]
            candidates.append(_reading(split_digits, set(), _LEET_I))
        if "1" in folded and any("1" in w and not w.isdigit() for w in words):
            candidates.append(_reading(words, spaced, _LEET_L))
        for candidate in candidates:
            if candidate.words not in seen:
                seen.add(candidate.words)
                readings.append(candidate)
    compact = _NON_WORD.sub("", folded) if not folded.isascii() else ""
    return Normalised(text=folded, readings=tuple(readings), compact=compact)
