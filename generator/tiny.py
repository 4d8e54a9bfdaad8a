"""Tiny random-weight pipelines of every family, built offline from configs (tests, `fedibot try`).

The built-in `tiny` model is a Stable Diffusion 1.x-layout pipeline saved once under
`<data_dir>/models/tiny` and then loaded through the same `from_pretrained` path as real models.
Its tokenizers are made here with the `tokenizers` library (through transformers' tokenizer
classes) from a small vocabulary generated in code — byte-level, so any text encodes — so a
plain `pip install` is enough: no vocabulary file is downloaded or copied from elsewhere.

`build_family(kind, folder)` saves a tiny pipeline of any family (SDXL, SD3, FLUX, SANA,
SANA-Sprint, PixArt-Σ, …) the same way; tests and the benchmark load those folders with `kind`
left out, so detection from `model_index.json` is exercised too. Sizes are chosen so a 64x64
image with a few steps takes milliseconds on a CPU: one pipeline call's fixed cost dominates,
which is exactly what makes batching pay.
"""

from __future__ import annotations

import json
import shutil
import string
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TINY_VERSION = "2"
MARKER = "fedibot-tiny.json"
TINY_FAMILIES = ("sd15", "sd2", "sdxl", "sd3", "flux", "sana", "sana_sprint", "pixart_sigma")
_LETTERS = string.ascii_lowercase


def tiny_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "models" / "tiny"


def ensure_tiny(data_dir: str | Path) -> Path:
    """The folder of the built-in tiny pipeline, building it first if missing or outdated."""
    return ensure_family("tiny", tiny_path(data_dir))


def ensure_family(kind: str, target: Path) -> Path:
    """Build (once) the tiny pipeline of `kind` into `target`; safe against concurrent builds."""
    marker = target / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("version") == TINY_VERSION:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    try:
        build_family(kind, tmp)
        (tmp / MARKER).write_text(json.dumps({"version": TINY_VERSION, "kind": kind}))
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


def build_tiny(folder: Path) -> None:
    """The built-in `tiny` model (kept for callers of the old name)."""
    build_family("tiny", folder)


def build_family(kind: str, folder: Path) -> None:
    """Build the deterministic random-weight pipeline of `kind` and `save_pretrained` it."""
    builders: dict[str, Callable[[], Any]] = {
        "tiny": lambda: _sd(v2=False),
        "sd15": lambda: _sd(v2=False),
        "sd2": lambda: _sd(v2=True),
        "sdxl": _sdxl,
        "sd3": _sd3,
        "flux": _flux,
        "sana": lambda: _sana(sprint=False),
        "sana_sprint": lambda: _sana(sprint=True),
        "pixart_sigma": _pixart,
    }
    if kind not in builders:
        raise ValueError(f"no tiny build for kind {kind!r}; known: {sorted(builders)}")
    with _seeded():
        pipe = builders[kind]()
    pipe.save_pretrained(str(folder))


def build_tiny_controlnet(folder: Path) -> None:
    """A tiny ControlNet matching the `tiny`/sd15 UNet (for QR-art tests)."""
    from diffusers import ControlNetModel

    with _seeded():
        net: Any = ControlNetModel(
            block_out_channels=(32, 64),
            layers_per_block=1,
            in_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            cross_attention_dim=32,
            attention_head_dim=8,
            conditioning_embedding_out_channels=(8, 8, 8, 8),  # 8x down, like the VAE
            norm_num_groups=8,
        )
        # ControlNet's output convolutions start at zero (it adds nothing until trained);
        # give them random weights so the conditioning picture really changes the result
        import torch

        with torch.no_grad():
            for conv in [*net.controlnet_down_blocks, net.controlnet_mid_block]:
                conv.weight.normal_(0.0, 0.5)
    net.save_pretrained(str(folder))


# --- tokenizers ----------------------------------------------------------------------------


def clip_tokenizer(max_length: int = 77) -> Any:
    """A byte-level CLIP BPE tokenizer: 512 byte tokens + lowercase-pair merges (1866 ids)."""
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    merges = [(a, b) for a in _LETTERS for b in _LETTERS]
    merges += [(a, b + "</w>") for a in _LETTERS for b in _LETTERS]
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    merge_pairs: Any = merges  # the tokenizers backend takes (left, right) pairs
    return CLIPTokenizer(
        vocab={tok: i for i, tok in enumerate(vocab)},
        merges=merge_pairs,
        pad_token="<|endoftext|>",
        model_max_length=max_length,
    )


def t5_tokenizer() -> Any:
    """A Unigram T5 tokenizer over printable ASCII and '▁'+letter pieces."""
    from transformers import T5TokenizerFast  # type: ignore[attr-defined]

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in string.printable.strip()]
    pieces += [("▁" + c, -2.5) for c in _LETTERS]
    return T5TokenizerFast(vocab=pieces, extra_ids=0)


def gemma_tokenizer() -> Any:
    """A Gemma BPE tokenizer with byte fallback: every text encodes."""
    from transformers import GemmaTokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for i in range(256):
        vocab[f"<0x{i:02X}>"] = len(vocab)
    for c in ["▁", *string.printable.strip()]:
        vocab.setdefault(c, len(vocab))
    return GemmaTokenizer(vocab=vocab, merges=[])


# --- components ----------------------------------------------------------------------------


@contextmanager
def _seeded() -> Iterator[None]:
    import torch

    saved = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        yield
    finally:
        torch.random.set_rng_state(saved)


