"""`fedibot campaigns …` as an operator runs it, against a real SQLite file."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from PIL import Image

from fedibot.cli.main import main


def write_config(tmp_path: Path, tiny_data_dir: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'data_dir = "{tiny_data_dir}"\n'
        f'[database]\nurl = "sqlite:///{tmp_path}/bot.db"\n'
        '[generator]\ndevice = "cpu"\ncpu_threads = 1\n'
        '[generator.safety]\nclassifier = "none"\n'
        '[[accounts]]\nname = "main"\nplatform = "mastodon"\n'
        'base_url = "http://127.0.0.1:9"\naccess_token = "t"\n'
        '[[campaigns]]\nname = "fox"\naccount = "main"\ncron = "0 9 * * 1-5"\n'
        'timezone = "Europe/Berlin"\nprompts = ["a red fox", "an owl"]\n'
        'options = "--steps 2 --n 2"\ntext = "Today: {prompt}"\nhashtags = ["foxes"]\n'
        'spoiler_text = "generated art"\nthread = true\n'
    )
    return cfg


def cli(cfg: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(cfg), "campaigns", *args])


def json_of(result: Result) -> object:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_list_pause_resume_run_and_history(tmp_path: Path, tiny_data_dir: Path):
    cfg = write_config(tmp_path, tiny_data_dir)
    (row,) = json_of(cli(cfg, "list", "--json"))
    assert row["name"] == "fox" and row["schedule"] == "cron '0 9 * * 1-5' Europe/Berlin"
    assert row["paused"] is False and row["last_run"] is None
    assert row["next_run"].endswith("+01:00") or row["next_run"].endswith("+02:00")
    assert "T09:00:00" in row["next_run"]

    assert cli(cfg, "pause", "fox").exit_code == 0
    (row,) = json_of(cli(cfg, "list", "--json"))
    assert row["paused"] is True and row["next_run"] is None
    assert "already paused" in cli(cfg, "pause", "fox").output
    assert cli(cfg, "resume", "fox").exit_code == 0
    assert json_of(cli(cfg, "list", "--json"))[0]["paused"] is False

    result = cli(cfg, "run", "fox")
    assert result.exit_code == 0 and "queued as job 1" in result.output
    (run,) = json_of(cli(cfg, "history", "fox", "--json"))
    assert run["status"] == "enqueued" and run["manual"] is True and run["job_id"] == 1
    assert run["job_state"] == "queued"
    (row,) = json_of(cli(cfg, "list", "--json"))
    assert row["last_run"]["status"] == "enqueued"

    table = cli(cfg, "history", "fox")
    assert table.exit_code == 0 and "enqueued" in table.output


def test_an_unknown_campaign_is_an_error(tmp_path: Path, tiny_data_dir: Path):
    cfg = write_config(tmp_path, tiny_data_dir)
    for args in (("history", "owl"), ("pause", "owl"), ("run", "owl")):
        result = cli(cfg, *args)
        assert result.exit_code == 2
        assert "no campaign named 'owl'; known: fox" in result.output


def test_a_dry_run_writes_images_and_text_and_posts_nothing(tmp_path: Path, tiny_data_dir: Path):
    cfg = write_config(tmp_path, tiny_data_dir)
    out = tmp_path / "out"
    result = cli(cfg, "run", "fox", "--dry-run", "--out", str(out))
    summary = json_of(result)
    assert summary == json.loads((out / "post.json").read_text())
    assert summary["dry_run"] is True and summary["prompt"] == "a red fox"
    assert summary["text"] == "Today: a red fox\n\n#foxes"
    assert (out / "post.txt").read_text() == summary["text"] + "\n"
    assert summary["spoiler_text"] == "generated art" and summary["sensitive"] is False
    assert len(summary["media"]) == 2
    for media in summary["media"]:
        assert media["alt_text"].startswith("AI-generated image. Prompt: a red fox.")
        with Image.open(media["path"]) as image:
            assert image.size == (64, 64)
    # nothing was queued or recorded: the next real run still starts with the first prompt
    assert json_of(cli(cfg, "history", "fox", "--json")) == []
