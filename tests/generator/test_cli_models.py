"""`fedibot models`: families, sources, presets; --load reports memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from fedibot.cli.main import main


def write_config(tmp_path: Path, data_dir: Path, flux_folder: Path) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'data_dir = "{data_dir}"\n'
        "[generator.models.schnell]\n"
        'source = "black-forest-labs/FLUX.1-schnell-not-here"\n'
        "[generator.models.local]\n"
        f'source = "{flux_folder}"\n'
        "preset = { width = 64, height = 64 }\n"
    )
    return cfg


def test_models_json_lists_family_source_and_preset(
    tmp_path: Path, tiny_data_dir: Path, family_root: Path
) -> None:
    cfg = write_config(tmp_path, tiny_data_dir, family_root / "flux")
    res = CliRunner().invoke(main, ["--config", str(cfg), "models", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert set(rows) == {"schnell", "local"}  # tiny is not added to a configured list
    s = rows["schnell"]
    assert (s["family"], s["base_preset"], s["loaded"], s["default"]) == (
        "flux", "flux-schnell", False, True,
    )  # fmt: skip
    assert s["preset"]["steps"] == 4 and s["source_state"] == "remote"
    assert rows["local"]["source_state"] == "local" and rows["local"]["kind_from"] == "guessed"


def test_models_load_reports_memory_and_errors(
    tmp_path: Path, tiny_data_dir: Path, family_root: Path
) -> None:
    cfg = write_config(tmp_path, tiny_data_dir, family_root / "flux")
    res = CliRunner().invoke(main, ["--config", str(cfg), "models", "--json", "--load", "all"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["local"]["loaded"] and rows["local"]["memory_bytes"] > 0
    assert rows["local"]["family"] == "flux" and rows["local"]["kind_from"] == "loaded"
    assert not rows["schnell"]["loaded"] and "model_unavailable" in rows["schnell"]["error"]


def test_models_table_and_no_torch_at_import(tmp_path: Path, tiny_data_dir: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data_dir = "{tiny_data_dir}"\n')
    res = CliRunner().invoke(main, ["--config", str(cfg), "models"])
    assert res.exit_code == 0 and "tiny" in res.output and "64x64" in res.output
    code = "import sys, fedibot.cli.models, fedibot.cli.main; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
