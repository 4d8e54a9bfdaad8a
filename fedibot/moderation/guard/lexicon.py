"""The guard's word lists: loaded from TOML data files, compiled once, matched fast.

A list file (see fedibot/moderation/guard/data/en.toml) has these optional keys:

    minor    = [...]  # words that name a minor ("child", "teen", "Grundschüler")
    minor_sexual = [...]  # words that alone mean a sexualised minor ("shota", "jailbait")
    sexual   = [...]  # sexual words ("sexy", "lewd", "porn")
    nudity   = [...]  # nudity words and paraphrases ("nude", "wearing nothing", "no clothes")
    clothing = [...]  # garments; in the negative prompt, or after a negation, = nudity asked
    negation = [...]  # "without", "no", "ohne": a negation followed by a garment = nudity
    innocent = [...]  # phrases whose words never count ("kid goat", "naked mole rat")
    [numbers]         # number words -> value, for ages ("ten" = 10, "zehn" = 10)
    [ages]            # age patterns with {n}: years = [...], grades = [...], months = [...]

Matching is whole-word on the normalised readings (see normalize.py), tolerant of repeated
letters ("nuuude") and of a trailing s/es. A word that is no term but is made entirely of
terms glued together ("childnude", "nakedkids") counts as those terms; a real word that only
contains a term ("kidney", "Essex") does not, since every letter must belong to a term.
An entry ending in `*` matches any word that starts with it ("несовершеннолетн*"). An entry
containing Japanese/Chinese characters is looked for as a substring of the compact text
(those scripts have no spaces).

Operators add files or folders of *.toml files; everything is merged with the shipped lists.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

from fedibot.moderation.guard.normalize import (
    Normalised,
    Reading,
    fold,
    is_east_asian,
    skeleton,
    words_of,
)

MINOR, SEXUAL, NUDITY, CLOTHING, NEGATION, INNOCENT = 1, 2, 4, 8, 16, 32
SECTIONS: dict[str, int] = {
    "minor": MINOR,
    "minor_sexual": MINOR | SEXUAL,  # terms that alone mean a sexualised minor ("shota")
    "sexual": SEXUAL,
    "nudity": NUDITY,
    "clothing": CLOTHING,
    "negation": NEGATION,
    "innocent": INNOCENT,
}
AGE_KINDS = ("years", "grades", "months")
NEGATION_REACH = 3  # a garment at most this many words after the negation ("without a shirt")


class LexiconError(ValueError):
    """A list file that cannot be read; the message names the file and the key."""


@dataclass
class ListData:
    """The raw contents of one or more list files, merged."""

    terms: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in SECTIONS})
    numbers: dict[str, int] = field(default_factory=dict)
    ages: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in AGE_KINDS})
    sources: list[str] = field(default_factory=list)

    def merge_file(self, path: Path, text: str) -> None:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise LexiconError(f"{path}: not valid TOML: {exc}") from None
        for key, value in data.items():
            if key in SECTIONS:
                self.terms[key].extend(_strings(path, key, value))
            elif key == "numbers":
                if not isinstance(value, dict) or not all(
                    isinstance(v, int) and not isinstance(v, bool) for v in value.values()
                ):
                    raise LexiconError(f"{path}: [numbers] must map words to integers")
                self.numbers.update(value)
            elif key == "ages":
                if not isinstance(value, dict):
                    raise LexiconError(f"{path}: [ages] must be a table")
                for kind, patterns in value.items():
                    if kind not in AGE_KINDS:
                        raise LexiconError(f"{path}: unknown [ages] key {kind!r}")
                    for pattern in _strings(path, f"ages.{kind}", patterns):
                        if pattern.count("{n}") != 1:
                            raise LexiconError(f"{path}: age pattern {pattern!r} needs one {{n}}")
                        self.ages[kind].append(pattern)
            elif key not in ("language", "name"):
                raise LexiconError(f"{path}: unknown key {key!r}")
        self.sources.append(str(path))


def _strings(path: Path, key: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise LexiconError(f"{path}: {key} must be a list of strings")
    for entry in value:
        if not any(ch.isalnum() for ch in entry):
            raise LexiconError(f"{path}: {key} entry {entry!r} has no letters or digits")
    return list(value)


def _list_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(path.glob("*.toml")))
        elif path.is_file():
            files.append(path)
        else:
            raise LexiconError(f"{path}: no such list file or folder")
    return files


def shipped_files() -> list[tuple[str, str]]:
    """(name, text) of every list shipped in fedibot/moderation/guard/data."""
    folder = resources.files("fedibot.moderation.guard").joinpath("data")
    entries = sorted((e for e in folder.iterdir() if e.name.endswith(".toml")), key=str)
    return [(entry.name, entry.read_text("utf-8")) for entry in entries]


# --- compiled matcher ----------------------------------------------------------------------


def _runs(word: str) -> tuple[int, ...]:
    return tuple(len(m.group(0)) for m in re.finditer(r"(.)\1*", word))


def _covers(have: tuple[int, ...], need: tuple[int, ...]) -> bool:
    """Every letter run of the text is at least as long as the term's ('nuuude' >= 'nude')."""
    return len(have) == len(need) and all(a >= b for a, b in zip(have, need, strict=True))


