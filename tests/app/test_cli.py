"""The CLI as an operator uses it: a real SQLite file, real subprocesses where it matters."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedibot.cli.main import main
from fedibot.queue.jobs import JobQueue
from fedibot.storage.database import Database
from fedibot.storage.migrate import upgrade_blocking
from tests.queue.test_queue import job

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path}/bot.db"\n'
        '[generator.safety]\nclassifier = "none"\n'
    )
    return cfg


def test_light_packages_do_not_import_torch():
    code = (
        "import sys, fedibot, federation, fediseer_sync, fedibot.cli.main, fedibot.app, generator, "
        "generator.worker, generator.service\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout
    assert out.strip() == "[]"


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "worker", "queue", "db", "doctor", "generate", "try", "login"):
        assert command in result.output


def test_queue_commands_print_one_json_document(tmp_path):
    """Sync on purpose: the CLI runs its own event loop, as it does for an operator."""
    cfg = _config(tmp_path)

    async def seed() -> int:
        db = Database(f"sqlite:///{tmp_path}/bot.db")
        upgrade_blocking(db)
        queue = JobQueue(db)
        first = (await queue.enqueue(job("1"))).job_id
        await queue.enqueue(job("2", requester="b@two.example"))
        await db.dispose()
        return first

    first = asyncio.run(seed())
    runner = CliRunner()

    stats = json.loads(
        runner.invoke(main, ["--config", str(cfg), "queue", "stats", "--json"]).output
    )
    assert stats["queued"] == 2 and stats["done"] == 0
    listed = json.loads(
        runner.invoke(main, ["--config", str(cfg), "queue", "list", "--json"]).output
    )
    assert [j["id"] for j in listed] == [first + 1, first]
    shown = json.loads(
        runner.invoke(main, ["--config", str(cfg), "queue", "show", str(first), "--json"]).output
    )
    assert shown["prompt"] == "a lighthouse 1" and shown["images"] == []
    created = datetime.fromisoformat(shown["created_at"])  # ISO 8601, not epoch seconds
    assert created.tzinfo is not None and abs(datetime.now(UTC) - created).days == 0
    assert shown["finished_at"] is None
    table = runner.invoke(main, ["--config", str(cfg), "queue", "show", str(first)]).output
    assert shown["created_at"][:10] in table

    result = runner.invoke(main, ["--config", str(cfg), "queue", "cancel", str(first)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["--config", str(cfg), "queue", "cancel", str(first)])
    assert result.exit_code == 1
    result = runner.invoke(main, ["--config", str(cfg), "queue", "retry", str(first)])
    assert result.exit_code == 0
    shown = json.loads(
        runner.invoke(main, ["--config", str(cfg), "queue", "show", str(first), "--json"]).output
    )
    assert shown["state"] == "queued"


def test_try_runs_the_whole_local_path(tmp_path, tiny_data_dir):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'data_dir = "{tiny_data_dir}"\n[database]\nurl = "sqlite:///{tmp_path}/b.db"\n')
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedibot",
            "--config",
            str(cfg),
            "try",
            "@bot a red fox --n 2 --seed 7 ### blurry",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    reply = json.loads((out / "reply.json").read_text())
    assert reply["seeds"] == [7, 8]
    assert reply["visibility"] == "unlisted"
    assert len(reply["media"]) == 2
    assert all("Seed: " in m["alt_text"] and Path(m["path"]).is_file() for m in reply["media"])
    assert "a red fox" in reply["text"]


def test_try_reports_a_bad_option_with_the_allowed_range(tmp_path, tiny_data_dir):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'data_dir = "{tiny_data_dir}"\n')
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fedibot",
            "--config",
            str(cfg),
            "try",
            "@bot a fox --n 9",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1
    reply = json.loads((out / "reply.json").read_text())
    assert reply["error_code"] == "bad_option"
    assert "1 to 4" in reply["text"]
    assert reply["media"] == []


def test_purge_refuses_to_delete_everything_when_retention_is_forever(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path}/b.db"\n[queue]\nretention_days = 0\n')
    result = CliRunner().invoke(main, ["--config", str(cfg), "queue", "purge"])
    assert result.exit_code == 2
    assert "keep jobs forever" in result.output
    result = CliRunner().invoke(main, ["--config", str(cfg), "queue", "show", "9" * 30])
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["   "], "empty_prompt: the prompt is empty"),
        (["a" * 5000], "prompt_too_long: the prompt is 5000 characters long; at most 1000"),
        (["a fox", "--seed", str(2**32)], "bad_option: --seed must be a whole number from 0 to"),
        (["a fox", "--n", "9"], "bad_option: --n must be a whole number from 1 to 4"),
        (["a fox", "--steps", "999"], "bad_option: steps 999 is outside 1..50 for model 'tiny'"),
        (["a fox", "--model", "nope"], "unknown_model: there is no model called 'nope'"),
    ],
)
def test_generate_refuses_what_a_mention_would_with_the_same_message(tmp_path, args, expected):
    from fedibot.config.loader import FedibotConfig
    from fedibot.intake.grammar import PromptError, PromptRules, parse
    from fedibot.intake.options import resolve_options

    result = CliRunner().invoke(
        main, ["--config", str(_config(tmp_path)), "generate", *args, "--out", str(tmp_path)]
    )
    assert result.exit_code == 2, result.output
    assert expected in result.output
    # ... and a mention with the same request gets the same message
    config = FedibotConfig()
    mention = " ".join(f'"{a}"' if a.startswith("nope") else a for a in args)
    with pytest.raises(PromptError) as info:
        resolve_options(config, parse(mention, PromptRules.from_config(config.prompt, ["tiny"])))
    assert f"{info.value.code}: {info.value.message}" in result.output
    assert not list(tmp_path.glob("*.png"))


def test_doctor_reports_an_unset_token_as_that_accounts_problem(tmp_path, monkeypatch):
    monkeypatch.delenv("FEDIBOT_TEST_DOCTOR_TOKEN", raising=False)
    cfg = _config(tmp_path)
    cfg.write_text(
        cfg.read_text()
        + '[[accounts]]\nname="m"\nplatform="mastodon"\nbase_url="https://m.example"\n'
        'access_token="env:FEDIBOT_TEST_DOCTOR_TOKEN"\n'
    )
    result = CliRunner().invoke(main, ["--config", str(cfg), "doctor", "--json"])
    assert result.exit_code == 1, result.output
    checks = {c["check"]: c for c in json.loads(result.output)["checks"]}
    assert checks["database"]["ok"] and checks["config"]["ok"]
    account = checks["account m (mastodon)"]
    assert not account["ok"]
    assert "FEDIBOT_TEST_DOCTOR_TOKEN is not set" in account["detail"]
