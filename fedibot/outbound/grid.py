"""Several images as ONE grid image: one upload instead of n when the budget is short.

The alt text names each tile by its place ("top left: … Seed: 123."), so nothing the
separate images said is lost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from federation.types import MediaItem

MAX_SIDE = 4096  # larger grids are scaled down (servers resize or refuse huge images)


def grid_shape(n: int) -> tuple[int, int]:
    """(columns, rows): 2 → 2×1, 3–4 → 2×2, 5–9 → 3×3, …"""
    if n <= 1:
        return 1, 1
    if n == 2:
        return 2, 1
    cols = math.ceil(math.sqrt(n))
    return cols, math.ceil(n / cols)


def tile_names(n: int) -> list[str]:
    """Where each tile sits, in reading order: "left", "top right", "middle centre", …"""
    cols, rows = grid_shape(n)
    col_words = {1: [""], 2: ["left", "right"], 3: ["left", "centre", "right"]}.get(cols)
    row_words = {1: [""], 2: ["top", "bottom"], 3: ["top", "middle", "bottom"]}.get(rows)
    names = []
    for i in range(n):
        r, c = divmod(i, cols)
        if col_words is None or row_words is None:
            names.append(f"row {r + 1}, column {c + 1}")
            continue
        name = " ".join(w for w in (row_words[r], col_words[c]) if w)
        names.append("centre" if name == "middle centre" else name)
    return names


def _shared_prefix(texts: Sequence[str]) -> str:
    """The longest common start of all texts that ends at a sentence (". ")."""
    if len(texts) < 2:
        return ""
    first = texts[0]
    end = 0
    for i, ch in enumerate(first):
        if any(len(t) <= i or t[i] != ch for t in texts[1:]):
            break
        end = i + 1
    cut = first[:end].rfind(". ")
    return first[: cut + 1] if cut >= 0 else ""


def grid_alt_text(alts: Sequence[str]) -> str:
    """ "4 images in a grid. <what they share> top left: <the rest>. top right: …" """
    shared = _shared_prefix(alts)
    parts = [f"{len(alts)} images in a grid."]
    if shared:
        parts.append(shared)
    for name, alt in zip(tile_names(len(alts)), alts, strict=True):
        rest = alt[len(shared) :].strip() or alt
        parts.append(f"{name.capitalize()}: {rest}")
    return " ".join(parts)


def compose_grid(media: Sequence[MediaItem], out: Path) -> MediaItem:
    """Paste the images into one PNG at `out` (tiles as large as the largest image)."""
    from PIL import Image

    cols, rows = grid_shape(len(media))
    tiles = []
    for item in media:
        with Image.open(item.path) as im:
            tiles.append(im.convert("RGB"))
    width = max(t.width for t in tiles)
    height = max(t.height for t in tiles)
    scale = min(1.0, MAX_SIDE / (width * cols), MAX_SIDE / (height * rows))
    tw, th = max(1, int(width * scale)), max(1, int(height * scale))
    canvas = Image.new("RGB", (tw * cols, th * rows), (0, 0, 0))
    for i, tile in enumerate(tiles):
        if scale < 1.0:
            tile = tile.resize((max(1, int(tile.width * scale)), max(1, int(tile.height * scale))))
        r, c = divmod(i, cols)
        x = c * tw + (tw - tile.width) // 2
        y = r * th + (th - tile.height) // 2
        canvas.paste(tile, (x, y))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    canvas.save(tmp, format="PNG")
    tmp.replace(out)
    return MediaItem(path=out, alt_text=grid_alt_text([m.alt_text for m in media]))
