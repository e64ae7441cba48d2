"""Report pictures drawn with Pillow (no plotting library needed): ROC curve, reliability diagram, confusion matrix,
and a grid of examples with true (green) and predicted (red) boxes and masks over the X-ray.

Every function writes one PNG and returns its path; inputs are plain numbers, label lists and arrays.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxrvlm.io import read_image, resize_to
from cxrvlm.metrics import auroc, binary_at_threshold, roc_curve
from cxrvlm.metrics.calibration import ece, reliability

log = logging.getLogger(__name__)

TRUE_COLOUR = (40, 200, 80)
PRED_COLOUR = (235, 60, 50)
CURVE_COLOUR = (30, 90, 200)
Box = tuple[float, float, float, float]


def _font(size: int = 12) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def _unit_square(size: int, x_label: str, y_label: str) -> tuple[Image.Image, Any, Any, Any]:
    """A white picture with the [0, 1] x [0, 1] plot frame, its ticks and axis names: (image, draw, font, xy), xy
    mapping plot coordinates to pixels."""
    img = Image.new("RGB", (size, size), "white")
    d, font = ImageDraw.Draw(img), _font(12)
    left, top, right, bottom = 48, 44, size - 16, size - 40

    def xy(fx: float, fy: float) -> tuple[float, float]:
        return left + fx * (right - left), bottom - fy * (bottom - top)

    d.rectangle([left, top, right, bottom], outline="black")
    for v in (0.0, 0.5, 1.0):
        x, yy = xy(v, v)
        d.text((x - 8, bottom + 4), f"{v:.1f}", fill="black", font=font)
        d.text((left - 30, yy - 6), f"{v:.1f}", fill="black", font=font)
    d.text((left + 60, size - 18), x_label, fill="black", font=font)
    d.text((8, top - 18), y_label, fill="black", font=font)
    return img, d, font, xy


def roc_png(y: Sequence[int], score: Sequence[float], path: str | Path, threshold: float | None = None,
            title: str = "ROC", size: int = 360) -> Path:
    """ROC curve of scores against 0/1 truth, the chance diagonal, the AUROC, and the operating point
    (`score >= threshold` positive) as a red dot."""
    fpr, tpr, _ = roc_curve(y, score)
    img, d, font, xy = _unit_square(size, "1 - specificity", "sensitivity")
    d.line([xy(0, 0), xy(1, 1)], fill=(170, 170, 170), width=1)
    points = [xy(float(a), float(b)) for a, b in zip(fpr, tpr) if math.isfinite(a) and math.isfinite(b)]
    if len(points) >= 2:
        d.line(points, fill=CURVE_COLOUR, width=2)
    value = auroc(y, score)
    label = f"{title}  AUROC {value:.3f}" if math.isfinite(value) else f"{title}  AUROC undefined (one class)"
    d.text((8, 6), label, fill="black", font=font)
    if threshold is not None and sum(y) and len(y) - sum(y):
        r = binary_at_threshold(y, score, threshold)
        cx, cy = xy(1 - r["specificity"], r["sensitivity"])
        d.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], fill=PRED_COLOUR)
        d.text((cx + 8, cy + 4), f"t={threshold:.3f}", fill=PRED_COLOUR, font=font)
    return _save(img, path)


def reliability_png(y: Sequence[float], p: Sequence[float], path: str | Path, title: str = "Reliability",
                    size: int = 360) -> Path:
    """Reliability diagram: per bin of predicted probability, the observed share of positives (a bar, its number of
    cases above it) against the diagonal of perfect calibration, and the expected calibration error."""
    img, d, font, xy = _unit_square(size, "predicted probability", "observed share")
    for low, high, n, _, share in reliability(y, p):
        x0, y0 = xy(low, share)
        x1, y1 = xy(high, 0.0)
        d.rectangle([x0 + 2, y0, x1 - 2, y1], fill=CURVE_COLOUR)
        d.text((x0 + 2, y0 - 14), str(n), fill="black", font=font)
    d.line([xy(0, 0), xy(1, 1)], fill=PRED_COLOUR, width=1)
    d.text((8, 6), f"{title}  ECE {ece(y, p):.3f}", fill="black", font=font)
    return _save(img, path)


def confusion_png(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], path: str | Path,
                  title: str = "confusion matrix", cell: int = 76) -> Path:
    """Counts (R, C): row = true class, column = predicted; shaded by the row's fraction."""
    m = np.asarray(matrix, dtype=float)
    if m.shape != (len(rows), len(cols)):
        raise ValueError(f"confusion_png: matrix shape {m.shape} does not match {len(rows)} rows x {len(cols)} columns")
    font = _font(11)
    label_w, head_h = 130, 70
    img = Image.new("RGB", (label_w + cell * len(cols) + 10, head_h + cell * len(rows) + 30), "white")
    d = ImageDraw.Draw(img)
    d.text((6, 6), f"{title} (rows: true, columns: predicted)", fill="black", font=font)
    for j, name in enumerate(cols):
        d.text((label_w + j * cell + 4, head_h - 16), _short(name, 12), fill="black", font=font)
    totals = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
    for i, name in enumerate(rows):
        y0 = head_h + i * cell
        d.text((6, y0 + cell // 2 - 6), _short(name, 20), fill="black", font=font)
        for j in range(len(cols)):
            x0, shade = label_w + j * cell, int(255 - 190 * frac[i, j])
            d.rectangle([x0, y0, x0 + cell - 1, y0 + cell - 1], fill=(shade, shade, 255), outline=(200, 200, 200))
            d.text((x0 + cell // 2 - 8, y0 + cell // 2 - 6), f"{int(m[i, j])}",
                   fill="white" if frac[i, j] > 0.6 else "black", font=font)
    return _save(img, path)


@dataclass
class GridItem:
    """One example of the grid: the first image, boxes (label, normalised x1 y1 x2 y2) and masks (bool H x W, any
    size: resized onto the thumbnail) of the truth and of the prediction, and a caption."""

    image: str
    caption: str = ""
    true_boxes: list[tuple[str, Box]] = field(default_factory=list)
    pred_boxes: list[tuple[str, Box]] = field(default_factory=list)
    true_masks: list[np.ndarray] = field(default_factory=list)
    pred_masks: list[np.ndarray] = field(default_factory=list)


def example_grid_png(items: Sequence[GridItem], path: str | Path, thumb: int = 224, columns: int = 4) -> Path | None:
    """Thumbnails with truth in green and prediction in red; an unreadable image is drawn as a grey tile with the
    reason. None when there is no item."""
    if not items:
        return None
    font, caption_h = _font(11), 34
    rows = math.ceil(len(items) / columns)
    cols = min(columns, len(items))
    sheet = Image.new("RGB", (cols * (thumb + 6) + 6, rows * (thumb + caption_h + 6) + 6), "white")
    for k, item in enumerate(items):
        tile = _tile(item, thumb, font)
        x, y = 6 + (k % columns) * (thumb + 6), 6 + (k // columns) * (thumb + caption_h + 6)
        sheet.paste(tile, (x, y))
        d = ImageDraw.Draw(sheet)
        for line_no, line in enumerate(_wrap(item.caption, thumb // 6)[:2]):
            d.text((x, y + thumb + 2 + 14 * line_no), line, fill="black", font=font)
    return _save(sheet, path)


def _tile(item: GridItem, thumb: int, font: Any) -> Image.Image:
    try:
        pixels = read_image(item.image).pixels
    except (ValueError, OSError) as e:
        tile = Image.new("RGB", (thumb, thumb), (128, 128, 128))
        ImageDraw.Draw(tile).text((4, 4), _short(f"unreadable: {e}", 40), fill="white", font=font)
        return tile
    gray = np.clip(resize_to(pixels, (thumb, thumb)) * 255, 0, 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    for masks, colour in ((item.true_masks, TRUE_COLOUR), (item.pred_masks, PRED_COLOUR)):
        for m in masks:
            small = _fit_mask(m, thumb)
            rgb[small] = 0.55 * rgb[small] + 0.45 * np.asarray(colour, np.float32)
    tile = Image.fromarray(rgb.astype(np.uint8))
    d = ImageDraw.Draw(tile)
    for boxes, colour, width in ((item.true_boxes, TRUE_COLOUR, 2), (item.pred_boxes, PRED_COLOUR, 1)):
        for label, (x1, y1, x2, y2) in boxes:
            rect = [x1 * thumb, y1 * thumb, max(x2 * thumb, x1 * thumb + 1), max(y2 * thumb, y1 * thumb + 1)]
            d.rectangle(rect, outline=colour, width=width)
            d.text((rect[0] + 2, rect[1] + 1), _short(label, 18), fill=colour, font=font)
    return tile


def _fit_mask(mask: Any, thumb: int) -> np.ndarray:
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2 or not m.size:
        return np.zeros((thumb, thumb), bool)
    return np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((thumb, thumb), Image.NEAREST)) > 127


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "..."


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in str(text).split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + [line] if line else lines


def _save(img: Image.Image, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
