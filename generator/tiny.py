"""The built-in `tiny` model: a random-weight Stable Diffusion pipeline built offline.

Its tokenizer is a real CLIP BPE tokenizer whose vocab.json/merges.txt are derived from the
`bpe_simple_vocab_16e6.txt.gz` file shipped in the open-clip-torch wheel (located without
importing open_clip). The pipeline is saved once under `<data_dir>/models/tiny` and then loaded
through the same `from_pretrained` path as real models. Sizes are chosen so a 64x64 image with a
few steps takes milliseconds on a CPU and one pipeline call's fixed cost dominates — which is
exactly what makes batching pay.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

TINY_VERSION = "1"
MARKER = "fedibot-tiny.json"
_N_MERGES = 49152 - 256 - 2  # what CLIP (and open_clip's SimpleTokenizer) uses


def tiny_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "models" / "tiny"


def ensure_tiny(data_dir: str | Path) -> Path:
    """The folder of the tiny pipeline, building it first if missing or outdated."""
    target = tiny_path(data_dir)
    marker = target / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("version") == TINY_VERSION:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    try:
        build_tiny(tmp)
        (tmp / MARKER).write_text(json.dumps({"version": TINY_VERSION}))
        if target.exists():
            shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:  # another process won the race; theirs is identical
            if not (target / MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def bpe_vocab_file() -> Path:
    """open-clip-torch's BPE merges file, found without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("open-clip-torch is not installed; it provides the tiny tokenizer")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / "bpe_simple_vocab_16e6.txt.gz"
        if path.is_file():
            return path
    raise RuntimeError("open-clip-torch has no bpe_simple_vocab_16e6.txt.gz")


def write_clip_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """Write vocab.json and merges.txt in the Hugging Face CLIP layout."""
    lines = gzip.decompress(bpe_vocab_file().read_bytes()).decode("utf-8").split("\n")
    merges = lines[1 : _N_MERGES + 1]
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = folder / "vocab.json", folder / "merges.txt"
    vocab_path.write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}), encoding="utf-8")
    merges_path.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab_path, merges_path


def build_tiny(folder: Path) -> None:
    """Build the deterministic random-weight pipeline and `save_pretrained` it into folder."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    with tempfile.TemporaryDirectory() as tok_dir:
        vocab, merges = write_clip_tokenizer_files(Path(tok_dir))
        tokenizer = CLIPTokenizer(
            str(vocab), str(merges), pad_token="<|endoftext|>", model_max_length=77
        )
    saved_rng = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(8, 8, 8, 8),  # four blocks: 8x down-sampling, like real SD
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            norm_num_groups=4,
            sample_size=64,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=32,
                intermediate_size=37,
                num_attention_heads=4,
                num_hidden_layers=2,
                max_position_embeddings=77,
                projection_dim=32,
                layer_norm_eps=1e-5,
                bos_token_id=49406,
                eos_token_id=49407,
                pad_token_id=49407,
            )
        )
    finally:
        torch.random.set_rng_state(saved_rng)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    # diffusers' __init__ shows type checkers its dummy-object branch, whose classes lack
    # DiffusionPipeline's methods.
    pipe.save_pretrained(str(folder))  # type: ignore[attr-defined]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte → printable character table."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))
