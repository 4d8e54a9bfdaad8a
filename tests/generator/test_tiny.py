"""The built-in tiny model: real CLIP vocabulary, saved once, importing generator stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from transformers import CLIPTokenizer

from generator.tiny import MARKER, ensure_tiny


def test_tokenizer_uses_the_real_clip_vocabulary(tiny_data_dir: Path) -> None:
    tok = CLIPTokenizer.from_pretrained(str(tiny_data_dir / "models" / "tiny" / "tokenizer"))
    # ids of the original openai/clip-vit-large-patch14 tokenizer
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tok) == 49408


def test_tiny_is_saved_once_and_reused(tiny_data_dir: Path) -> None:
    folder = tiny_data_dir / "models" / "tiny"
    assert (folder / MARKER).is_file() and (folder / "model_index.json").is_file()
    stamp = (folder / "unet").stat().st_mtime_ns
    assert ensure_tiny(tiny_data_dir) == folder
    assert (folder / "unet").stat().st_mtime_ns == stamp


def test_importing_generator_does_not_import_torch() -> None:
    code = (
        "import sys, generator, generator.config, generator.types, generator.service, "
        "generator.worker, generator.pngmeta, generator.requests; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
