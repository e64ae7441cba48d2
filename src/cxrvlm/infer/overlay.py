"""The overlay picture of a reading: the X-ray with masks (semi-transparent, outlined) and box outlines in their
label's colour, a saliency map in red (TB's when TB is called, else the first called finding's), and a banner above
the image with the TB probability, the research-use notice and a legend (each label in its colour with its box's
score and whether a mask is drawn, and which call the red map is of: no text on the film, so no two tags can collide
at any size).

It is drawn once, in layers of the overlay's size (`LAYERS`, bottom to top): "film" (the banner, the legend and the
grey film, opaque), then "masks", "heatmap" and "boxes" (transparent where they draw nothing). The picture is the
layers stacked; the web page of `cxrvlm serve` stacks them itself, with a checkbox to hide each of the three.

    image = render_overlay(pixels, reading)      # PIL RGB image; pixels: float32 (H, W) in [0, 1]
    image.save("chest.overlay.png")
    layers = overlay_layers(pixels, reading)     # {"film": RGBA image, "masks": ..., "heatmap": ..., "boxes": ...}
    compose(layers)                              # == render_overlay(pixels, reading)
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
LAYERS = ("film", "masks", "heatmap", "boxes")  # bottom to top
TB = "tuberculosis"  # its map is drawn only when the reading calls TB (the other maps are of called findings)


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


def _tint(colour: Sequence[int], alpha: np.ndarray) -> Image.Image:
    """An RGBA image of one colour with `alpha` (float, [0, 1]) as its opacity, pixel by pixel."""
    rgba = np.empty((*alpha.shape, 4), np.uint8)
    rgba[:, :, :3] = colour
    rgba[:, :, 3] = np.rint(np.clip(alpha, 0.0, 1.0) * 255)
    return Image.fromarray(rgba, "RGBA")


def _mask_layer(segmentations: Sequence[dict], colours: dict, size: tuple[int, int]) -> Image.Image:
    """Masks read from RLE at the film's size (`size`: width, height; a big mask is never decoded whole), tinted with
    a solid outline, each laid over the ones before it."""
    w, h = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    for seg in segmentations:
        mask = rle_decode_resized(seg["mask"], (h, w))
        alpha = np.where(mask, MASK_ALPHA, 0.0)
        alpha[mask & ~ndimage.binary_erosion(mask, iterations=2)] = 1.0
        layer = Image.alpha_composite(layer, _tint(colours.get(seg["label"], PALETTE[0]), alpha))
    return layer


def heat_maps(reading: dict[str, Any]) -> list[dict[str, Any]]:
    """The saliency maps of calls the reading makes, the one the overlay draws first: TB's when TB is called, then
    each called finding's (the reading's maps besides TB's are of called findings, `tasks.saliency`). A map of a
    call not made would show evidence for it, so TB's map of a film read negative is left out."""
    tb_called = (reading.get("tb") or {}).get("label") == TB
    return [s for s in reading.get("saliency", []) if s.get("label") != TB or tb_called]


def _heat_layer(reading: dict[str, Any], size: tuple[int, int]) -> Image.Image:
    """The first of `heat_maps` stretched over the film (`_heat`); empty when the reading calls nothing with a map."""
    maps = heat_maps(reading)
    return _heat(maps[0], size) if maps else Image.new("RGBA", size, (0, 0, 0, 0))


def _heat(entry: dict[str, Any], size: tuple[int, int]) -> Image.Image:
    """A saliency map (a small grey PNG) stretched over the film (`size`: width, height) and tinted red where it is
    in the upper half of its range."""
    cells = Image.open(io.BytesIO(base64.b64decode(entry["png"]))).convert("L")
    heat = np.asarray(cells.resize(size, Image.Resampling.BILINEAR), np.float32) / 255.0
    return _tint(HEAT_COLOUR, HEAT_ALPHA * np.clip((heat - 0.5) * 2.0, 0.0, 1.0))


