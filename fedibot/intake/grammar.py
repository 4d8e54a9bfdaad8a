"""The prompt grammar: the text of a mention -> a `ParsedRequest` or a `PromptError`.

Input is the plain text of a mention with the bot's own @-mention already removed. Free text
is the prompt; options may appear anywhere:

    --neg TEXT | ### TEXT   negative prompt (runs to the next option or the end)
    --n 1..max_n  --seed INT  --steps N  --cfg X  --size WxH | --ar W:H
    --model NAME  --style NAME  --private  --help
    --qr TEXT  --qr-position center|top-left|top-right|bottom-left|bottom-right
    --qr-module PIXELS  --strength 0..1 (image-to-image, with a picture)

Variants people actually type are accepted: an em/en dash instead of `--` (phones turn `--`
into `—`), `--n=2`, `--N 2`, `--n2`, quoted values ("..." '...' “...” «...»). `help` alone is
a Help command, `delete` a Delete command, `again` (optionally followed by options only) an
Again command; whether those refer to a bot result is the caller's business.

Only syntax and config-independent ranges are checked here (n, seed, model and style names,
lengths); model-specific limits on size/steps/cfg are checked by the caller against the
model's preset, so the raw values are kept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fedibot.config.prompt import PromptConfig, StyleTemplate

Command = Literal["generate", "help", "again", "delete"]
ErrorCode = Literal[
    "bad_option", "empty_prompt", "prompt_too_long", "unknown_model", "unknown_style"
]

MAX_SEED = 2**32 - 1
MAX_STEPS = 1000
MAX_CFG = 100.0
MAX_SIDE = 16384
MAX_ASPECT = 10
MAX_QR_CHARS = 500
MAX_QR_MODULE = 64
QR_POSITIONS = ("center", "top-left", "top-right", "bottom-left", "bottom-right")


class PromptError(ValueError):
    """A request the grammar refuses; `message` says what was wrong and what is allowed."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message

    def __repr__(self) -> str:
        return f"PromptError(code={self.code!r}, message={self.message!r})"


@dataclass(frozen=True)
class ParsedRequest:
    """One parsed mention. Options not given are None (the caller applies defaults)."""

    command: Command
    prompt: str = ""
    negative_prompt: str = ""
    n: int | None = None
    seed: int | None = None
    steps: int | None = None
    cfg: float | None = None
    size: tuple[int, int] | None = None
    aspect: tuple[int, int] | None = None
    model: str | None = None
    style: str | None = None
    private: bool = False
    qr: str | None = None
    qr_position: str | None = None
    qr_module: int | None = None
    strength: float | None = None


