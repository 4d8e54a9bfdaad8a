"""Admin commands stay quick: they load neither torch/diffusers nor the bot's runtime, and
Alembic only when the schema needs upgrading (no timing assertions: what is imported)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fedibot.storage.migrate import head_revision, script_head
from tests.fixtures_path import REPO_ROOT

HEAVY = ("torch", "diffusers", "transformers", "nudenet", "onnxruntime")


def imported(args: list[str], cwd: Path) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "fedibot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        timeout=300,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # doctor exits 1 on a failed check
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("import time:")]
    return {ln.rsplit("|", 1)[1].strip() for ln in lines}


def test_the_migration_files_head_is_alembics_head() -> None:
    assert script_head() == head_revision()


def test_queue_stats_and_doctor_load_no_ml_stack_and_no_alembic_at_head(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path}"\n[database]\nurl = "sqlite:///{tmp_path}/bot.db"\n'
        '[generator.safety]\nclassifier = "none"\n'
    )
    first = imported(["--config", str(cfg), "queue", "stats"], tmp_path)
    assert "alembic" in first  # a new database gets its schema
    for args in (["queue", "stats"], ["doctor", "--skip-accounts"]):
        modules = imported(["--config", str(cfg), *args], tmp_path)
        assert "fedibot.queue.jobs" in modules or args[0] == "doctor"
        assert not [m for m in modules if m.split(".")[0] in HEAVY], args
        assert "alembic" not in modules, args  # the schema is at the head already
        assert "fedibot.app" not in modules and "aiohttp" not in modules, args
