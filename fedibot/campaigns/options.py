"""A campaign's `model`, `style` and `options` → generation options, through the same prompt
grammar and preset limits as a mention (`fedibot.intake.options`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from fedibot.intake.grammar import ParsedRequest, PromptError, PromptRules, parse
from fedibot.intake.options import resolve_options as resolve_options_for

if TYPE_CHECKING:
    from fedibot.config.campaigns import CampaignConfig
    from fedibot.config.loader import FedibotConfig
    from fedibot.intake.options import Options

_PLACEHOLDER = "x"


def parse_campaign_options(config: FedibotConfig, campaign: CampaignConfig) -> ParsedRequest:
    """The campaign's options parsed with the prompt grammar; PromptError when wrong."""
    rules = PromptRules.from_config(config.prompt, config.generator.models)
    parsed = parse(f"{_PLACEHOLDER} {campaign.options}", rules)
    if parsed.command != "generate" or parsed.prompt != _PLACEHOLDER:
        raise PromptError(
            "bad_option",
            "options may only hold --options (e.g. '--steps 20 --ar 3:2'), "
            f"not {campaign.options!r}",
        )
    if parsed.private:
        raise PromptError("bad_option", "--private does not apply; set visibility = 'direct'")
    model, style = parsed.model, parsed.style
    if campaign.model is not None:
        model = rules.model_name(campaign.model)
        if model is None:
            raise PromptError(
                "unknown_model",
                f"there is no model called {campaign.model!r}; known: {', '.join(rules.models)}",
            )
    if campaign.style is not None:
        style = rules.style_name(campaign.style)
        if style is None:
            known = ", ".join(rules.styles) or "(none configured)"
            raise PromptError(
                "unknown_style", f"there is no style called {campaign.style!r}; known: {known}"
            )
    return dataclasses.replace(parsed, model=model, style=style)


def resolve_options(
    config: FedibotConfig, campaign: CampaignConfig, prompt: str, *, seed: int
) -> Options:
    """Every generation option decided (defaults from the model's preset, limits checked)."""
    parsed = parse_campaign_options(config, campaign)
    parsed = dataclasses.replace(
        parsed, prompt=prompt, seed=parsed.seed if parsed.seed is not None else seed
    )
    return resolve_options_for(config, parsed)