@dataclass(frozen=True)
class PromptRules:
    """What `parse` validates against. Model and style names match case-insensitively."""

    max_n: int = 4
    max_prompt_chars: int = 1000
    models: tuple[str, ...] = ()
    styles: tuple[str, ...] = ()
    unlisted_models: tuple[str, ...] = ()  # accepted but not offered in help (the test model)
    size_example: str = "256x192"  # a --size the default model takes (for the usage text)
    _model_index: dict[str, str] = field(init=False, repr=False, compare=False)
    _style_index: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "styles", tuple(self.styles))
        object.__setattr__(self, "_model_index", {m.casefold(): m for m in self.models})
        object.__setattr__(self, "_style_index", {s.casefold(): s for s in self.styles})

    @classmethod
    def from_config(
        cls, config: PromptConfig, models: Iterable[str], default_preset: Any = None
    ) -> PromptRules:
        """`default_preset` (the default model's ModelPreset) sizes the usage's example."""
        example = cls.size_example
        if default_preset is not None:
            width = default_preset.max_width
            height = max(64, min(default_preset.max_height, width * 3 // 4 // 8 * 8))
            example = f"{width}x{height}"
        return cls(
            max_n=config.max_n,
            max_prompt_chars=config.max_prompt_chars,
            models=tuple(models),
            styles=tuple(config.styles),
            unlisted_models=tuple(
                name
                for name, model in (models.items() if isinstance(models, Mapping) else ())
                if getattr(model, "kind", None) == "tiny"
            ),
            size_example=example,
        )

    def model_name(self, name: str) -> str | None:
        return self._model_index.get(name.casefold())

    def style_name(self, name: str) -> str | None:
        return self._style_index.get(name.casefold())


# --- text clean-up -------------------------------------------------------------------------

# Zero-width and soft-hyphen characters (not ZWJ: it holds emoji sequences together).
_INVISIBLE = dict.fromkeys(
    map(ord, "\u200b\u200c\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e"), None
)
_MENTION = re.compile(
    r"(?<![\w@/])@[A-Za-z0-9_][A-Za-z0-9_.-]*(?:@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)?"
)

_OPTION_NAMES = (
    "n",
    "seed",
    "steps",
    "cfg",
    "size",
    "ar",
    "model",
    "style",
    "neg",
    "negative",
    "private",
    "help",
    "qr-position",
    "qr-module",
    "qr",
    "strength",
)
_VALUE_OPTIONS = frozenset(
    {"n", "seed", "steps", "cfg", "size", "ar", "model", "style"}
    | {"qr", "qr-position", "qr-module", "strength"}
)
# A dash character (or two) that a phone made out of `--`, before a known option name.
_DASH_OPTION = re.compile(
    r"(?<!\S)(?:[—–―−‒]|[-—–―−‒]{2})(?=(?:" + "|".join(_OPTION_NAMES) + r")(?![A-Za-z]))",
    re.IGNORECASE,
)
_MARKER = re.compile(r"(?<!\S)--(?P<name>[A-Za-z]+(?:-[A-Za-z]+)*)(?P<eq>\s*=)?|(?P<hashes>#{3,})")
_QUOTES = {
    '"': '"”“',
    "“": '”“"',
    "”": '”“"',
    "„": '“”"',
    "«": "»",
    "»": "«",
    "'": "'’",
    "‘": "’'",
    "’": "’'",
}
_TRAILING_PUNCT = ",;.!?"
_SIZE = re.compile(r"\s*[\"'“”]?(\d{1,6})\s*[x×X*]\s*(\d{1,6})[\"'“”]?(?=[\s,;.!?]|$)")
_ASPECT = re.compile(
    r"\s*[\"'“”]?(\d{1,4}(?:[.,]\d{1,3})?)\s*[:/x×X]\s*(\d{1,4}(?:[.,]\d{1,3})?)[\"'“”]?"
    r"(?=[\s,;.!?]|$)"
)
_AGAIN = re.compile(r"^again\b[\s.!]*", re.IGNORECASE)
_WORD_ONLY = re.compile(r"^\W*(\w+)[\s.!?]*$")


def _clean(text: str) -> str:
    text = text.translate(_INVISIBLE)
    text = _MENTION.sub(" ", text)
    return _DASH_OPTION.sub("--", text)


def _tidy(text: str) -> str:
    return " ".join(text.split()).strip(" ,;")


# --- scanning ------------------------------------------------------------------------------


@dataclass
class _Scan:
    free: list[str] = field(default_factory=list)
    negative: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    private: bool = False
    help: bool = False


def _read_value(text: str, pos: int) -> tuple[str | None, int, bool]:
    """Read one option value from `pos`: (value or None, end, whether it was quoted)."""
    length = len(text)
    while pos < length and text[pos].isspace():
        pos += 1
    if pos >= length or _MARKER.match(text, pos):
        return None, pos, False
    closers = _QUOTES.get(text[pos])
    if closers is not None:
        end = next((i for i in range(pos + 1, length) if text[i] in closers), -1)
        if end != -1:
            return text[pos + 1 : end].strip(), end + 1, True
        pos += 1  # an unmatched quote: take the bare word after it
    end = pos
    while end < length and not text[end].isspace():
        end += 1
    return text[pos:end].rstrip(_TRAILING_PUNCT) or None, end, False


_GLUED = re.compile(r"\w")  # a flag followed by more word characters: `--private7`
_TOKEN_END = re.compile(r"\S*")


def _scan(text: str, rules: PromptRules, *, strict: bool = True) -> _Scan:
    """Split `text` into prompt, negative prompt and option values. With `strict=False`
    nothing is refused: bad options are skipped (used by `wants_private`)."""
    scan = _Scan()
    pos = 0
    in_negative = False
    length = len(text)
    while pos < length:
        marker = _MARKER.search(text, pos)
        chunk = text[pos : marker.start() if marker else length]
        (scan.negative if in_negative else scan.free).append(chunk)
        if marker is None:
            break
        in_negative = False
        pos = marker.end()
        name = (marker.group("name") or "").lower()
        if marker.group("hashes") or name in ("neg", "negative"):
            value, after, quoted = _read_value(text, pos)
            if quoted:
                scan.negative.append(value or "")
                pos = after
            else:
                in_negative = True
            continue
        if name in ("help", "private") and not marker.group("eq") and _GLUED.match(text, pos):
            # `--private7` is not the option `--private` (nor prompt text: say so)
            token = _TOKEN_END.match(text, pos)
            glued = text[pos : token.end() if token else pos]
            pos += len(glued)
            if strict:
                raise PromptError("bad_option", f"unknown option --{name}{glued}. {_OPTIONS_HINT}")
            continue
        if name == "help":
            scan.help = True
            continue
        if name == "private":
            try:
                scan.private = _read_private(text, marker, pos)
            except PromptError:
                if strict:
                    raise
                scan.private = True  # `--private=maybe`: refused, but clearly meant private
            if marker.group("eq"):
                _, pos, _ = _read_value(text, pos)
            continue
        try:
            if name not in _VALUE_OPTIONS:
                raise PromptError("bad_option", f"unknown option --{name}. {_OPTIONS_HINT}")
            if name in scan.values:
                raise PromptError("bad_option", f"--{name} was given twice; give it once")
            value, pos = _read_option_value(text, name, pos, rules)
        except PromptError:
            if strict:
                raise
            continue
        scan.values[name] = value
    return scan


def wants_private(text: str) -> bool:
    """Whether the text of a mention carries the `--private` option, exactly as `parse`
    reads it (same clean-up, same tokens) but also when `parse` refuses the request, so a
    refusal goes out as privately as the request asked. The only `--private` recogniser."""
    return _scan(_clean(text), PromptRules(), strict=False).private


def _read_private(text: str, marker: re.Match[str], pos: int) -> bool:
    if not marker.group("eq"):
        return True
    value, _, _ = _read_value(text, pos)
    word = (value or "").casefold()
    if word in ("yes", "true", "on", "1"):
        return True
    if word in ("no", "false", "off", "0"):
        return False
    raise PromptError(
        "bad_option", f"--private takes no value (or yes/no); got {_show(value or '')}"
    )


def _read_option_value(text: str, name: str, pos: int, rules: PromptRules) -> tuple[str, int]:
    pattern = {"size": _SIZE, "ar": _ASPECT}.get(name)
    if pattern is not None:
        match = pattern.match(text, pos)
        if match:
            separator = "x" if name == "size" else ":"
            return f"{match.group(1)}{separator}{match.group(2)}", match.end()
    value, end, _ = _read_value(text, pos)
    if value is None:
        allowed = _ALLOWED[name].format(max_n=rules.max_n)
        raise PromptError("bad_option", f"--{name} needs a value: {allowed}")
    return value, end


# --- values --------------------------------------------------------------------------------

_ALLOWED = {
    "n": "a whole number from 1 to {max_n}",
    "seed": f"a whole number from 0 to {MAX_SEED}",
    "steps": f"a whole number from 1 to {MAX_STEPS}",
    "cfg": f"a number from 0 to {MAX_CFG:g}, e.g. 7 or 4.5",
    "size": "width x height in pixels, e.g. 256x192",
    "ar": f"an aspect ratio W:H, e.g. 16:9 or 2:3 (at most {MAX_ASPECT}:1)",
    "model": "the name of one of the bot's models",
    "style": "the name of one of the bot's styles",
    "qr": f"the text or link the QR code holds, at most {MAX_QR_CHARS} characters "
    '(quote it if it has spaces: --qr "hello world")',
    "qr-position": "one of " + ", ".join(QR_POSITIONS),
    "qr-module": f"the size of one QR square in pixels, a whole number from 2 to {MAX_QR_MODULE}",
    "strength": "a number above 0 and at most 1 (how much of your picture is redrawn), e.g. 0.6",
}
_OPTIONS_HINT = (
    "Options: --neg, --n, --seed, --steps, --cfg, --size, --ar, --model, --style, --private, "
    "--qr, --qr-position, --qr-module, --strength; "
    "reply 'help' for details."
)


def _show(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _bad(name: str, value: str, rules: PromptRules) -> PromptError:
    allowed = _ALLOWED[name].format(max_n=rules.max_n)
    return PromptError("bad_option", f"--{name} must be {allowed} (got {_show(value)})")


def _whole(name: str, value: str, low: int, high: int, rules: PromptRules) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, rules) from None
    if not low <= number <= high:
        raise _bad(name, value, rules)
    return number


def _cfg(value: str, rules: PromptRules) -> float:
    try:
        number = float(value.replace(",", "."))
    except ValueError:
        raise _bad("cfg", value, rules) from None
    if not math.isfinite(number) or not 0.0 <= number <= MAX_CFG:
        raise _bad("cfg", value, rules)
    return number


def _size(value: str, rules: PromptRules) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d{1,6})\s*[x×X*:]\s*(\d{1,6})\s*", value)
    if not match:
        raise _bad("size", value, rules)
    # Too small or too large is for the model to say, with its own range (resolve_options).
    return int(match.group(1)), int(match.group(2))


def _ratio_part(text: str) -> tuple[int, int]:
    """'2.35' -> (235, 100): an exact integer numerator/denominator."""
    whole, _, frac = text.replace(",", ".").partition(".")
    return int(whole + frac), 10 ** len(frac)


def _aspect(value: str, rules: PromptRules) -> tuple[int, int]:
    match = re.fullmatch(
        r"\s*(\d{1,4}(?:[.,]\d{1,3})?)\s*[:/x×X]\s*(\d{1,4}(?:[.,]\d{1,3})?)\s*", value
    )
    if not match:
        raise _bad("ar", value, rules)
    (wn, wd), (hn, hd) = _ratio_part(match.group(1)), _ratio_part(match.group(2))
    width, height = wn * hd, hn * wd
    if width <= 0 or height <= 0 or max(width, height) > MAX_ASPECT * min(width, height):
        raise _bad("ar", value, rules)
    divisor = math.gcd(width, height)
    return width // divisor, height // divisor


def _strength(value: str, rules: PromptRules) -> float:
    try:
        number = float(value.replace(",", "."))
    except ValueError:
        raise _bad("strength", value, rules) from None
    if not math.isfinite(number) or not 0.0 < number <= 1.0:
        raise _bad("strength", value, rules)
    return number


def _qr(value: str, rules: PromptRules) -> str:
    text = value.strip()
    if not text or len(text) > MAX_QR_CHARS:
        raise _bad("qr", value, rules)
    return text


def _qr_position(value: str, rules: PromptRules) -> str:
    word = value.strip().casefold().replace("_", "-").replace(" ", "-")
    word = {"centre": "center", "middle": "center"}.get(word, word)
    if word not in QR_POSITIONS:
        raise _bad("qr-position", value, rules)
    return word


def _name_list(names: tuple[str, ...], limit: int = 12) -> str:
    if not names:
        return "none are configured"
    shown = ", ".join(names[:limit])
    return shown + (", …" if len(names) > limit else "")


def _model(value: str, rules: PromptRules) -> str:
    name = rules.model_name(value)
    if name is None:
        raise PromptError(
            "unknown_model",
            f"there is no model called {_show(value)}; available: {_name_list(rules.models)}",
        )
    return name


def _style(value: str, rules: PromptRules) -> str:
    name = rules.style_name(value)
    if name is None:
        raise PromptError(
            "unknown_style",
            f"there is no style called {_show(value)}; available: {_name_list(rules.styles)}",
        )
    return name


# --- public API ----------------------------------------------------------------------------


def parse(text: str, rules: PromptRules) -> ParsedRequest:
    """Parse the text of a mention. Raises only `PromptError`."""
    if len(text) > 4 * rules.max_prompt_chars + 2000:  # bounds the work done on hostile input
        raise PromptError(
            "prompt_too_long",
            f"the message is {len(text)} characters long; "
            f"prompts may have at most {rules.max_prompt_chars}",
        )
    cleaned = _clean(text).strip()
    word = _WORD_ONLY.match(cleaned)
    if word:
        keyword = word.group(1).casefold()
        if keyword == "help":
            return ParsedRequest(command="help")
        if keyword == "delete":
            return ParsedRequest(command="delete")
    again = _AGAIN.match(cleaned)
    if again:
        scan = _scan(cleaned[again.end() :], rules)
        if not _tidy(" ".join(scan.free)):  # options only: a re-roll with overrides
            return _build("again", scan, rules)
    return _build("generate", _scan(cleaned, rules), rules)


def _build(command: Command, scan: _Scan, rules: PromptRules) -> ParsedRequest:
    if scan.help:
        return ParsedRequest(command="help")
    prompt = _tidy(" ".join(scan.free))
    negative = _tidy(", ".join(part for part in map(_tidy, scan.negative) if part))
    values = scan.values
    request = ParsedRequest(
        command=command,
        prompt=prompt,
        negative_prompt=negative,
        n=_whole("n", values["n"], 1, rules.max_n, rules) if "n" in values else None,
        seed=_whole("seed", values["seed"], 0, MAX_SEED, rules) if "seed" in values else None,
        steps=_whole("steps", values["steps"], 1, MAX_STEPS, rules) if "steps" in values else None,
        cfg=_cfg(values["cfg"], rules) if "cfg" in values else None,
        size=_size(values["size"], rules) if "size" in values else None,
        aspect=_aspect(values["ar"], rules) if "ar" in values else None,
        model=_model(values["model"], rules) if "model" in values else None,
        style=_style(values["style"], rules) if "style" in values else None,
        private=scan.private,
        qr=_qr(values["qr"], rules) if "qr" in values else None,
        qr_position=_qr_position(values["qr-position"], rules) if "qr-position" in values else None,
        qr_module=(
            _whole("qr-module", values["qr-module"], 2, MAX_QR_MODULE, rules)
            if "qr-module" in values
            else None
        ),
        strength=_strength(values["strength"], rules) if "strength" in values else None,
    )
    if request.size is not None and request.aspect is not None:
        raise PromptError("bad_option", "use either --size or --ar, not both")
    if request.qr is None and (request.qr_position or request.qr_module):
        option = "--qr-position" if request.qr_position else "--qr-module"
        raise PromptError("bad_option", f"{option} only works together with --qr TEXT")
    if command == "generate" and not any(ch.isalnum() for ch in prompt):
        raise PromptError(
            "empty_prompt",
            "the prompt is empty: write what the picture should show, "
            "e.g. 'a red fox in the snow --n 2'. Reply 'help' for the options.",
        )
    for label, value in (("prompt", prompt), ("negative prompt", negative)):
        if len(value) > rules.max_prompt_chars:
            raise PromptError(
                "prompt_too_long",
                f"the {label} is {len(value)} characters long; "
                f"at most {rules.max_prompt_chars} are allowed",
            )
    return request


def request_from_fields(
    prompt: str, rules: PromptRules, *, negative: str = "", **options: object
) -> ParsedRequest:
    """A request whose options come as separate fields (`fedibot generate --seed 5 ...`),
    validated exactly like a mention's: the same rules, the same messages."""
    values = {name: str(value) for name, value in options.items() if value is not None}
    unknown = sorted(set(values) - _VALUE_OPTIONS)
    if unknown:
        raise ValueError(f"not request options: {', '.join(unknown)}")
    scan = _Scan(free=[prompt], negative=[negative] if negative else [], values=values)
    return _build("generate", scan, rules)


def apply_style(parsed: ParsedRequest, styles: Mapping[str, StyleTemplate]) -> tuple[str, str]:
    """The final (prompt, negative prompt): the request's style filled in, or both unchanged."""
    if parsed.style is None:
        return parsed.prompt, parsed.negative_prompt
    by_name = {name.casefold(): template for name, template in styles.items()}
    template = by_name.get(parsed.style.casefold())
    if template is None:
        raise PromptError(
            "unknown_style",
            f"there is no style called {_show(parsed.style)}; "
            f"available: {_name_list(tuple(styles))}",
        )
    return template.render(parsed.prompt, parsed.negative_prompt)


USAGE_LIMIT = 450


def usage_text(rules: PromptRules) -> str:
    """Short usage for a reply (at most 450 characters, so it fits in a toot with a mention)."""
    head = (
        'Mention me with what you want to see, e.g. "a fox in the snow --n 2".\n'
        f"Options: --n 1-{rules.max_n}, --seed N, --steps N, --cfg 7, "
        f"--size {rules.size_example} or "
        "--ar 3:2, --neg TEXT (or ### TEXT), --model NAME, --style NAME, --private, "
        "--qr LINK (a QR code in the picture), --strength 0.6 (with a picture).\n"
    )
    listed = tuple(m for m in rules.models if m not in rules.unlisted_models)
    tail = 'Reply "again" to re-roll, "delete" to remove a result.'
    for limit in (8, 5, 3, 2, 1, 0):
        lists = ""
        if listed and limit:
            lists += f"Models: {_name_list(listed, limit)}.\n"
        if rules.styles and limit:
            lists += f"Styles: {_name_list(rules.styles, limit)}.\n"
        text = head + lists + tail
        if len(text) <= USAGE_LIMIT:
            return text
    return (head + tail)[:USAGE_LIMIT]


HELP_MARKDOWN = """\
### Asking the bot for a picture

Mention the bot (or send it a direct message) with a description of the picture:

    @bot a red fox in the snow, watercolor --n 2 --ar 3:2

Everything that is not an option is the **prompt**. Options can go anywhere in the text;
`—n` (a phone's em dash), `--n=2`, `--N 2` and quoted values (`--model "sdxl turbo"`) all work.

| option | meaning |
|---|---|
| `--neg TEXT` or `### TEXT` | negative prompt: what should *not* be in the picture |
| `--n 1..4` | how many images (the admin may allow fewer) |
| `--seed INT` | a seed from 0 to 4294967295, to repeat a result |
| `--steps N` | sampling steps (the model sets the allowed range) |
| `--cfg X` | guidance scale, e.g. `7` or `4.5` |
| `--size WxH` | exact size in pixels within the model's limits, e.g. `256x192` |
| `--ar W:H` | aspect ratio, e.g. `16:9`; the bot picks a size of the model's usual area |
| `--model NAME` | one of the bot's models |
| `--style NAME` | one of the bot's styles (templates such as `photo`, `anime`, `pixel`) |
| `--private` | reply with a direct message instead of in the thread |
| `--qr TEXT` | put a scannable QR code holding TEXT (e.g. a link) into the picture |
| `--qr-position P` | `center` (default), `top-left`, `top-right`, `bottom-left`, `bottom-right` |
| `--qr-module N` | size of one QR square in pixels (2-64); default: as large as fits nicely |
| `--strength X` | with a picture attached: how much of it is redrawn, 0-1 (default 0.6) |

Commands:

- `help` — the bot replies with a short usage message.
- `again` — as a reply to one of the bot's results: the same request with new seeds.
  Options may follow to change things, e.g. `again --n 4 --style anime`.
- `delete` — as a reply to one of the bot's results: the bot deletes it
  (only the person who asked for it may do this).

The reply is never more public than the request: a direct message gets a direct reply,
a followers-only post a followers-only reply.
"""