def _box_layer(items: Sequence[dict], colours: dict, scale: float, size: tuple[int, int], top: int) -> Image.Image:
    """Box outlines in their label's colour on the whole overlay (`size`), the film beginning at row `top`; their
    names and scores are in the legend, never on the film."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for item in items:
        x1, y1, x2, y2 = (float(v) * scale for v in item["box"])
        draw.rectangle([x1, y1 + top, x2, y2 + top], outline=colours.get(item["label"], PALETTE[0]), width=2)
    return layer


def legend_lines(reading: dict[str, Any], colours: dict) -> list[tuple[tuple[int, int, int], str]]:
    """(colour, text) per label drawn: its box's score (the probability it is right, when calibrated) and whether a
    mask is drawn, so the tags of one organ cannot collide on the film. A mask's score (its tokens' confidence, not
    a probability) stays in the JSON: beside a box's probability it would read as one."""
    out = []
    for label, colour in colours.items():
        parts = [f"box {float(d['score']):.2f}" for d in reading.get("detections", []) if d["label"] == label]
        parts += ["mask" for s in reading.get("segmentations", []) if s["label"] == label]
        out.append((colour, f"{label}: {', '.join(parts)}"))
    return out


def heat_line(reading: dict[str, Any]) -> list[tuple[tuple[int, int, int], str]]:
    """The legend's line for the heatmap, in its colour: which call's map it is ([] when none is drawn)."""
    maps = heat_maps(reading)
    return [(HEAT_COLOUR, f"red: where the {maps[0]['label']} score comes from (saliency)")] if maps else []


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


def _film_layer(pixels: np.ndarray, reading: dict[str, Any], colours: dict, size: tuple[int, int]
                ) -> tuple[Image.Image, int]:
    """The banner (`banner_lines`) with the legend under it, and the grey film (`size`: width, height) below them,
    opaque; and the row where the film begins."""
    font = _font(max(12, size[0] // 45))
    lines = list(zip(((255, 255, 255), (255, 210, 0)), banner_lines(reading))) + legend_lines(reading, colours)
    lines += heat_line(reading)
    line_h = font.size + 8
    top = line_h * len(lines) + 8
    canvas = Image.new("RGB", (size[0], size[1] + top), (20, 20, 20))
    canvas.paste(Image.fromarray(to_uint8(pixels)).resize(size, Image.Resampling.BILINEAR), (0, top))
    draw = ImageDraw.Draw(canvas)
    for i, (colour, line) in enumerate(lines):
        draw.text((8, 6 + i * line_h), line, fill=colour, font=font)
    return canvas.convert("RGBA"), top


def _below_banner(layer: Image.Image, size: tuple[int, int], top: int) -> Image.Image:
    """A layer of the film's size placed on a transparent overlay of `size`, its top at row `top`."""
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    canvas.paste(layer, (0, top))
    return canvas


def overlay_layers(pixels: np.ndarray, reading: dict[str, Any], all_maps: bool = False) -> dict[str, Any]:
    """The overlay's layers in `LAYERS` order, bottom to top, each an RGBA image of the overlay's size, transparent
    where it draws nothing: "film" (the banner, the legend and the grey film; opaque), "masks", "heatmap" (empty
    when the reading calls nothing with a saliency map: else the first of `heat_maps`, named in the legend) and
    "boxes"; with `all_maps`, also "heatmaps": {label: a layer like "heatmap"} for each of `heat_maps`, in order, for
    the web page to show any of them in the heatmap's place. `pixels` as for `render_overlay`."""
    h, w = _input_size(pixels, reading)
    scale = display_scale(h, w)
    film_size = max(1, round(w * scale)), max(1, round(h * scale))
    colours = label_colours(reading)
    film, top = _film_layer(pixels, reading, colours, film_size)
    layers: dict[str, Any] = {
        "film": film,
        "masks": _below_banner(_mask_layer(reading.get("segmentations", []), colours, film_size), film.size, top),
        "heatmap": _below_banner(_heat_layer(reading, film_size), film.size, top),
        "boxes": _box_layer(reading.get("detections", []), colours, scale, film.size, top)}
    if all_maps:
        layers["heatmaps"] = {s["label"]: _below_banner(_heat(s, film_size), film.size, top)
                              for s in heat_maps(reading)}
    return layers


def compose(layers: dict[str, Image.Image]) -> Image.Image:
    """The layers stacked in `LAYERS` order: the overlay picture (RGB)."""
    picture = layers[LAYERS[0]]
    for name in LAYERS[1:]:
        picture = Image.alpha_composite(picture, layers[name])
    return picture.convert("RGB")


def render_overlay(pixels: np.ndarray, reading: dict[str, Any]) -> Image.Image:
    """The X-ray (float32 (H, W) in [0, 1], the view the reading's boxes refer to, at the input's size or reduced)
    with the reading drawn on it, scaled to the display size: its layers, stacked."""
    return compose(overlay_layers(pixels, reading))


def is_drawn(layer: Image.Image) -> bool:
    """Whether a layer has anything on it (a transparent one has not)."""
    return layer.getchannel("A").getbbox() is not None


