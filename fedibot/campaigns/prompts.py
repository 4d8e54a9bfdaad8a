"""What a run generates and says: its prompt, seed and post text.

Everything is a pure function of (campaign, run time, the stored sequential index), so a run
computed again after a restart comes out the same.
"""

from __future__ import annotations

import hashlib
import random

from fedibot.campaigns.schedule import local_time
from fedibot.config.campaigns import CampaignConfig, template_fields
from generator.requests import SEED_SPACE


def run_key(campaign: str, scheduled_at: float) -> str:
    return f"{campaign}:{int(scheduled_at)}"


def derived_seed(campaign: str, scheduled_at: float) -> int:
    digest = hashlib.sha256(run_key(campaign, scheduled_at).encode()).digest()
    return int.from_bytes(digest[:4], "big") % SEED_SPACE


def _rng(campaign: str, scheduled_at: float) -> random.Random:
    return random.Random(run_key(campaign, scheduled_at))  # str seeds are stable across runs


def choose_prompt(campaign: CampaignConfig, index: int, scheduled_at: float) -> str:
    """The prompt of one run: the index-th prompt (sequential) or a seeded random pick; for a
    template, the index-th combination of its variables or a seeded random one for each."""
    rng = _rng(campaign.name, scheduled_at)
    if not campaign.template:
        if campaign.order == "random":
            return rng.choice(campaign.prompts)
        return campaign.prompts[index % len(campaign.prompts)]
    names = list(dict.fromkeys(template_fields(campaign.template)))
    lists = [[v for v in campaign.variables[name] if v.strip()] for name in names]
    if campaign.order == "random":
        values = [rng.choice(choices) for choices in lists]
    else:
        # the index-th combination, last variable changing fastest (mixed-radix digits)
        values, rest = [], index
        for choices in reversed(lists):
            rest, digit = divmod(rest, len(choices))
            values.append(choices[digit])
        values.reverse()
    return campaign.template.format_map(dict(zip(names, values, strict=True)))


def render_text(campaign: CampaignConfig, prompt: str, scheduled_at: float) -> str:
    """The post text: the `text` template filled in, then the hashtags."""
    when = local_time(campaign, scheduled_at)
    text = campaign.text.format_map(
        {
            "prompt": prompt,
            "campaign": campaign.name,
            "date": when.strftime("%Y-%m-%d"),
            "time": when.strftime("%H:%M"),
        }
    ).strip()
    if campaign.hashtags:
        tags = " ".join(f"#{tag}" for tag in campaign.hashtags)
        text = f"{text}\n\n{tags}" if text else tags
    return text
