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
