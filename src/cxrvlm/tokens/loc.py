"""PaliGemma location tokens: `<locYYYY>` x4 in the order y1 x1 y2 x2, each round(v * 1023) of a normalised
coordinate clipped to 0..1023 (big_vision's convention, so a PaliGemma checkpoint and our model share it)."""
from __future__ import annotations

import re

LOC_BINS = 1024
LOC_TOKENS = tuple(f"<loc{i:04d}>" for i in range(LOC_BINS))
LOC_RE = re.compile(r"<loc(\d{4})>")


def quantise(v: float) -> int:
    """Normalised coordinate -> bin 0..1023."""
    return min(max(int(round(float(v) * (LOC_BINS - 1))), 0), LOC_BINS - 1)


def dequantise(i: int) -> float:
    return min(max(int(i), 0), LOC_BINS - 1) / (LOC_BINS - 1)


def encode_box(x1: float, y1: float, x2: float, y2: float) -> str:
    """Normalised box -> four loc tokens, y1 x1 y2 x2."""
    return "".join(f"<loc{quantise(v):04d}>" for v in (y1, x1, y2, x2))


def decode_locs(tokens: list[int]) -> tuple[float, float, float, float]:
    """Four loc bins in y1 x1 y2 x2 order -> normalised (x1, y1, x2, y2)."""
    y1, x1, y2, x2 = (dequantise(t) for t in tokens)
    return (x1, y1, x2, y2)


def zoom_shift_coord(v: float, zoom: float, shift: float = 0.0) -> float:
    """Where normalised coordinate v lands when the image is zoomed by `zoom` about its centre, then shifted."""
    return zoom * (v - 0.5) + 0.5 + shift


def zoom_shift_locs(text: str, zoom: float, dx: float, dy: float) -> str:
    """Rewrite every box of loc tokens in `text` for the image zoomed by `zoom` about its centre, then shifted by
    (dx, dy) of its width and height: v' = zoom * (v - 0.5) + 0.5 + shift. Loc tokens come in boxes of four
    (y1 x1 y2 x2); text whose loc-token count is not a multiple of four is refused."""
    bins = [int(m) for m in LOC_RE.findall(text)]
    if len(bins) % 4:
        raise ValueError(f"zoom_shift_locs: {len(bins)} loc tokens, not whole boxes of four")
    pos = iter(range(len(bins)))

    def move(m: re.Match) -> str:
        i = next(pos)
        shift = dy if i % 2 == 0 else dx  # y1 x1 y2 x2: even positions are y
        return f"<loc{quantise(zoom_shift_coord(dequantise(int(m.group(1))), zoom, shift)):04d}>"

    return LOC_RE.sub(move, text)


def locs_extent(text: str) -> tuple[float, float, float, float] | None:
    """Normalised (x1, y1, x2, y2) around every box of loc tokens in `text`; None when it has none."""
    bins = [int(m) for m in LOC_RE.findall(text)]
    boxes = [decode_locs(bins[i:i + 4]) for i in range(0, len(bins) - 3, 4)]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
