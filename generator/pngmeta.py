"""PNG files carrying the A1111 `parameters` text chunk that other Stable Diffusion tools read.

Format (the last line holds comma-separated `Key: value` pairs; values with a comma, colon or
quote are JSON-quoted, as A1111 does):

    <prompt>
    Negative prompt: <negative prompt>
    Steps: 4, Sampler: Euler, CFG scale: 5.0, Seed: 42, Size: 64x64, Model: tiny
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin

_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_NEG = "Negative prompt:"


@dataclass(frozen=True)
class Parameters:
    prompt: str
    negative_prompt: str
    steps: int
    sampler: str
    cfg_scale: float
    seed: int
    width: int
    height: int
    model: str
    denoising_strength: float | None = None  # image-to-image (A1111's own key)
    qr: str | None = None  # the text of a QR code in the image

    def to_text(self) -> str:
        pairs = [
            ("Steps", str(self.steps)),
            ("Sampler", self.sampler),
            ("CFG scale", _num(self.cfg_scale)),
            ("Seed", str(self.seed)),
            ("Size", f"{self.width}x{self.height}"),
            ("Model", self.model),
        ]
        if self.denoising_strength is not None:
            pairs.append(("Denoising strength", _num(self.denoising_strength)))
        if self.qr is not None:
            pairs.append(("QR", self.qr))
        tail = ", ".join(f"{k}: {_quote(v)}" for k, v in pairs)
        return f"{self.prompt}\n{_NEG} {self.negative_prompt}\n{tail}"


def parse_parameters(text: str) -> Parameters:
    """Read an A1111 `parameters` text back; ValueError when a required key is missing."""
    lines = text.strip("\n").split("\n")
    tail = lines.pop() if lines else ""
    if not _PAIR.match(tail) or "Steps:" not in tail:  # A1111 writes no params line sometimes
        lines.append(tail)
        tail = ""
    prompt_lines: list[str] = []
    neg_lines: list[str] = []
    in_neg = False
    for line in lines:
        if line.startswith(_NEG):
            in_neg = True
            line = line[len(_NEG) :].lstrip(" ")
        (neg_lines if in_neg else prompt_lines).append(line)
    pairs = {k.strip(): _unquote(v.strip()) for k, v in _PAIR.findall(tail)}
    try:
        width, height = (int(x) for x in pairs["Size"].split("x"))
        return Parameters(
            prompt="\n".join(prompt_lines),
            negative_prompt="\n".join(neg_lines),
            steps=int(pairs["Steps"]),
            sampler=pairs.get("Sampler", ""),
            cfg_scale=float(pairs["CFG scale"]),
            seed=int(pairs["Seed"]),
            width=width,
            height=height,
            model=pairs.get("Model", ""),
            denoising_strength=(
                float(pairs["Denoising strength"]) if "Denoising strength" in pairs else None
            ),
            qr=pairs.get("QR"),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not an A1111 parameters text: {exc}") from None


def save_png(image: Image.Image, path: Path, params: Parameters) -> Path:
    """Write atomically (temp file + rename) so readers never see half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", params.to_text())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    image.save(tmp, format="PNG", pnginfo=info)
    os.replace(tmp, path)
    return path


def read_parameters(path: Path) -> Parameters:
    """The parsed `parameters` chunk of a PNG file."""
    with Image.open(path) as img:
        text = img.text.get("parameters")  # type: ignore[attr-defined]
    if text is None:
        raise ValueError(f"{path} has no 'parameters' chunk")
    return parse_parameters(text)


def image_path(data_dir: str | Path, job_id: int, index: int) -> Path:
    """Where image `index` of a job is stored."""
    return Path(data_dir) / "images" / str(job_id) / f"{index}.png"


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ',:"\n') else value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _num(x: float) -> str:
    return f"{x:g}" if x != int(x) else f"{x:.1f}"
