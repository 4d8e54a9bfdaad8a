"""The prompt filter: normalise a prompt, then block lists, regexes and the minors+sexual guard.

Normalisation (`normalise`) undoes the usual obfuscations before any matching: invisible
characters, a few relevant emoji (mapped to words), case, accents and look-alike letters,
leetspeak (`s3x`, `$ex`, `n00d`), punctuation inside words (`n.u.d.e`, `nu-de`) and
spaced-out letters (`n u d e`). Repeated letters (`nuuuude`) are handled by the matcher:
a term matches a word whose letter runs are at least as long as the term's, so "nuuude"
matches "nude" while "ten" does not match "teen".

Matching is whole-word (and whole-phrase) on the normalised words, which avoids the
Scunthorpe problem ("class" never matches "ass"). Only text the user deliberately spaced
out letter by letter ("c h i l d n u d e") is searched for terms inside the joined letters.

The guard refuses a prompt that matches a term from the minor group AND a term from the
sexual group, as the AI Horde does. Innocent phrases ("kid goat", "baby dragon", "naked
eye", see fedibot/moderation/data/innocent_phrases.txt) take their words out of the guard's reach;
they never weaken the admin's block list. Known false positives we accept: a child together
with 💦, 🍑 or 🍆, "kid ... bikini/underwear", "baby doll lingerie", ages under 18 next to
"sexy" even when the age belongs to a whisky. Known misses: words glued together with no
separator at all ("childnude") and words split unevenly ("nu de"); whole-word matching is
the price of not refusing "Scunthorpe".

Callers should check the prompt after `apply_style`: a style can add words of its own.

The negative prompt is checked only against the block list and the regexes, never by the
guard: a negative prompt such as "nude, child" states what the user does NOT want, so
refusing it would punish the careful. It is still checked against the block list because
it is shown back (alt text, image metadata) and the admin's list covers words the bot must
never post.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Literal

from fedibot.config.prompt import PromptFilterConfig

# --- normalisation -------------------------------------------------------------------------

_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0x1D173, 0x1D17A),
    (0xE0000, 0xE007F),
)  # fmt: skip

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

_PRE_TABLE: dict[int, str | None] = {
    code: None for start, end in _INVISIBLE_RANGES for code in range(start, end + 1)
}
_PRE_TABLE.update({ord(emoji): f" {word} " for emoji, word in EMOJI_WORDS.items()})

# Letters NFKD leaves alone but people use as look-alikes (lowercase: applied after casefold).
_LOOKALIKES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "α": "a", "β": "b", "ε": "e", "η": "n",
        "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
        "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l", "þ": "th", "ð": "d", "ı": "i",
        "ɑ": "a", "ɡ": "g", "ʀ": "r", "ꜱ": "s", "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d",
        "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k", "ʟ": "l", "ᴍ": "m",
        "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y",
        "ᴢ": "z",
    }
)  # fmt: skip

_LEET_DIGITS = str.maketrans("0134578", "oieastb")
_LEET_DIGITS_L = str.maketrans("0134578", "oleastb")  # "1" read as "l" (1oli)
_SYMBOLS = str.maketrans({"@": "a", "$": "s", "€": "e", "¡": "i"})
_BETWEEN_LETTERS_I = re.compile(r"(?<=[^\W_])[!|](?=[^\W_])")
_INNER_PUNCT = re.compile(r"(?<=[^\W_])(?:[^\w\s]|_)+(?=[^\W_])")
_NON_WORD = re.compile(r"[\W_]+")
_SINGLE_RUN = re.compile(r"(?<![^ ])[^ ] [^ ](?![^ ])")  # two one-letter words in a row
_RUN = re.compile(r"(.)\1*")
_REPEATS = re.compile(r"(.)\1+")
# Combining marks of the Latin/Greek/Cyrillic diacritic blocks (what NFKD splits off accents).
_COMBINING = dict.fromkeys(
    [
        *range(0x0300, 0x0370), *range(0x1AB0, 0x1B00), *range(0x1DC0, 0x1E00),
        *range(0x20D0, 0x2100), *range(0xFE20, 0xFE30),
    ]
)  # fmt: skip


def _base(text: str) -> str:
    """Invisible characters out, emoji to words, casefold, accents and look-alikes off."""
    text = text.translate(_PRE_TABLE).casefold()
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).translate(_COMBINING).translate(_LOOKALIKES)
    return text


@lru_cache(maxsize=65536)
def _skeleton(token: str) -> str:
    """Repeated letters collapsed: 'nuuude' -> 'nude' (run lengths are checked separately)."""
    return _REPEATS.sub(r"\1", token)


def _runs(token: str) -> tuple[int, ...]:
    return tuple(len(m.group(0)) for m in _RUN.finditer(token))


@dataclass(frozen=True)
class Variant:
    """One reading of the text as words; `spaced` marks words joined from single letters."""

    tokens: tuple[str, ...]
    skeletons: tuple[str, ...]  # the tokens with repeated letters collapsed
    spaced: frozenset[int]

    @property
    def text(self) -> str:
        return " ".join(self.tokens)


@dataclass(frozen=True)
class Normalised:
    base: str  # casefolded, accents and invisibles off, emoji as words; digits kept
    variants: tuple[Variant, ...]


def _split_chunks(base: str) -> tuple[list[str], list[str] | None]:
    """Words split at any punctuation, and (None when identical) with the punctuation
    inside a word removed instead ('n.u.d.e' -> 'nude', 'nu-de' -> 'nude')."""
    split: list[str] = []
    inner: list[str] = []
    differs = False
    for chunk in base.split():
        if chunk.isalnum():  # the common case: a plain word
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


def _join_single_letters(tokens: list[str]) -> tuple[list[str], set[int]]:
    """'n u d e' -> 'nude'; returns the tokens and the indices of the joined ones."""
    if not _SINGLE_RUN.search(" ".join(tokens)):
        return tokens, set()
    out: list[str] = []
    spaced: set[int] = set()
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1:
            run.append(token)
            continue
        if len(run) >= 2:
            spaced.add(len(out))
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if token:
            out.append(token)
    return out, spaced


def _variant(tokens: list[str], spaced: set[int], table: dict[int, int]) -> Variant:
    words = tuple(t if t.isalpha() or t.isdigit() else t.translate(table) for t in tokens)
    return Variant(words, tuple(map(_skeleton, words)), frozenset(spaced))


def normalise(text: str) -> Normalised:
    """All readings of `text` the matcher looks at (see the module docstring)."""
    base = _base(text)
    split, inner = _split_chunks(base)
    variants: list[Variant] = []
    seen: set[tuple[str, ...]] = set()
    for tokens in (split, inner):
        if tokens is None:
            continue
        tokens, spaced = _join_single_letters(tokens)
        candidates = [_variant(tokens, spaced, _LEET_DIGITS)]
        if "1" in base and any("1" in t and not t.isdigit() for t in tokens):
            candidates.append(_variant(tokens, spaced, _LEET_DIGITS_L))
        for candidate in candidates:
            if candidate.tokens not in seen:
                seen.add(candidate.tokens)
                variants.append(candidate)
    return Normalised(base=base, variants=tuple(variants))


# --- term tables ---------------------------------------------------------------------------

BLOCKED, MINOR, SEXUAL, INNOCENT = 1, 2, 4, 8

_NUMBER_WORDS = (
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
)  # fmt: skip
_AGE_PHRASES = [
    f"{number} {suffix}"
    for number in _NUMBER_WORDS
    for suffix in ("year old", "years old", "yo", "yr old", "yrs old", "year olds")
]
_AGE_NUMBER = re.compile(
    r"(\d{1,2})\s*[-_]?\s*(?:yo|y/o|y\.o\.?|(?:yrs?|years?)\s*[-_]?\s*olds?)\b"
)
_AGE_WORD = re.compile(r"\bage[ds]?\s*:?\s*(\d{1,2})(?!\d|[.,]\d)")
_DIGIT = re.compile(r"\d")
_NUMBER_BEFORE = re.compile(r"\d[.,]?\Z")  # '112 yo', '1.12 yo' are not ages 12


@dataclass(frozen=True)
class _Entry:
    kinds: int
    runs: tuple[tuple[int, ...], ...]
    term: str


def _term_words(term: str) -> tuple[str, ...]:
    """A list entry read exactly like a prompt (first reading), so 'naïve' == 'naive'."""
    return normalise(term).variants[0].tokens


@cache
def default_list(
    name: Literal["minor_terms", "sexual_terms", "innocent_phrases"],
) -> tuple[str, ...]:
    """A list shipped in fedibot/moderation/data/NAME.txt (one entry a line, '#' comments)."""
    text = resources.files("fedibot.moderation").joinpath("data", f"{name}.txt").read_text("utf-8")
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(line for line in lines if line)


class _Matcher:
    """Whole-word phrase lookup tolerant of repeated letters and a trailing s/es."""

    def __init__(self, groups: Iterable[tuple[int, Iterable[str]]]) -> None:
        table: dict[str, dict[tuple[tuple[int, ...], ...], _Entry]] = {}
        for kind, terms in groups:
            for term in terms:
                words = _term_words(term)
                if not words:
                    continue
                last = words[-1]
                for final in (last, last + "s", last + "es"):
                    forms = (*words[:-1], final)
                    key = " ".join(_skeleton(w) for w in forms)
                    runs = tuple(_runs(w) for w in forms)
                    old = table.setdefault(key, {}).get(runs)
                    kinds = kind | (old.kinds if old else 0)
                    table[key][runs] = _Entry(kinds, runs, old.term if old else term)
        self._table = {key: tuple(by_runs.values()) for key, by_runs in table.items()}
        lengths: dict[str, set[int]] = {}
        for key in self._table:
            first, _, _ = key.partition(" ")
            lengths.setdefault(first, set()).add(key.count(" ") + 1)
        self._lengths = {first: tuple(sorted(n)) for first, n in lengths.items()}
        self._singles = tuple(k for k in self._table if " " not in k)

    def matches(self, variant: Variant) -> list[tuple[int, int, int, str]]:
        """(kinds, start, end, term) for every term found in the variant's words."""
        found: list[tuple[int, int, int, str]] = []
        if not self._lengths.keys().isdisjoint(variant.skeletons):
            self._match_words(variant, found)
        for index in variant.spaced:
            self._match_inside(variant.tokens[index], index, found)
        return found

    def _match_words(self, variant: Variant, found: list[tuple[int, int, int, str]]) -> None:
        tokens, skeletons = variant.tokens, variant.skeletons
        for i, first in enumerate(skeletons):
            for n in self._lengths.get(first, ()):
                if i + n > len(tokens):
                    break
                key = first if n == 1 else " ".join(skeletons[i : i + n])
                for entry in self._table.get(key, ()):
                    if all(map(_covers, map(_runs, tokens[i : i + n]), entry.runs)):
                        found.append((entry.kinds, i, i + n, entry.term))

    def _match_inside(self, word: str, index: int, found: list[tuple[int, int, int, str]]) -> None:
        """Terms anywhere inside letters someone spaced out on purpose ('c h i l d n u d e')."""
        skeleton = _skeleton(word)
        for key in self._singles:
            if key in skeleton:
                for match in _repeat_pattern(key).finditer(word):
                    for entry in self._table[key]:
                        if _covers(_runs(match.group(0)), entry.runs[0]):
                            found.append((entry.kinds & ~INNOCENT, index, index + 1, entry.term))


