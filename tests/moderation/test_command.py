"""`fedibot check-prompt` through click's CliRunner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from fedibot.cli.main import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["check-prompt", *args])
    return result.exit_code, result.output


def test_refused_in_text() -> None:
    code, out = run("ℂhild nude")
    assert code == 1
    assert "refused (minor_sexual)" in out
    assert "rule: minor+sexual" in out
    assert "matched: child, nude" in out
    assert "normalised: child nude" in out


def test_allowed_in_text() -> None:
    code, out = run("a kid goat in a field")
    assert code == 0
    assert out.startswith("allowed (allowed)")


def test_json_with_negative() -> None:
    code, out = run("a child at the beach", "--neg", "clothes, swimsuit", "--json")
    assert code == 1
    data = json.loads(out)
    assert data["allowed"] is False
    assert data["code"] == "minor_sexual"
    assert data["rule"] == "minor+clothing-in-negative"
    assert data["matched"] == ["child", "clothes", "swimsuit"]
    assert data["normalised"] == "a child at the beach"
    assert data["normalised_negative"] == "clothes swimsuit"
    assert data["mentions_minor"] is True
    assert "swimsuit" not in data["reason"]


def test_json_allowed_with_sexual_negative() -> None:
    code, out = run("a child in a swimsuit", "--neg", "nsfw", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["allowed"], data["code"], data["matched"]) == (True, "allowed", [])


def test_extra_lists(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text('minor = ["gnomeling"]\n', "utf-8")
    assert run("a gnomeling, nude")[0] == 0
    assert run("a gnomeling, nude", "--lists", str(tmp_path))[0] == 1
    (tmp_path / "x.toml").write_text("minor = 'oops'\n", "utf-8")
    code, out = run("x", "--lists", str(tmp_path))
    assert code == 2 and "must be a list" in out


def test_command_needs_no_config_and_no_torch(tmp_path: Path) -> None:
    code = (
        "import sys, runpy; sys.argv = ['fedibot', 'check-prompt', 'a cat', '--json'];"
        "import fedibot.cli.main as c\n"
        "try:\n    c.main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "assert 'torch' not in sys.modules"
    )
    root = Path(__file__).resolve().parents[2]
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["allowed"] is True
