"""The overlay picture of a reading: the X-ray with masks (semi-transparent, outlined) and box outlines in their
label's colour, the TB saliency map in red when TB is called, and a banner above the image with the TB probability,
the research-use notice and a legend (each label in its colour with its box's and mask's scores: no text on the
film, so no two tags can collide at any size).

    image = render_overlay(pixels, reading)      # PIL RGB image; pixels: float32 (H, W) in [0, 1]
    image.save("chest.overlay.png")
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from cxrvlm.about import NOTICE
from cxrvlm.io import to_uint8
from cxrvlm.tokens.rle import rle_decode_resized

# Colour-blind-safe (Okabe-Ito) colours, one per label in order of appearance.
PALETTE = ((230, 159, 0), (86, 180, 233), (0, 158, 115), (240, 228, 66), (0, 114, 178), (213, 94, 0),
           (204, 121, 167))
MASK_ALPHA = 0.35
HEAT_ALPHA = 0.45  # at the map's hottest cell; cells below half of its range are not tinted
HEAT_COLOUR = (220, 30, 30)
MIN_SIDE, MAX_SIDE = 512, 1024  # the picture is scaled so text stays readable and files stay small


def display_scale(height: int, width: int) -> float:
    """Scale from input pixels to overlay pixels: up to MIN_SIDE for small images, down to MAX_SIDE for big ones."""
    longest = max(height, width)
    if longest < MIN_SIDE:
        return MIN_SIDE / longest
    return MAX_SIDE / longest if longest > MAX_SIDE else 1.0


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed-size bitmap font
        return ImageFont.load_default()


def label_colours(reading: dict[str, Any]) -> dict[str, tuple[int, int, int]]:
    """Label -> colour, stable within a reading (segmentations first, then detections)."""
    labels = [o["label"] for o in (*reading.get("segmentations", []), *reading.get("detections", []))]
    return {lab: PALETTE[i % len(PALETTE)] for i, lab in enumerate(dict.fromkeys(labels))}


def _blend_masks(rgb: np.ndarray, segmentations: Sequence[dict], colours: dict, scale: float) -> np.ndarray:
    """Masks read from RLE at the display size (a big mask is never decoded whole), tinted, with a solid outline."""
    h, w = rgb.shape[:2]
    out = rgb.astype(np.float32)
    for seg in segmentations:
        mask = rle_decode_resized(seg["mask"], (h, w))
        colour = np.array(colours.get(seg["label"], PALETTE[0]), np.float32)
        out[mask] = (1 - MASK_ALPHA) * out[mask] + MASK_ALPHA * colour
        out[mask & ~ndimage.binary_erosion(mask, iterations=2)] = colour
    return out.clip(0, 255).astype(np.uint8)


def _blend_heat(rgb: np.ndarray, reading: dict[str, Any]) -> np.ndarray:
    """The TB saliency map (`saliency`, a small grey PNG) stretched over the film and tinted red where it is in the
    upper half of its range; only when the reading calls TB (a map of a negative film would show evidence for a
    call not made)."""
    tb = reading.get("tb") or {}
    entry = next((s for s in reading.get("saliency", []) if s.get("label") == "tuberculosis"), None)
    if tb.get("label") != "tuberculosis" or entry is None:
        return rgb
    cells = Image.open(io.BytesIO(base64.b64decode(entry["png"]))).convert("L")
    heat = np.asarray(cells.resize((rgb.shape[1], rgb.shape[0]), Image.Resampling.BILINEAR), np.float32) / 255.0
    alpha = (HEAT_ALPHA * np.clip((heat - 0.5) * 2.0, 0.0, 1.0))[:, :, None]
    return ((1 - alpha) * rgb + alpha * np.array(HEAT_COLOUR, np.float32)).clip(0, 255).astype(np.uint8)


def _draw_boxes(draw: ImageDraw.ImageDraw, items: Sequence[dict], colours: dict, scale: float, top: int) -> None:
    """Box outlines in their label's colour; their names and scores are in the legend, never on the film."""
    for item in items:
        x1, y1, x2, y2 = (float(v) * scale for v in item["box"])
        draw.rectangle([x1, y1 + top, x2, y2 + top], outline=colours.get(item["label"], PALETTE[0]), width=2)


def legend_lines(reading: dict[str, Any], colours: dict) -> list[tuple[tuple[int, int, int], str]]:
    """(colour, text) per label drawn: its box's score (the probability it is right, when calibrated) and its
    mask's, so the tags of one organ cannot collide on the film."""
    out = []
    for label, colour in colours.items():
        parts = [f"box {float(d['score']):.2f}" for d in reading.get("detections", []) if d["label"] == label]
        parts += [f"mask {float(s['score']):.2f}" for s in reading.get("segmentations", []) if s["label"] == label]
        out.append((colour, f"{label}: {', '.join(parts)}"))
    return out


def banner_lines(reading: dict[str, Any]) -> list[str]:
    """The banner's text: TB probability (or why there is none), then the notice."""
    tb = reading.get("tb")
    if tb:
        first = (f"TB probability {tb['probability']:.2f} -> {tb['label']} "
                 f"(threshold {tb['threshold']:.2f}, {tb.get('threshold_source', 'default')})")
    else:
        first = "TB probability: not computed"
    return [first, reading.get("notice", NOTICE)]


def _input_size(pixels: np.ndarray, reading: dict[str, Any]) -> tuple[int, int]:
    """(H, W) of the input image the reading's boxes and masks are in: the reading's `image_size`, else the pixels'
    (which may be a reduced copy of a big input)."""
    size = reading.get("image_size")
    if isinstance(size, (list, tuple)) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size):
        return int(size[0]), int(size[1])
    return int(pixels.shape[0]), int(pixels.shape[1])


def render_overlay(pixels: np.ndarray, reading: dict[str, Any]) -> Image.Image:
    """The X-ray (float32 (H, W) in [0, 1], the view the reading's boxes refer to, at the input's size or reduced)
    with the reading drawn on it, scaled to the display size."""
    h, w = _input_size(pixels, reading)
    scale = display_scale(h, w)
    dw, dh = max(1, round(w * scale)), max(1, round(h * scale))
    gray = Image.fromarray(to_uint8(pixels)).resize((dw, dh), Image.Resampling.BILINEAR)
    rgb = np.repeat(np.asarray(gray)[:, :, None], 3, axis=2)
    colours = label_colours(reading)
    rgb = _blend_heat(_blend_masks(rgb, reading.get("segmentations", []), colours, scale), reading)
    font = _font(max(12, dw // 45))
    lines = list(zip(((255, 255, 255), (255, 210, 0)), banner_lines(reading))) + legend_lines(reading, colours)
    line_h = font.size + 8
    top = line_h * len(lines) + 8
    canvas = Image.new("RGB", (dw, dh + top), (20, 20, 20))
    canvas.paste(Image.fromarray(rgb), (0, top))
    draw = ImageDraw.Draw(canvas)
    for i, (colour, line) in enumerate(lines):
        draw.text((8, 6 + i * line_h), line, fill=colour, font=font)
    _draw_boxes(draw, reading.get("detections", []), colours, scale, top)
    return canvas


def save_overlay(pixels: np.ndarray, reading: dict[str, Any], path: Any) -> None:
    render_overlay(pixels, reading).save(path, format="PNG", optimize=True)