def _covers(have: tuple[int, ...], need: tuple[int, ...]) -> bool:
    """Every letter run of the text is at least as long as the term's ('nuuude' >= 'nude')."""
    return len(have) == len(need) and all(a >= b for a, b in zip(have, need, strict=True))


@lru_cache(maxsize=4096)
def _repeat_pattern(skeleton: str) -> re.Pattern[str]:
    return re.compile("".join(re.escape(ch) + "+" for ch in skeleton))


# --- the filter ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterVerdict:
    """`reason` is for the audit log; `user_message` is safe to post (it names no term)."""

    allowed: bool
    code: Literal["prompt_blocked", ""] = ""
    reason: str = ""
    user_message: str = ""


ALLOWED = FilterVerdict(allowed=True)
BLOCKED_MESSAGE = (
    "Sorry, I can't make that picture: the prompt contains something this bot doesn't draw. "
    "Please rephrase it."
)
GUARD_MESSAGE = (
    "Sorry, I never make sexual or suggestive pictures involving minors. "
    "Please ask for something else."
)


class PromptFilter:
    """Built once from config (everything precompiled); `check` is pure and thread-safe."""

    def __init__(self, config: PromptFilterConfig | None = None) -> None:
        config = config or PromptFilterConfig()
        self.enabled = config.enabled
        defaults = config.use_default_lists
        minors = [*config.minor_terms, *(default_list("minor_terms") if defaults else ())]
        if defaults:
            minors += _AGE_PHRASES
        sexual = [*config.sexual_terms, *(default_list("sexual_terms") if defaults else ())]
        innocent = [
            *config.innocent_phrases,
            *(default_list("innocent_phrases") if defaults else ()),
        ]
        self._detect_ages = defaults
        self._matcher = _Matcher(
            [(BLOCKED, config.blocked_terms), (MINOR, minors), (SEXUAL, sexual),
             (INNOCENT, innocent)]
        )  # fmt: skip
        self._regexes = [
            (index, re.compile(pattern, re.IGNORECASE))
            for index, pattern in enumerate(config.blocked_regexes)
        ]
        self._blocked_only = _Matcher([(BLOCKED, config.blocked_terms)])

    def check(self, prompt: str, negative_prompt: str = "") -> FilterVerdict:
        """Verdict on a prompt (and its negative prompt: block list and regexes only)."""
        if not self.enabled:
            return ALLOWED
        verdict = self._check_prompt(prompt)
        if verdict.allowed and negative_prompt:
            verdict = self._check_negative(negative_prompt)
        return verdict

    def _check_prompt(self, prompt: str) -> FilterVerdict:
        normalised = normalise(prompt)
        minor_terms: list[str] = []
        sexual_terms: list[str] = []
        for variant in normalised.variants:
            found = self._matcher.matches(variant)
            innocent = {
                index
                for kinds, start, end, _ in found
                if kinds & INNOCENT
                for index in range(start, end)
            }
            for kinds, start, end, term in found:
                if kinds & BLOCKED:
                    return _blocked(f"blocked term: {term}")
                if innocent.intersection(range(start, end)):
                    continue
                if kinds & MINOR:
                    minor_terms.append(term)
                if kinds & SEXUAL:
                    sexual_terms.append(term)
        blocked = self._regex_hit(normalised)
        if blocked:
            return blocked
        if self._detect_ages:
            minor_terms.extend(_ages_under_18(normalised.base))
        if minor_terms and sexual_terms:
            terms = ", ".join(dict.fromkeys(minor_terms + sexual_terms))
            return FilterVerdict(
                allowed=False,
                code="prompt_blocked",
                reason=f"minor+sexual: {terms}",
                user_message=GUARD_MESSAGE,
            )
        return ALLOWED

    def minor_terms(self, text: str) -> list[str]:
        """The minor terms (and ages under 18) named in `text`, innocent phrases left out;
        used by the output check, whatever `enabled` says."""
        normalised = normalise(text)
        terms: list[str] = []
        for variant in normalised.variants:
            found = self._matcher.matches(variant)
            innocent = {
                index
                for kinds, start, end, _ in found
                if kinds & INNOCENT
                for index in range(start, end)
            }
            for kinds, start, end, term in found:
                if kinds & MINOR and not innocent.intersection(range(start, end)):
                    terms.append(term)
        if self._detect_ages:
            terms.extend(_ages_under_18(normalised.base))
        return list(dict.fromkeys(terms))

    def _check_negative(self, negative: str) -> FilterVerdict:
        normalised = normalise(negative)
        for variant in normalised.variants:
            for kinds, _, _, term in self._blocked_only.matches(variant):
                if kinds & BLOCKED:
                    return _blocked(f"blocked term in negative prompt: {term}")
        return self._regex_hit(normalised, where=" in negative prompt") or ALLOWED

    def _regex_hit(self, normalised: Normalised, where: str = "") -> FilterVerdict | None:
        if not self._regexes:
            return None
        texts = [normalised.base, *(variant.text for variant in normalised.variants)]
        for index, regex in self._regexes:
            if any(regex.search(text) for text in texts):
                return _blocked(f"blocked regex #{index}{where}: {regex.pattern}")
        return None


def _blocked(reason: str) -> FilterVerdict:
    return FilterVerdict(
        allowed=False, code="prompt_blocked", reason=reason, user_message=BLOCKED_MESSAGE
    )


def _ages_under_18(base: str) -> Sequence[str]:
    """'12 yo', '12-year-old', 'aged 12' with an age under 18 (not '1.12 yo' or '112 yo')."""
    if not _DIGIT.search(base):
        return ()
    ages = [
        int(match.group(1))
        for match in _AGE_NUMBER.finditer(base)
        if not _NUMBER_BEFORE.search(base, 0, match.start())
    ]
    if "age" in base:
        ages += [int(match.group(1)) for match in _AGE_WORD.finditer(base)]
    return [f"age {age}" for age in ages if age < 18]