def _clip_text(tokenizer: Any, projection: bool = False, hidden: int = 32) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        projection_dim=32,
        layer_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModelWithProjection(cfg) if projection else CLIPTextModel(cfg)


def _t5_text(tokenizer: Any) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=32,
            d_kv=8,
            d_ff=37,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=0,  # type: ignore[call-arg]
        )
    )


def _vae(latent_channels: int = 4, **kw: Any) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=latent_channels,
        block_out_channels=(8, 8, 8, 8),  # four blocks: 8x down-sampling, like the real ones
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=4,
        sample_size=64,
        **kw,
    )


def _sd(v2: bool) -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel

    tokenizer = clip_tokenizer()
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
        use_linear_projection=v2,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        prediction_type="v_prediction" if v2 else "epsilon",
    )
    return StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=_clip_text(tokenizer),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def _sdxl() -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    tokenizer = clip_tokenizer()
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(4, 8),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64,  # both text encoders' hidden states side by side
        norm_num_groups=8,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    return StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=_clip_text(tokenizer),
        text_encoder_2=_clip_text(tokenizer, projection=True),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
    )


def _sd3() -> Any:
    from diffusers import (
        FlowMatchEulerDiscreteScheduler,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )

    clip, t5 = clip_tokenizer(), t5_tokenizer()
    transformer = SD3Transformer2DModel(
        sample_size=32,
        patch_size=1,
        in_channels=4,
        num_layers=1,
        attention_head_dim=8,
        num_attention_heads=4,
        caption_projection_dim=32,
        joint_attention_dim=32,
        pooled_projection_dim=64,
        out_channels=4,
    )
    return StableDiffusion3Pipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_vae(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609),
        text_encoder=_clip_text(clip, projection=True),
        text_encoder_2=_clip_text(clip, projection=True),
        text_encoder_3=_t5_text(t5),
        tokenizer=clip,
        tokenizer_2=clip,
        tokenizer_3=t5,
    )


def _flux() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    clip, t5 = clip_tokenizer(), t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels packed 2x2
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        axes_dims_rope=(4, 4, 8),
    )
    return FluxPipeline(
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_vae(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609),
        text_encoder=_clip_text(clip),
        text_encoder_2=_t5_text(t5),
        tokenizer=clip,
        tokenizer_2=t5,
    )


def _sana(sprint: bool) -> Any:
    from diffusers import (
        AutoencoderDC,
        FlowMatchEulerDiscreteScheduler,
        SanaPipeline,
        SanaSprintPipeline,
        SanaTransformer2DModel,
        SCMScheduler,
    )
    from transformers import Gemma2Config, Gemma2Model

    tokenizer = gemma_tokenizer()
    extra: dict[str, Any] = {"qk_norm": "rms_norm_across_heads", "guidance_embeds": True}
    transformer = SanaTransformer2DModel(
        patch_size=1,
        in_channels=4,
        out_channels=4,
        num_layers=1,
        num_attention_heads=2,
        attention_head_dim=4,
        num_cross_attention_heads=2,
        cross_attention_head_dim=4,
        cross_attention_dim=8,
        caption_channels=8,
        sample_size=32,
        **(extra if sprint else {}),
    )
    vae = AutoencoderDC(
        in_channels=3,
        latent_channels=4,
        attention_head_dim=2,
        encoder_block_types=("ResBlock", "ResBlock", "EfficientViTBlock"),
        decoder_block_types=("ResBlock", "ResBlock", "EfficientViTBlock"),
        encoder_block_out_channels=(8, 8, 8),
        decoder_block_out_channels=(8, 8, 8),
        encoder_qkv_multiscales=((), (), (5,)),
        decoder_qkv_multiscales=((), (), (5,)),
        encoder_layers_per_block=(1, 1, 1),
        decoder_layers_per_block=(1, 1, 1),
        downsample_block_type="conv",
        upsample_block_type="interpolate",
        decoder_norm_types="rms_norm",
        decoder_act_fns="silu",
        scaling_factor=0.41407,
    )
    text_encoder = Gemma2Model(
        Gemma2Config(
            head_dim=16,
            hidden_size=8,
            intermediate_size=64,
            max_position_embeddings=8192,
            num_attention_heads=2,
            num_hidden_layers=1,
            num_key_value_heads=2,
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            attn_implementation="eager",  # type: ignore[call-arg]
        )
    )
    if sprint:
        return SanaSprintPipeline(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            vae=vae,
            transformer=transformer,
            scheduler=SCMScheduler(),
        )
    return SanaPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        transformer=transformer,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
    )


def _pixart() -> Any:
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    tokenizer = t5_tokenizer()
    transformer = PixArtTransformer2DModel(
        sample_size=8,
        num_layers=1,
        patch_size=2,
        attention_head_dim=8,
        num_attention_heads=3,
        caption_channels=32,
        in_channels=4,
        cross_attention_dim=24,
        out_channels=8,
        attention_bias=True,
        activation_fn="gelu-approximate",
        num_embeds_ada_norm=1000,
        norm_type="ada_norm_single",
        norm_elementwise_affine=False,
        norm_eps=1e-6,
    )
    return PixArtSigmaPipeline(
        tokenizer=tokenizer,
        text_encoder=_t5_text(tokenizer),
        vae=_vae(),
        transformer=transformer,
        scheduler=DPMSolverMultistepScheduler(),
    )


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
