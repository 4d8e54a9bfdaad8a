"""`[[campaigns]]`: scheduled image posts (a schedule, prompts, how the post looks).

Checks that only need one campaign live on `CampaignConfig`; checks against the rest of the
config (accounts, models, styles, option limits) are in `check_campaigns`, which the top-level
config calls and which names the campaign's key path, e.g.
`config.toml: campaigns[0].account = 'mian': campaign 'daily-fox': no account named 'mian' ...`.

Cron expressions use standard crontab weekday numbers (0 or 7 = Sunday, 1 = Monday), unlike
APScheduler 3's own `from_crontab` (0 = Monday); `crontab_trigger` translates them.
"""

from __future__ import annotations

import re
import string
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

    from fedibot.config.loader import FedibotConfig

TEXT_FIELDS = ("prompt", "campaign", "date", "time")
ALT_FIELDS = ("prompt", "model", "seed", "negative")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_HASHTAG = re.compile(r"^\w+$")
MIN_EVERY, MAX_EVERY = 60, 366 * 86400
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


# ------------------------------------------------------------------------------ helpers
def parse_duration(value: str | int | float) -> int:
    """`"6h"`, `"1h30m"`, `"90s"`, `"2d"` or a number of seconds → whole seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like '6h' or a number of seconds")
    if isinstance(value, int | float):
        return int(value)
    text = value.strip().lower().replace(" ", "")
    if text.isdigit():
        return int(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(f"{n}{u}" for n, u in parts) != text:
        raise ValueError("must be a duration like '6h', '90m', '1h30m', '45s' or seconds")
    return int(sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def format_duration(seconds: int) -> str:
    out = ""
    for unit, size in _UNIT_SECONDS.items():
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            out += f"{count}{unit}"
    return out or "0s"


def template_fields(template: str) -> list[str]:
    """The `{names}` a str.format template uses (ValueError for `{}` or a broken template)."""
    names = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if not name or not name.isidentifier():
            raise ValueError(f"placeholders must be names like {{prompt}}, not {{{name}}}")
        names.append(name)
    return names


def _standard_weekdays(field: str) -> str:
    """A crontab day-of-week field (0/7 = Sunday) → APScheduler names (`mon,wed,fri`)."""
    if field == "*" or field == "?":
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        rng, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"bad step in day-of-week {part!r}")
        if rng == "*":
            lo, hi = 0, 6
        else:
            first, _, last = rng.partition("-")
            lo = _weekday_number(first)
            hi = _weekday_number(last) if last else (6 if step_text else lo)
            if last and hi == 0 and lo > 0:
                hi = 7  # "5-0" / "fri-sun": up to Sunday
        if hi < lo:
            raise ValueError(f"day-of-week range {part!r} runs backwards")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def _weekday_number(token: str) -> int:
    if token in _DAY_NAMES:
        return _DAY_NAMES.index(token)
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    raise ValueError(f"day of week {token!r} is not 0-7 or sun..sat")


def crontab_trigger(expr: str, timezone: tzinfo | str = "UTC") -> CronTrigger:
    """A standard 5-field crontab expression → an APScheduler CronTrigger (ValueError if bad)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"wrong number of fields: got {len(fields)}, expected 5 "
            "(minute hour day-of-month month day-of-week)"
        )
    CronTrigger.from_crontab(" ".join([*fields[:4], "*"]), timezone=timezone)
    fields[4] = _standard_weekdays(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=timezone)


def _who(info: ValidationInfo) -> str:
    name = (info.data or {}).get("name")
    return f"campaign {name!r}: " if name else ""


