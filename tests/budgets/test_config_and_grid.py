"""Budget config validation and grid composition."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from federation.budgets import MASTODON_DEFAULTS, BudgetLimit
from federation.types import MediaItem
from fedibot.config.errors import ConfigError
from fedibot.config.loader import parse_config
from fedibot.outbound.budgets import config_budgets
from fedibot.outbound.grid import compose_grid, grid_alt_text, tile_names


def account(**extra: object) -> dict[str, object]:
    return {
        "platform": "mastodon",
        "name": "main",
        "base_url": "https://example.social",
        "access_token": "t",
        **extra,
    }


def test_budgets_are_configured_per_account_and_kind() -> None:
    config = parse_config(
        {"accounts": [account(budgets={"media": {"limit": 10, "per_seconds": 600}})]}
    )
    limits = config_budgets(config)
    assert limits[("main", "media")] == BudgetLimit(limit=10, per_seconds=600)
    assert limits[("main", "statuses")] == MASTODON_DEFAULTS["statuses"]  # 300 per 3 h
    assert MASTODON_DEFAULTS["media"] == BudgetLimit(limit=30, per_seconds=1800)
    assert config.replies.grid == "when_short"


@pytest.mark.parametrize(
    ("budgets", "named"),
    [
        ({"medai": {"limit": 1, "per_seconds": 1}}, "medai"),
        ({"media": {"limit": 0, "per_seconds": 60}}, "media.limit"),
        ({"media": {"limit": 5, "per_seconds": 60, "burst": 3}}, "media.burst"),
    ],
)
def test_a_bad_budget_key_is_one_line_naming_it(budgets: dict, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"accounts": [account(budgets=budgets)]}, "config.toml")
    message = str(err.value)
    assert "\n" not in message.strip(), message
    assert named in message and "budgets" in message, message


def test_a_bad_grid_value_names_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"replies": {"grid": "sometimes"}})
    assert "replies.grid" in str(err.value)


def test_tile_names() -> None:
    assert tile_names(2) == ["left", "right"]
    assert tile_names(4) == ["top left", "top right", "bottom left", "bottom right"]
    assert tile_names(3) == ["top left", "top right", "bottom left"]
    assert tile_names(9)[4] == "centre"


def test_grid_of_four_has_four_tiles_and_alt_text_for_each(tmp_path: Path) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    media = []
    for i, colour in enumerate(colours):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (64, 48), colour).save(path)
        alt = f"AI-generated image. Prompt: a fox. Model: tiny. Seed: {100 + i}."
        media.append(MediaItem(path=path, alt_text=alt))
    item = compose_grid(media, tmp_path / "grid.png")
    with Image.open(item.path) as grid:
        assert grid.size == (128, 96)  # 2 × 2 tiles
        corners = [grid.getpixel((10, 10)), grid.getpixel((100, 10))]
        corners += [grid.getpixel((10, 80)), grid.getpixel((100, 80))]
    assert corners == colours  # each image in its place, in reading order
    assert item.alt_text == (
        "4 images in a grid. AI-generated image. Prompt: a fox. Model: tiny. "
        "Top left: Seed: 100. Top right: Seed: 101. "
        "Bottom left: Seed: 102. Bottom right: Seed: 103."
    )


def test_alt_text_without_a_shared_start_keeps_every_text() -> None:
    assert grid_alt_text(["a cat", "a dog"]) == "2 images in a grid. Left: a cat Right: a dog"
