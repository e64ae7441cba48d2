"""Drawing one example as a PNG for the data card: its image(s) side by side, boxes drawn and labelled, masks
overlaid half-transparently, and the prompt (prefix) and answer (suffix) underneath. Pillow only.

Boxes come from the task's own `parse` of the suffix, so the picture shows what the text really encodes. Masks come
from the example's target (references `cxrvlm.records.load_mask` reads: a file path, an RLE dict) and, failing
that, from the masks the task's `parse` decodes from the suffix.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cxrvlm.examples import Example
from cxrvlm.io import read_image, to_uint8
from cxrvlm.records import load_mask

log = logging.getLogger(__name__)

PANEL_HEIGHT = 448  # px: each image is scaled to this height (aspect kept)
MAX_TEXT_LINES = 10  # per field; longer text is cut with an ellipsis
_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))


def colour(label: str) -> tuple[int, int, int]:
    """A stable colour per label phrase."""
    return _PALETTE[int(hashlib.md5(label.encode()).hexdigest(), 16) % len(_PALETTE)]


def _font(size: int = 14) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font without sizes
        return ImageFont.load_default()


def _load(path: str) -> Image.Image:
    return Image.fromarray(to_uint8(read_image(path).pixels), mode="L").convert("RGB")


_MASK_KEYS = ("rle", "mask", "masks", "mask_path")  # by preference: the object's own mask before the source file


def _is_ref(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, dict) and "counts" in value)


def _find_mask_refs(target: Any, label: str = "") -> Iterable[tuple[str, Any]]:
    """(label, mask reference) pairs anywhere in a target: per dict, the first of `_MASK_KEYS` holding a path or
    an RLE dict (e.g. a segment object's "rle" rather than its "mask_path", the both-lungs source file), labelled
    by the dict's "label"; other dicts and lists are searched."""
    if isinstance(target, dict):
        label = str(target.get("label") or label)
        ref = next((target[k] for k in _MASK_KEYS if _is_ref(target.get(k))), None)
        if ref is not None:
            yield label, ref
            return
        for value in target.values():
            if isinstance(value, (dict, list)):
                yield from _find_mask_refs(value, label)
    elif isinstance(target, list):
        for item in target:
            yield from _find_mask_refs(item, label)


def example_masks(example: Example, task: ModuleType | None, size: tuple[int, int]) -> list[tuple[str, np.ndarray]]:
    """(label, bool (H, W) mask at `size`) to draw on the first image."""
    out = []
    for label, ref in _find_mask_refs(example.target):
        try:
            mask = load_mask(ref)
        except ValueError as e:
            log.debug("mask of %s not drawn: %s", example.study_id, e)
            continue
        if mask.shape != size:
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(size[::-1], Image.NEAREST)) > 127
        out.append((label, mask))
    if not out and task is not None and "<seg" in example.suffix:
        pred = _parse(task, example.suffix, size)
        for label, _box, mask in getattr(pred, "masks", []) or []:
            if mask is not None and np.asarray(mask).shape == size:
                out.append((label, np.asarray(mask, dtype=bool)))
    return out


def _parse(task: ModuleType, suffix: str, size: tuple[int, int]) -> Any:
    try:
        return task.parse(suffix, image_size=size)
    except Exception as e:  # noqa: BLE001 - a drawing must never stop curation; parse should not raise anyway
        log.warning("%s.parse raised %s while rendering", getattr(task, "NAME", task), e)
        return None


def _overlay(image: Image.Image, example: Example, task: ModuleType | None) -> Image.Image:
    """Masks (alpha 0.4) then boxes with labels, on the full-resolution first image."""
    size = (image.height, image.width)
    for label, mask in example_masks(example, task, size):
        layer = Image.new("RGB", image.size, colour(label))
        alpha = Image.fromarray((mask * 102).astype(np.uint8), mode="L")  # 102/255 = 0.4
        image = Image.composite(layer, image, alpha)
    pred = _parse(task, example.suffix, size) if task is not None and "<loc" in example.suffix else None
    boxes = getattr(pred, "boxes", []) or []
    draw = ImageDraw.Draw(image)
    scale = image.height / PANEL_HEIGHT  # drawn at full resolution, shown at PANEL_HEIGHT: size for the latter
    font = _font(max(8, round(14 * scale)))
    width = max(1, round(2 * scale))
    for label, (x1, y1, x2, y2) in boxes:
        label = label or str(example.target.get("label") or "")  # grounding answers carry no label: the asked one
        c = colour(label)
        xy = (x1 * image.width, y1 * image.height, x2 * image.width, y2 * image.height)
        draw.rectangle(xy, outline=c, width=width)
        if label:
            tx, ty = xy[0] + width, xy[1] + width
            draw.rectangle(draw.textbbox((tx, ty), label, font=font), fill=(0, 0, 0))
            draw.text((tx, ty), label, fill=c, font=font)
    return image


def _wrap(text: str, font: Any, width: int, max_lines: int = MAX_TEXT_LINES) -> list[str]:
    """Greedy word wrap to `width` px; words wider than a line (runs of loc tokens) are cut by characters."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= width:
                line = candidate
                continue
            if line:
                lines.append(line)
            line = word
            while font.getlength(line) > width and len(line) > 1:
                cut = max(1, int(len(line) * width / font.getlength(line)))
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [lines[max_lines - 1][:-1] + "…"]
    return lines


def render_example(example: Example, out_path: str | Path, task: ModuleType | None = None,
                   title: str = "") -> Path:
    """Draw `example` into `out_path` (PNG). ValueError (naming the file) when an image cannot be read."""
    panels = []
    for i, path in enumerate(example.images):
        image = _load(path)
        if i == 0:
            image = _overlay(image, example, task)
        scale = PANEL_HEIGHT / image.height
        panels.append(image.resize((max(1, round(image.width * scale)), PANEL_HEIGHT), Image.BILINEAR))
    width = max(640, sum(p.width for p in panels) + 8 * max(0, len(panels) - 1))
    font = _font(14)
    text: list[tuple[str, tuple[int, int, int]]] = []
    for name, value, c in (("", title, (200, 200, 200)), ("prefix: ", example.prefix, (255, 255, 255)),
                           ("suffix: ", example.suffix, (120, 220, 120))):
        if value:
            text += [(line, c) for line in _wrap(name + value, font, width - 16)]
    line_height = 18
    top = PANEL_HEIGHT if panels else 0
    canvas = Image.new("RGB", (width, top + 12 + line_height * len(text)), (20, 20, 20))
    x = 0
    for p in panels:
        canvas.paste(p, (x, 0))
        x += p.width + 8
    draw = ImageDraw.Draw(canvas)
    for i, (line, c) in enumerate(text):
        draw.text((8, top + 6 + i * line_height), line, fill=c, font=font)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out_path)
    return out_path