# ------------------------------------------------------------------------------ the model
class CampaignConfig(BaseModel):
    """One `[[campaigns]]` entry: when to post, what to generate, how the post looks."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ...,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="unique name in logs, the CLI and the database",
    )
    account: str = Field(..., min_length=1, description="the [[accounts]] name that posts")
    cron: str | None = Field(None, description="crontab expression, e.g. '0 9 * * *'")
    timezone: str = Field("UTC", description="IANA time zone of `cron`, e.g. 'Europe/Berlin'")
    every: int | None = Field(
        None,
        description="interval instead of cron: '6h', '90m', '1h30m' or seconds (at least 60)",
    )
    prompts: list[str] = Field(default_factory=list, description="prompts to take in turn")
    order: Literal["sequential", "random"] = "sequential"
    template: str | None = Field(
        None, max_length=2000, description="prompt template, e.g. 'a {animal} in {place}'"
    )
    variables: dict[str, list[str]] = Field(
        default_factory=dict, description="the lists a template's {names} are filled from"
    )
    model: str | None = Field(None, description="[generator.models] name (default model if unset)")
    style: str | None = Field(None, description="[prompt.styles] name")
    options: str = Field(
        "", max_length=500, description="prompt options, e.g. '--steps 20 --ar 3:2 --n 2'"
    )
    text: str = Field(
        "{prompt}",
        max_length=1000,
        description="post text; {prompt}, {campaign}, {date}, {time} are filled in",
    )
    alt_text: str | None = Field(
        None,
        max_length=1000,
        description="alt text of each image ({prompt}, {model}, {seed}, {negative}); "
        "default: [replies].alt_text",
    )
    hashtags: list[str] = Field(default_factory=list, description="appended as #tags")
    visibility: Literal["public", "unlisted", "private", "direct"] = "public"
    spoiler_text: str = Field("", max_length=200, description="content warning of every post")
    language: str | None = Field(None, max_length=8, description="ISO 639 code, e.g. 'en'")
    thread: bool = Field(False, description="reply to the previous run's post (a running story)")
    enabled: bool = True
    misfire_grace_seconds: float = Field(
        300.0,
        ge=1,
        le=7 * 86400,
        description="a run missed by less than this (bot down, busy) is still posted, once",
    )
    max_attempts: int | None = Field(
        None,
        ge=1,
        le=20,
        description="generation attempts of a run (default [queue].max_attempts); also how "
        "often a run whose every image was withheld as flagged is generated again",
    )

    @field_validator("every", mode="before")
    @classmethod
    def _duration(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            return None
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ValueError(f"{_who(info)}{exc}") from None
        if not MIN_EVERY <= seconds <= MAX_EVERY:
            raise ValueError(f"{_who(info)}must be at least 60 seconds and at most 366 days")
        return seconds

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            crontab_trigger(value, "UTC")
        except ValueError as exc:
            raise ValueError(
                f"{_who(info)}not a valid cron expression "
                f"(minute hour day-of-month month day-of-week): {exc}"
            ) from None
        return " ".join(value.split())

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str, info: ValidationInfo) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{_who(info)}unknown time zone; use an IANA name like 'Europe/Berlin' or 'UTC'"
            ) from None
        return value

    @field_validator("prompts")
    @classmethod
    def _prompts_not_blank(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if any(not p.strip() for p in value):
            raise ValueError(f"{_who(info)}prompts must not be empty strings")
        return value

    @field_validator("text", "alt_text")
    @classmethod
    def _known_placeholders(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        allowed = TEXT_FIELDS if info.field_name == "text" else ALT_FIELDS
        try:
            unknown = sorted(set(template_fields(value)) - set(allowed))
        except ValueError as exc:
            raise ValueError(f"{_who(info)}{exc}") from None
        if unknown:
            raise ValueError(
                f"{_who(info)}unknown placeholder {{{unknown[0]}}}; "
                f"allowed: {', '.join('{' + a + '}' for a in allowed)}"
            )
        return value

    @field_validator("hashtags")
    @classmethod
    def _hashtags(cls, value: list[str], info: ValidationInfo) -> list[str]:
        tags = [tag.strip().lstrip("#") for tag in value]
        bad = [t for t in tags if not _HASHTAG.match(t)]
        if bad:
            raise ValueError(f"{_who(info)}{bad[0]!r} is not a hashtag (letters, digits, _)")
        return tags

    @model_validator(mode="after")
    def _consistent(self) -> CampaignConfig:
        who = f"campaign {self.name!r}: "
        errors: list[tuple[str, Any, str]] = []
        if (self.cron is None) == (self.every is None):
            errors.append(
                (
                    "cron",
                    self.cron,
                    "give exactly one schedule: cron = '0 9 * * *' (with timezone) or every = '6h'",
                )
            )
        if self.every is not None and self.timezone != "UTC" and self.cron is None:
            errors.append(("timezone", self.timezone, "timezone only applies to cron"))
        if bool(self.prompts) == bool(self.template):
            errors.append(
                (
                    "prompts",
                    self.prompts,
                    "give either prompts = [...] or template = '...' with variables",
                )
            )
        if self.template:
            errors.extend(self._template_errors())
        elif self.variables:
            errors.append(("variables", self.variables, "variables need a template"))
        if errors:
            raise ValidationError.from_exception_data(
                "CampaignConfig",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("value_error", "{msg}", {"msg": who + msg}),
                        loc=(key,),
                        input=value,
                    )
                    for key, value, msg in errors
                ],
            )
        return self

    def _template_errors(self) -> list[tuple[str, Any, str]]:
        assert self.template is not None
        try:
            names = template_fields(self.template)
        except ValueError as exc:
            return [("template", self.template, str(exc))]
        if not names:
            return [
                (
                    "template",
                    self.template,
                    "a template needs at least one {variable}; "
                    "for fixed prompts use prompts = [...]",
                )
            ]
        errors: list[tuple[str, Any, str]] = []
        for name in dict.fromkeys(names):
            choices = self.variables.get(name)
            if choices is None:
                errors.append(
                    (
                        "template",
                        self.template,
                        f'no list for {{{name}}}: add variables.{name} = ["...", ...]',
                    )
                )
            elif not [c for c in choices if c.strip()]:
                errors.append(
                    (
                        "variables",
                        self.variables,
                        f"variables.{name} is empty; give at least one value",
                    )
                )
        unused = sorted(set(self.variables) - set(names))
        if unused:
            errors.append(
                ("variables", self.variables, f"variables.{unused[0]} is not used in the template")
            )
        return errors

    # -------------------------------------------------------------- derived
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def schedule_text(self) -> str:
        if self.cron is not None:
            return f"cron '{self.cron}' {self.timezone}"
        return f"every {format_duration(int(self.every or 0))}"


# ------------------------------------------------------------------------------ cross-checks
def check_campaigns(config: FedibotConfig) -> None:
    """Campaigns against the rest of the config; raises ValidationError naming each key."""
    from fedibot.campaigns.options import resolve_options
    from fedibot.intake.grammar import PromptError

    errors: list[InitErrorDetails] = []

    def add(index: int, key: str, value: Any, message: str) -> None:
        name = config.campaigns[index].name
        errors.append(
            InitErrorDetails(
                type=PydanticCustomError(
                    "value_error", "{msg}", {"msg": f"campaign {name!r}: {message}"}
                ),
                loc=("campaigns", index, key),
                input=value,
            )
        )

    seen: dict[str, int] = {}
    accounts = {a.name: a for a in config.accounts}
    for i, campaign in enumerate(config.campaigns):
        if campaign.name in seen:
            add(
                i,
                "name",
                campaign.name,
                f"the name is already used by campaigns[{seen[campaign.name]}]",
            )
        seen.setdefault(campaign.name, i)
        account = accounts.get(campaign.account)
        if account is None:
            known = ", ".join(sorted(accounts)) or "(none configured)"
            add(
                i,
                "account",
                campaign.account,
                f"no [[accounts]] entry with that name; known: {known}",
            )
        elif account.platform != "mastodon":
            add(
                i,
                "account",
                campaign.account,
                f"campaigns post statuses, which only Mastodon-API accounts can do "
                f"(this one is {account.platform})",
            )
        try:
            resolve_options(config, campaign, "campaign prompt", seed=0)
        except PromptError as err:
            key = (
                "model"
                if err.code == "unknown_model"
                else "style"
                if err.code == ("unknown_style")
                else "options"
            )
            add(i, key, getattr(campaign, key), err.message)
    if errors:
        raise ValidationError.from_exception_data("FedibotConfig", errors)
