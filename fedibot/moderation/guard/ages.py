"""Age expressions: "10 years old", "aged 9", "12yo", "ten-year-old", "5th grader", "十岁".

Patterns come from the list files (`[ages]`, with one `{n}` slot) and so do number words
(`[numbers]`). Three kinds:

- `years`: the number is an age; under 18 is a minor ("{n} years old", "aged {n}");
- `grades`: the number is a school grade; 12 or below is a minor ("{n} grader", "klasse {n}");
- `months`: any number is a minor ("{n} months old").

A pattern is normalised like every other entry (case, accents, confusables) and compiled to a
regular expression over the normalised text: between its words any run of spaces and
punctuation (or none) is accepted, so "13-year-old", "13 year old" and "13yearold" all match
"{n} year old", and "9 y/o", "9 y.o." and "9yo" all match "{n} y/o". A pattern ending in `*`
accepts any ending ("{n} jährig*"). The slot takes digits (not part of a longer number or a
decimal: "112 yo" and "1.12 yo" are not 12), number words, compounds of number words
("twenty-one", "vingt et un", "двадцать один" are 21) and Chinese/Japanese numerals ("十二").
Digits may carry an ordinal ending in grade patterns ("5th", "5e", "5º", "5.").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from fedibot.moderation.guard.normalize import fold, is_east_asian

ADULT_AGE = 18
LAST_MINOR_GRADE = 12
_REACH = 40  # characters around a number that an age pattern may span
_SEP = r"[\W_]*"
_ORDINAL = r"(?:st|nd|rd|th|e|er|re|eme|ieme|o|a|\.|°)?"
_CONNECTOR_RE = re.compile(r"[\W_]*(?:(?<=[\W_])(?:and|und|et|y|e|i|и)(?=[\W_]))?[\W_]*")
_DIGITS = re.compile(r"(?<!\d)(?<!\d[.,])\d{1,3}(?!\d)(?![.,]\d)")
_WORDS = re.compile(r"[^\W\d_]+")


@dataclass(frozen=True)
class Age:
    kind: str  # "years", "grades" or "months"
    value: int
    text: str  # the normalised words that matched

    @property
    def minor(self) -> bool:
        if self.kind == "months":
            return True
        if self.kind == "grades":
            return 0 <= self.value <= LAST_MINOR_GRADE
        return self.value < ADULT_AGE


def _side(text: str, reverse: bool = False) -> str:
    """One side of a pattern as a regex: its words with any separator between them
    (`reverse`: for matching the reversed text, words and letters backwards)."""
    star = text.rstrip().endswith("*") and not reverse
    words = [w for w in re.split(r"[\W_]+", fold(text.rstrip().rstrip("*"))) if w]
    if reverse:
        words = [w[::-1] for w in reversed(words)]
    body = _SEP.join(re.escape(w) for w in words)
    return body + (r"\w*" if star and body else "")


def _latin_end(text: str, last: bool) -> bool:
    stripped = re.sub(r"[\W_]+", "", text)
    if not stripped:
        return False
    char = stripped[-1] if last else stripped[0]
    return char.isalpha() and not is_east_asian(char)


@dataclass(frozen=True)
class _Number:
    start: int
    end: int
    value: int


@dataclass(frozen=True)
class _Pattern:
    kind: str
    left: re.Pattern[str] | None  # must end right before the number (matched reversed)
    right: re.Pattern[str] | None  # must start right after it


def _alternation(regexes: Iterable[str]) -> re.Pattern[str] | None:
    unique = list(dict.fromkeys(regexes))
    return re.compile("(?:" + "|".join(unique) + ")") if unique else None


class AgeFinder:
    """Compiled age patterns; `find(text)` on text already folded (normalize.fold).

    Numbers are found first (digits, number words looked up in a dict, CJK numerals); only
    around them are the patterns tried, anchored at the number, so a long prompt costs
    little more than finding its numbers.
    """

    def __init__(self, numbers: Mapping[str, int], patterns: Mapping[str, Iterable[str]]):
        self._numbers: dict[str, int] = {}
        self._cjk_digits: dict[str, int] = {}
        for word, value in numbers.items():
            key = fold(word).strip()
            if len(key) == 1 and is_east_asian(key):
                self._cjk_digits[key] = value
            elif key:
                self._numbers[key] = value
        self._longest_word = max(map(len, self._numbers), default=0)
        self._heads = {word[:3] for word in self._numbers if len(word) >= 3}
        cjk = "".join(map(re.escape, self._cjk_digits))
        self._cjk_run = re.compile(f"[{cjk}]{{1,4}}") if cjk else None
        self._patterns: list[_Pattern] = []
        for kind, entries in patterns.items():
            for pattern in dict.fromkeys(entries):
                left, right = pattern.split("{n}")
                left_re = right_re = None
                if left.strip():  # matched backwards on the reversed text before the number
                    start = r"(?![^\W\d_])" if _latin_end(left, last=False) else ""
                    left_re = _SEP + _side(left, reverse=True) + start
                if right.strip():
                    end = r"(?![^\W\d_])" if _latin_end(right, last=True) else ""
                    if right.rstrip().endswith("*"):
                        end = ""
                    ordinal = _ORDINAL if kind == "grades" else ""
                    right_re = ordinal + _SEP + _side(right) + end
                self._patterns.append(
                    _Pattern(
                        kind,
                        re.compile(left_re) if left_re else None,
                        re.compile(right_re) if right_re else None,
                    )
                )
        self._any_left = _alternation(p.left.pattern for p in self._patterns if p.left)
        self._any_right = _alternation(p.right.pattern for p in self._patterns if p.right)

    def value(self, number: str) -> int | None:
        """'12' -> 12, 'twenty-one' -> 21, '十二' -> 12; None when not a number."""
        number = fold(number).strip()
        if number.isdigit():
            return int(number)
        if number and all(ch in self._cjk_digits for ch in number):
            return self._cjk_value(number)
        parts = [p for p in re.split(r"[\W_]+", number) if p]
        values = [self._numbers[p] for p in parts if p in self._numbers]
        return sum(values) if values else None

    def _cjk_value(self, number: str) -> int:
        total, current = 0, 0
        for ch in number:
            digit = self._cjk_digits[ch]
            if digit >= 10:
                total += (current or 1) * digit
                current = 0
            else:
                current = current * 10 + digit if current else digit
        return total + current

    def _candidates(self, text: str) -> list[_Number]:
        found: list[_Number] = [
            _Number(m.start(), m.end(), int(m.group(0))) for m in _DIGITS.finditer(text)
        ]
        words: list[_Number] = []
        if self._numbers:
            for m in _WORDS.finditer(text):
                word = m.group(0)
                value = self._numbers.get(word)
                if value is not None:
                    last = words[-1] if words else None
                    if last and _CONNECTOR_RE.fullmatch(text, last.end, m.start()):
                        words[-1] = _Number(last.start, m.end(), last.value + value)
                    else:
                        words.append(_Number(m.start(), m.end(), value))
                    continue
                if word[:3] not in self._heads:
                    continue
                for size in range(min(len(word) - 1, self._longest_word), 2, -1):
                    value = self._numbers.get(word[:size])  # glued: "zehnjährig"
                    if value is not None:
                        words.append(_Number(m.start(), m.start() + size, value))
                        break
        found.extend(words)
        if self._cjk_run is not None:
            found.extend(
                _Number(m.start(), m.end(), self._cjk_value(m.group(0)))
                for m in self._cjk_run.finditer(text)
            )
        return found

    def find(self, text: str) -> list[Age]:
        """Every age expression in `text` (already folded)."""
        if not self._patterns:
            return []
        ages: dict[Age, None] = {}
        for number in self._candidates(text):
            before = text[max(0, number.start - _REACH) : number.start][::-1]
            has_left = bool(self._any_left and self._any_left.match(before))
            has_right = bool(self._any_right and self._any_right.match(text, number.end))
            if not (has_left or has_right):
                continue
            for pattern in self._patterns:
                begin, end = number.start, number.end
                if pattern.left:
                    if not has_left:
                        continue
                    m = pattern.left.match(before)
                    if not m:
                        continue
                    begin = number.start - m.end()
                if pattern.right:
                    if not has_right:
                        continue
                    m = pattern.right.match(text, number.end)
                    if not m:
                        continue
                    end = m.end()
                words = " ".join(w for w in re.split(r"[\W_]+", text[begin:end]) if w)
                ages.setdefault(Age(pattern.kind, number.value, words), None)
        return list(ages)

    def minors(self, text: str) -> list[str]:
        """The age expressions in `text` that describe a minor, as normalised words."""
        return list(dict.fromkeys(age.text for age in self.find(text) if age.minor))
