"""QR-code art: make the code (segno, error correction H), place it, blend it, and prove it scans.

Every image that should carry a code is decoded with a real QR decoder (zxing-cpp, else
OpenCV's QRCodeDetector) before it is returned. If the picture as generated (e.g. by a QR
ControlNet) does not scan, the code is blended in, a little stronger each time, until it does;
one that never scans is refused with `qr_unreadable` rather than returned broken.

No torch here; `check_qr` is called by `generator.limits` (ingest) too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from generator.types import QR_POSITIONS

BORDER = 2  # quiet-zone modules around the code (the standard asks 4; 2 scans and looks better)
MIN_MODULE_PX = 2
AUTO_SHARE = {"center": 0.8, "corner": 0.45}  # share of the shorter side an auto-sized code fills


class QrError(ValueError):
    """The code cannot be made for this text/size/position; the message says why."""


@dataclass(frozen=True)
class QrLayout:
    """Where the code (quiet zone included) sits in the image, in pixels."""

    matrix: np.ndarray  # bool, True = dark module; quiet zone included
    module_px: int
    x: int
    y: int

    @property
    def size(self) -> int:
        return int(self.matrix.shape[0]) * self.module_px


def _matrix(text: str) -> np.ndarray:
    try:
        import segno
    except ImportError as exc:  # pragma: no cover - a dependency
        raise QrError("QR codes need the segno package (pip install segno)") from exc
    try:
        code = segno.make_qr(text, error="h", boost_error=False)
    except Exception as exc:  # segno.DataOverflowError and friends
        raise QrError(f"the text is too long for a QR code ({len(text)} characters)") from exc
    rows = [list(row) for row in code.matrix_iter(scale=1, border=BORDER)]
    return np.array(rows, dtype=bool)


def layout(text: str, width: int, height: int, position: str, module: int | None) -> QrLayout:
    """Place the code for `text`; QrError when it cannot fit readably."""
    if position not in QR_POSITIONS:
        raise QrError(f"QR position {position!r} is not one of {', '.join(QR_POSITIONS)}")
    matrix = _matrix(text)
    modules = int(matrix.shape[0])
    side = min(width, height)
    if module is None:
        share = AUTO_SHARE["center" if position == "center" else "corner"]
        module = int(side * share) // modules
        if module < MIN_MODULE_PX:
            module = side // modules  # use the whole side rather than give up
    if module < MIN_MODULE_PX:
        raise QrError(
            f"a QR code for this text has {modules} modules a side and needs at least "
            f"{modules * MIN_MODULE_PX}px; the image is {width}x{height}. Use a larger size or "
            "a shorter text"
        )
    size = modules * module
    if size > side:
        raise QrError(
            f"a QR code of {modules} modules at {module}px each is {size}px, larger than the "
            f"{width}x{height} image; use a smaller module size"
        )
    vertical, _, horizontal = position.partition("-") if position != "center" else ("", "", "")
    x = (width - size) // 2 if not horizontal else (0 if horizontal == "left" else width - size)
    y = (height - size) // 2 if not vertical else (0 if vertical == "top" else height - size)
    return QrLayout(matrix, module, x, y)


def check_qr(text: str, width: int, height: int, position: str, module: int | None) -> None:
    """Raise QrError when `layout` would."""
    layout(text, width, height, position, module)


def _code_pixels(lay: QrLayout) -> np.ndarray:
    """The code as a float32 array of 0 (dark) / 255 (light), size x size."""
    light = (~lay.matrix).astype(np.float32) * 255.0
    return np.kron(light, np.ones((lay.module_px, lay.module_px), dtype=np.float32))


def control_image(lay: QrLayout, width: int, height: int) -> Image.Image:
    """The ControlNet conditioning picture: the code on mid-grey, RGB."""
    canvas = np.full((height, width), 128.0, dtype=np.float32)
    canvas[lay.y : lay.y + lay.size, lay.x : lay.x + lay.size] = _code_pixels(lay)
    return Image.fromarray(canvas.astype(np.uint8)).convert("RGB")


def blend(image: Image.Image, lay: QrLayout, strength: float) -> Image.Image:
    """Pull each pixel's brightness towards its module's black/white by `strength` (0..1),
    keeping the colour (hue) of the picture."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32).copy()
    box = arr[lay.y : lay.y + lay.size, lay.x : lay.x + lay.size]
    target = _code_pixels(lay)
    luma = box @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    box += (strength * (target - luma))[..., None]
    arr[lay.y : lay.y + lay.size, lay.x : lay.x + lay.size] = box
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))


def decode(image: Image.Image) -> list[str]:
    """Texts of the QR codes a real decoder finds in the image."""
    return _decoder()(image)


def _zxing(image: Image.Image) -> list[str]:
    import zxingcpp

    formats: Any = zxingcpp.BarcodeFormat.QRCode
    found = zxingcpp.read_barcodes(image.convert("L"), formats=formats)
    return [b.text for b in found if b.valid]


def _opencv(image: Image.Image) -> list[str]:
    import cv2

    gray = np.asarray(image.convert("L"))
    text, _, _ = cv2.QRCodeDetector().detectAndDecode(gray)
    return [text] if text else []


def _decoder() -> Callable[[Image.Image], list[str]]:
    for module, fn in (("zxingcpp", _zxing), ("cv2", _opencv)):
        try:
            __import__(module)
        except ImportError:
            continue
        return fn
    raise QrError("no QR decoder is installed (pip install zxing-cpp)")


def strengths(start: float, step: float, top: float) -> list[float]:
    """start, start+step, … up to and including top."""
    out: list[float] = []
    value = start
    while value < top - 1e-9:
        out.append(round(value, 4))
        value += step
    out.append(round(top, 4))
    return out


@dataclass(frozen=True)
class Scanned:
    image: Image.Image
    strength: float  # 0.0: the picture scanned as generated


def make_scannable(
    image: Image.Image, text: str, lay: QrLayout, steps: list[float], **_: Any
) -> Scanned | None:
    """The image as is if it scans to `text`, else the weakest blend in `steps` that does."""
    if text in decode(image):
        return Scanned(image, 0.0)
    for strength in steps:
        blended = blend(image, lay, strength)
        if text in decode(blended):
            return Scanned(blended, strength)
    return None


def alt_text(text: str) -> str:
    return f"The image contains a QR code that reads: {text}"