@lru_cache(maxsize=4096)
def _repeat_pattern(skel: str) -> re.Pattern[str]:
    return re.compile("".join(re.escape(ch) + "+" for ch in skel))


@dataclass(frozen=True)
class Hit:
    """A term found in a reading: words [start, end) or, for `cjk`, characters of `compact`."""

    kinds: int
    start: int
    end: int
    term: str
    cjk: bool = False


@dataclass(frozen=True)
class _Entry:
    kinds: int
    runs: tuple[tuple[int, ...], ...]
    term: str


class _Index:
    def __init__(self, groups: Mapping[str, Iterable[str]]) -> None:
        table: dict[str, dict[tuple[tuple[int, ...], ...], _Entry]] = {}
        prefixes: dict[str, tuple[int, str]] = {}
        cjk: dict[str, int] = {}
        for section, terms in groups.items():
            kind = SECTIONS[section]
            for term in terms:
                if any(is_east_asian(ch) for ch in term):
                    key = re.sub(r"[\W_]+", "", fold(term))
                    cjk[key] = cjk.get(key, 0) | kind
                    continue
                if term.endswith("*"):
                    for stem in words_of(term[:-1])[-1:]:
                        old = prefixes.get(stem, (0, stem))
                        prefixes[stem] = (old[0] | kind, stem + "*")
                    continue
                words = words_of(term)
                if not words:
                    continue
                display = " ".join(words)
                last = words[-1]
                finals = (last,) if last[-1:].isdigit() else (last, last + "s", last + "es")
                for final in finals:
                    forms = (*words[:-1], final)
                    key = " ".join(skeleton(w) for w in forms)
                    runs = tuple(_runs(w) for w in forms)
                    old_entry = table.setdefault(key, {}).get(runs)
                    kinds = kind | (old_entry.kinds if old_entry else 0)
                    table[key][runs] = _Entry(kinds, runs, old_entry.term if old_entry else display)
        self._table = {key: tuple(by_runs.values()) for key, by_runs in table.items()}
        lengths: dict[str, set[int]] = {}
        for key in self._table:
            first, _, _ = key.partition(" ")
            lengths.setdefault(first, set()).add(key.count(" ") + 1)
        self._lengths = {first: tuple(sorted(n)) for first, n in lengths.items()}
        self._singles = tuple(k for k in self._table if " " not in k and len(k) >= 3)
        # glued words: pieces are single-word terms of 3+ letters (not innocent, not negation)
        self._glue = frozenset(
            k
            for k in self._singles
            if any(e.kinds & (MINOR | SEXUAL | NUDITY | CLOTHING) for e in self._table[k])
        )
        self._glue_heads = frozenset(k[:3] for k in self._glue)
        self._glue_longest = max(map(len, self._glue), default=0)
        self._prefixes = prefixes
        self._prefix_heads = {stem[:2] for stem in prefixes}
        self._cjk = cjk
        self._cjk_re = (
            re.compile("|".join(map(re.escape, sorted(cjk, key=len, reverse=True))))
            if cjk
            else None
        )

    def matches(self, reading: Reading) -> list[Hit]:
        found: list[Hit] = []
        if not self._lengths.keys().isdisjoint(reading.skeletons):
            self._match_words(reading, found)
        if self._prefixes:
            for i, word in enumerate(reading.words):
                if word[:2] in self._prefix_heads:
                    for stem, (kinds, term) in self._prefixes.items():
                        if word.startswith(stem):
                            found.append(Hit(kinds, i, i + 1, term))
        for index in reading.spaced:
            self._match_inside(reading.words[index], index, found)
        for index, skel in enumerate(reading.skeletons):
            if len(skel) >= 6 and skel[:3] in self._glue_heads and skel not in self._table:
                self._match_glued(reading.words[index], index, found)
        return found

    def _match_glued(self, word: str, index: int, found: list[Hit]) -> None:
        """A word made entirely of two to four terms ('childnude' = child + nude). Pieces
        are cut from the word as written, so a letter doubled at the join still splits
        ('teennude' = teen + nude); each piece is compared by its skeleton."""
        if len(word) > 48 or not word.isalpha():
            return
        pieces: list[tuple[str, ...] | None] = [None] * (len(word) + 1)
        pieces[0] = ()
        for i in range(len(word) - 2):
            before = pieces[i]
            if before is None or len(before) >= 4:
                continue
            skel = ""
            for j in range(i + 1, len(word) + 1):
                letter = word[j - 1]
                if skel[-1:] != letter:
                    skel += letter
                    if len(skel) > self._glue_longest:
                        break
                    if len(skel) == 3 and skel not in self._glue_heads:
                        break
                if len(skel) >= 3 and pieces[j] is None and skel in self._glue:
                    pieces[j] = (*before, skel)
        glued = pieces[len(word)]
        if glued is None or len(glued) < 2:
            return
        for piece in glued:
            for entry in self._table[piece]:
                found.append(Hit(entry.kinds & ~INNOCENT, index, index + 1, entry.term))

    def cjk_matches(self, compact: str) -> list[Hit]:
        if self._cjk_re is None or not compact:
            return []
        return [
            Hit(self._cjk[m.group(0)], m.start(), m.end(), m.group(0), cjk=True)
            for m in self._cjk_re.finditer(compact)
        ]

    def _match_words(self, reading: Reading, found: list[Hit]) -> None:
        words, skeletons = reading.words, reading.skeletons
        for i, first in enumerate(skeletons):
            for n in self._lengths.get(first, ()):
                if i + n > len(words):
                    break
                key = first if n == 1 else " ".join(skeletons[i : i + n])
                for entry in self._table.get(key, ()):
                    if all(map(_covers, map(_runs, words[i : i + n]), entry.runs)):
                        found.append(Hit(entry.kinds, i, i + n, entry.term))

    def _match_inside(self, word: str, index: int, found: list[Hit]) -> None:
        """Terms anywhere inside letters someone spaced out on purpose ('c h i l d n u d e')."""
        skel = skeleton(word)
        for key in self._singles:
            if key in skel:
                for match in _repeat_pattern(key).finditer(word):
                    for entry in self._table[key]:
                        if _covers(_runs(match.group(0)), entry.runs[0]):
                            found.append(Hit(entry.kinds & ~INNOCENT, index, index + 1, entry.term))


