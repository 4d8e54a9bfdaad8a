"""The built-in tiny model: real CLIP vocabulary, saved once, importing generator stays light."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from transformers import CLIPTokenizer

from generator.tiny import MARKER, ensure_tiny


def test_saved_tokenizer_is_byte_level_clip_bpe_and_round_trips(tiny_data_dir: Path) -> None:
    tok = CLIPTokenizer.from_pretrained(str(tiny_data_dir / "models" / "tiny" / "tokenizer"))
    text = "a photo of a cat, ünïcode 🦊 <3"
    ids = tok(text).input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.unk_token_id not in ids[1:-1]  # byte-level: every character is encodable
    assert tok.decode(ids, skip_special_tokens=True).replace(" ", "") == text.replace(" ", "")
    # lowercase letter pairs are merged: fewer tokens than characters
    assert len(tok("lighthouse").input_ids) - 2 < len("lighthouse")
    assert len(tok) < 4096  # a small vocabulary, no third-party file


def test_text_encoder_vocabulary_matches_the_tokenizer(tiny_data_dir: Path) -> None:
    folder = tiny_data_dir / "models" / "tiny"
    tok = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    config = json.loads((folder / "text_encoder" / "config.json").read_text())
    assert config["vocab_size"] == len(tok)
    assert config["eos_token_id"] == tok.eos_token_id


def test_tiny_builds_without_open_clip_installed(tmp_path: Path) -> None:
    """A plain `pip install` (no open-clip-torch) is enough: block the module and build."""
    code = (
        "import sys; sys.modules['open_clip'] = None\n"
        "from generator.tiny import ensure_tiny\n"
        f"print(ensure_tiny({str(tmp_path)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "models" / "tiny" / "model_index.json").is_file()


def _env() -> dict[str, str]:
    import os

    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "PYTHONPATH": root, "HF_HUB_OFFLINE": "1"}


def test_tiny_is_saved_once_and_reused(tiny_data_dir: Path) -> None:
    folder = tiny_data_dir / "models" / "tiny"
    assert (folder / MARKER).is_file() and (folder / "model_index.json").is_file()
    stamp = (folder / "unet").stat().st_mtime_ns
    assert ensure_tiny(tiny_data_dir) == folder
    assert (folder / "unet").stat().st_mtime_ns == stamp


def test_importing_generator_does_not_import_torch() -> None:
    code = (
        "import sys, generator, generator.config, generator.types, generator.service, "
        "generator.worker, generator.pngmeta, generator.requests, "
        "generator.families, generator.limits, generator.qr; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
