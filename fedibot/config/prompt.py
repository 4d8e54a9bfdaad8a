"""Config models for the prompt grammar (`[prompt]`) and the prompt filter (`[prompt_filter]`).

Plain pydantic models; the lead composes them into the top-level config. No imports of the
parser or the filter here, so loading config stays cheap and free of cycles.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
STYLE_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"

StyleName = Annotated[str, StringConstraints(pattern=STYLE_NAME_PATTERN)]


def _check_placeholders(value: str, allowed: str, where: str) -> None:
    for name in _PLACEHOLDER.findall(value):
        if name != allowed:
            other = "negative" if allowed == "p" else "prompt"
            hint = f" ({{{name}}} belongs in '{other}')" if name in ("p", "np") else ""
            raise ValueError(
                f"unknown placeholder {{{name}}} in the style's {where}{hint}; "
                f"only {{{allowed}}} is allowed there"
            )


class StyleTemplate(BaseModel):
    """A style: `prompt` wraps the user's prompt (`{p}`), `negative` the user's negative (`{np}`).

    Placeholders are substituted literally (not with str.format), so other braces in the text
    are refused to avoid silent surprises.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str = Field("{p}", min_length=3, max_length=2000, description="must contain {p}")
    negative: str = Field("{np}", min_length=4, max_length=2000, description="must contain {np}")

    @field_validator("prompt")
    @classmethod
    def _prompt_has_p(cls, value: str) -> str:
        _check_placeholders(value, "p", "prompt")
        if "{p}" not in value:
            raise ValueError("a style's prompt must contain {p} (where the user's prompt goes)")
        return value

    @field_validator("negative")
    @classmethod
    def _negative_has_np(cls, value: str) -> str:
        _check_placeholders(value, "np", "negative")
        if "{np}" not in value:
            raise ValueError(
                "a style's negative must contain {np} (where the user's negative prompt goes), "
                "e.g. '{np}, blurry, lowres'"
            )
        return value

    def render(self, prompt: str, negative: str) -> tuple[str, str]:
        """Fill the template; with an empty user negative the separators around `{np}` vanish."""
        filled_prompt = _tidy(self.prompt.replace("{p}", prompt))
        filled_negative = _tidy(self.negative.replace("{np}", negative))
        return filled_prompt, filled_negative


_SEPARATOR_RUNS = re.compile(r"(?:\s*,\s*)+,")


def _tidy(text: str) -> str:
    """Collapse the ', ,' and leading/trailing commas an empty placeholder leaves behind."""
    text = _SEPARATOR_RUNS.sub(",", text)
    return " ".join(text.strip(" ,").split())


DEFAULT_STYLES: dict[str, StyleTemplate] = {
    "photo": StyleTemplate(
        prompt="{p}, professional photograph, natural light, sharp focus, 35mm",
        negative="{np}, painting, drawing, cartoon, blurry, lowres, deformed",
    ),
    "painting": StyleTemplate(
        prompt="oil painting of {p}, visible brush strokes, rich colours, fine art",
        negative="{np}, photo, 3d render, blurry, lowres",
    ),
    "watercolor": StyleTemplate(
        prompt="watercolor illustration of {p}, soft washes, paper texture",
        negative="{np}, photo, 3d render, harsh lines, lowres",
    ),
    "anime": StyleTemplate(
        prompt="{p}, anime style, clean line art, vibrant colours, detailed background",
        negative="{np}, photo, realistic, blurry, lowres, bad anatomy",
    ),
    "pixel": StyleTemplate(
        prompt="pixel art of {p}, 16-bit, limited palette, crisp pixels",
        negative="{np}, blurry, smooth gradients, photo",
    ),
    "sketch": StyleTemplate(
        prompt="pencil sketch of {p}, graphite, cross-hatching, white paper",
        negative="{np}, colour, photo, blurry",
    ),
}


class PromptConfig(BaseModel):
    """`[prompt]`: limits of the prompt grammar and the styles users may pick with `--style`."""

    model_config = ConfigDict(extra="forbid")

    max_prompt_chars: int = Field(
        1000, ge=10, le=10_000, description="longest prompt (and negative prompt) accepted"
    )
    max_n: int = Field(4, ge=1, le=4, description="most images per request (--n)")
    default_n: int = Field(1, ge=1, le=4, description="images per request without --n")
    styles: dict[StyleName, StyleTemplate] = Field(
        default_factory=lambda: dict(DEFAULT_STYLES),
        description="style name (lowercase, a-z 0-9 _ -) -> template with {p} and {np}; "
        "added to the built-in styles (a built-in name is replaced)",
    )
    builtin_styles: bool = Field(
        True, description="false: only the styles in [prompt.styles], none of the built-in ones"
    )

    @model_validator(mode="after")
    def _add_builtin_styles(self) -> PromptConfig:
        if self.builtin_styles:
            self.styles = {**DEFAULT_STYLES, **self.styles}
        return self

    @model_validator(mode="after")
    def _default_n_within_max(self) -> PromptConfig:
        if self.default_n > self.max_n:
            raise ValueError(
                f"default_n ({self.default_n}) must not be larger than max_n ({self.max_n})"
            )
        return self


class PromptFilterConfig(BaseModel):
    """`[prompt_filter]`: block lists, regexes and the minors+sexual guard.

    Terms are normalised exactly like prompts (case, accents, leetspeak, ...), so write them
    plainly. With `use_default_lists` the guard's shipped lists
    (`fedibot/moderation/guard/data/`) are used in addition to the terms given here.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="turn the whole prompt filter on or off")
    blocked_terms: list[str] = Field(
        default_factory=list, description="words/phrases refused anywhere (whole-word match)"
    )
    blocked_regexes: list[str] = Field(
        default_factory=list,
        description=(
            "Python regexes searched (case-insensitively) in the casefolded prompt and in its "
            "normalised readings (accents off, leetspeak undone, spaced letters joined)"
        ),
    )
    minor_terms: list[str] = Field(
        default_factory=list, description="extra terms that refer to minors (guard group 1)"
    )
    sexual_terms: list[str] = Field(
        default_factory=list, description="extra sexual terms (guard group 2)"
    )
    innocent_phrases: list[str] = Field(
        default_factory=list,
        description="phrases whose words never count for the guard, e.g. 'kid goat', 'naked eye'",
    )
    use_default_lists: bool = Field(
        True,
        description=(
            "also use the guard's lists shipped in fedibot/moderation/guard/data (nine "
            "languages, with the detection of ages under 18: '12 yo', 'twelve-year-old')"
        ),
    )
    guard_lists: list[str] = Field(
        default_factory=list,
        description=(
            "extra guard list files or folders of *.toml files, in the format of "
            "fedibot/moderation/guard/data/en.toml, merged into the shipped lists"
        ),
    )

    @field_validator(
        "blocked_terms", "minor_terms", "sexual_terms", "innocent_phrases", mode="after"
    )
    @classmethod
    def _terms_not_blank(cls, value: list[str]) -> list[str]:
        for index, term in enumerate(value):
            if not any(ch.isalnum() for ch in term):
                raise ValueError(f"entry {index} ({term!r}) has no letters or digits")
        return value

    @field_validator("blocked_regexes", mode="after")
    @classmethod
    def _regexes_compile(cls, value: list[str]) -> list[str]:
        for index, pattern in enumerate(value):
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(
                    f"blocked_regexes[{index}] {pattern!r} is not a valid regular expression: {exc}"
                ) from None
        return value