@dataclass(frozen=True)
class Found:
    """What one text contains, innocent phrases already taken out; terms in normalised form."""

    minor: tuple[str, ...] = ()
    sexual: tuple[str, ...] = ()
    nudity: tuple[str, ...] = ()
    clothing: tuple[str, ...] = ()  # garments not preceded by a negation
    unclothed: tuple[str, ...] = ()  # "without a shirt": negation + garment


def _add(bucket: dict[str, None], term: str) -> None:
    bucket.setdefault(term, None)


class Lexicon:
    """The compiled lists. Build with `load_lexicon` (or `default_lexicon()`); thread-safe."""

    def __init__(self, data: ListData) -> None:
        from fedibot.moderation.guard.ages import AgeFinder

        self.sources = tuple(data.sources)
        self.terms = {key: tuple(dict.fromkeys(values)) for key, values in data.terms.items()}
        self._index = _Index(self.terms)
        self.ages = AgeFinder(data.numbers, data.ages)

    def scan(self, normalised: Normalised) -> Found:
        buckets: dict[int, dict[str, None]] = {k: {} for k in SECTIONS.values()}
        unclothed: dict[str, None] = {}
        for reading in normalised.readings:
            hits = self._index.matches(reading)
            self._collect(hits, buckets, unclothed)
        cjk_hits = self._index.cjk_matches(normalised.compact)
        self._collect(cjk_hits, buckets, unclothed)
        return Found(
            minor=tuple(buckets[MINOR]),
            sexual=tuple(buckets[SEXUAL]),
            nudity=tuple(buckets[NUDITY]),
            clothing=tuple(buckets[CLOTHING]),
            unclothed=tuple(unclothed),
        )

    @staticmethod
    def _collect(
        hits: list[Hit], buckets: dict[int, dict[str, None]], unclothed: dict[str, None]
    ) -> None:
        if not hits:
            return
        innocent = {i for h in hits if h.kinds & INNOCENT for i in range(h.start, h.end)}
        kept = [
            h for h in hits if not h.kinds & INNOCENT and innocent.isdisjoint(range(h.start, h.end))
        ]
        negations = [h for h in kept if h.kinds & NEGATION and not h.cjk]
        for hit in kept:
            negated = hit.kinds & CLOTHING and any(
                0 <= hit.start - n.end < NEGATION_REACH and not n.kinds & CLOTHING
                for n in negations
            )
            if negated:
                _add(unclothed, hit.term)
            for kind in (MINOR, SEXUAL, NUDITY, CLOTHING):
                if hit.kinds & kind and not (kind == CLOTHING and negated):
                    _add(buckets[kind], hit.term)


def load_lexicon(
    paths: Iterable[str | Path] = (),
    *,
    defaults: bool = True,
    extra: Mapping[str, Iterable[str]] | None = None,
) -> Lexicon:
    """The shipped lists (unless `defaults` is false), then every TOML file in `paths` (files
    or folders of *.toml), then `extra` section -> terms (e.g. from config)."""
    data = ListData()
    if defaults:
        for name, text in shipped_files():
            data.merge_file(Path("fedibot/moderation/guard/data") / name, text)
    for path in _list_files(paths):
        data.merge_file(path, path.read_text("utf-8"))
    for section, terms in (extra or {}).items():
        if section not in SECTIONS:
            raise LexiconError(f"unknown list section {section!r}")
        data.terms[section].extend(terms)
    return Lexicon(data)


@cache
def default_lexicon() -> Lexicon:
    """The shipped lists only, built once."""
    return load_lexicon()
