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

The minors x sexual decision is the prompt guard's (fedibot/moderation/guard, see
docs/moderation-guard.md): it judges the prompt and the negative prompt together, in nine
languages, with age expressions and nudity paraphrases. The config's minor_terms,
sexual_terms, innocent_phrases and guard_lists are merged into its lists. Innocent phrases
never weaken the admin's block list.

Callers should check the prompt after `apply_style`: a style can add words of its own.

The negative prompt is checked against the block list and the regexes (it is shown back:
alt text, image metadata) and by the guard, which reads garments in it as asking for
nudity when the prompt names a minor; sexual words in it never count against the request.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Literal

from fedibot.config.prompt import PromptFilterConfig
from fedibot.moderation.guard import Lexicon, default_lexicon, judge, load_lexicon
from fedibot.moderation.guard import mentions_minor as _mentions_minor
from fedibot.moderation.guard.judge import REASONS, RULE_SEXUAL
from fedibot.moderation.guard.normalize import PRE_TABLE, join_single_letters, split_chunks

# --- normalisation -------------------------------------------------------------------------

# Invisible characters and emoji: the guard's table (one list for both).

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
    text = text.translate(PRE_TABLE).casefold()
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


def _variant(tokens: list[str], spaced: set[int], table: dict[int, int]) -> Variant:
    words = tuple(t if t.isalpha() or t.isdigit() else t.translate(table) for t in tokens)
    return Variant(words, tuple(map(_skeleton, words)), frozenset(spaced))


def normalise(text: str) -> Normalised:
    """All readings of `text` the matcher looks at (see the module docstring)."""
    base = _base(text)
    split, inner = split_chunks(base)
    variants: list[Variant] = []
    seen: set[tuple[str, ...]] = set()
    for tokens in (split, inner):
        if tokens is None:
            continue
        tokens, spaced = join_single_letters(tokens)
        candidates = [_variant(tokens, spaced, _LEET_DIGITS)]
        if "1" in base and any("1" in t and not t.isdigit() for t in tokens):
            candidates.append(_variant(tokens, spaced, _LEET_DIGITS_L))
        for candidate in candidates:
            if candidate.tokens not in seen:
                seen.add(candidate.tokens)
                variants.append(candidate)
    return Normalised(base=base, variants=tuple(variants))


# --- term tables ---------------------------------------------------------------------------

BLOCKED = 1


@dataclass(frozen=True)
class _Entry:
    kinds: int
    runs: tuple[tuple[int, ...], ...]
    term: str


def _term_words(term: str) -> tuple[str, ...]:
    """A list entry read exactly like a prompt (first reading), so 'naïve' == 'naive'."""
    return normalise(term).variants[0].tokens


_DEFAULT_SECTIONS = {
    "minor_terms": ("minor", "minor_sexual"),
    "sexual_terms": ("sexual", "nudity"),
    "innocent_phrases": ("innocent",),
}


@cache
def default_list(
    name: Literal["minor_terms", "sexual_terms", "innocent_phrases"],
) -> tuple[str, ...]:
    """A list shipped with the guard (fedibot/moderation/guard/data/*.toml, all languages)."""
    terms = default_lexicon().terms
    return tuple(dict.fromkeys(t for section in _DEFAULT_SECTIONS[name] for t in terms[section]))


@cache
def _guard_lexicon(
    paths: tuple[str, ...],
    defaults: bool,
    minor: tuple[str, ...],
    sexual: tuple[str, ...],
    innocent: tuple[str, ...],
) -> Lexicon:
    if not paths and defaults and not (minor or sexual or innocent):
        return default_lexicon()
    extra = {"minor": minor, "sexual": sexual, "innocent": innocent}
    return load_lexicon(paths, defaults=defaults, extra=extra)


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
                            found.append((entry.kinds, index, index + 1, entry.term))


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
GUARD_MESSAGE = REASONS[RULE_SEXUAL]


class PromptFilter:
    """Built once from config (everything precompiled); `check` is pure and thread-safe."""

    def __init__(self, config: PromptFilterConfig | None = None) -> None:
        config = config or PromptFilterConfig()
        self.enabled = config.enabled
        self.guard = _guard_lexicon(
            tuple(map(str, config.guard_lists)),
            config.use_default_lists,
            tuple(config.minor_terms),
            tuple(config.sexual_terms),
            tuple(config.innocent_phrases),
        )
        self._matcher = _Matcher([(BLOCKED, config.blocked_terms)])
        self._regexes = [
            (index, re.compile(pattern, re.IGNORECASE))
            for index, pattern in enumerate(config.blocked_regexes)
        ]

    def check(self, prompt: str, negative_prompt: str = "") -> FilterVerdict:
        """Verdict on a prompt and its negative prompt: block list and regexes on each, then
        the guard on both together."""
        if not self.enabled:
            return ALLOWED
        verdict = self._check_prompt(prompt)
        if verdict.allowed and negative_prompt:
            verdict = self._check_negative(negative_prompt)
        if verdict.allowed:
            guard = judge(prompt, negative_prompt, self.guard)
            if not guard.allowed:
                return FilterVerdict(
                    allowed=False,
                    code="prompt_blocked",
                    reason=f"{guard.rule}: {', '.join(guard.matched)}",
                    user_message=guard.reason,
                )
        return verdict

    def mentions_minor(self, prompt: str, negative_prompt: str = "") -> bool:
        """True when the prompt or the negative prompt names a minor (the guard's lists)."""
        return _mentions_minor(prompt, negative_prompt, self.guard)

    def _check_prompt(self, prompt: str) -> FilterVerdict:
        normalised = normalise(prompt)
        for variant in normalised.variants:
            for kinds, _, _, term in self._matcher.matches(variant):
                if kinds & BLOCKED:
                    return _blocked(f"blocked term: {term}")
        return self._regex_hit(normalised) or ALLOWED

    def _check_negative(self, negative: str) -> FilterVerdict:
        normalised = normalise(negative)
        for variant in normalised.variants:
            for kinds, _, _, term in self._matcher.matches(variant):
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
