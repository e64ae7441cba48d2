"""Training data for the mask tokenizer: real lung masks -> whole and single-lung items, a patient split, and
batched augmentation (random affine, elastic warp, straight-edge crops, box jitter) -> 64x64 soft targets.

Mask folders hold binary PNGs (nonzero = inside). A `metadata.csv` beside the folder with `image_id` and
`patientid` columns (the COVID-19 image data collection layout) gives the patient of each mask (matched by file
stem); otherwise each file is its own patient, with a Shenzhen-style suffix `_0`/`_1` stripped.
"""
from __future__ import annotations

import csv
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cxrvlm.tokens.seg import mask_box, split_lungs

log = logging.getLogger(__name__)
CANVAS = 192  # side of the square canvas each training shape is stored on, in pixels
MARGIN = 0.125  # canvas margin around the mask's box, as a fraction of the box's longer side (room for warps)


@dataclass
class MaskItem:
    """One training/validation shape: a tight bool crop at full resolution, with where it came from."""

    source: str  # mask folder name, e.g. "masks" of covid -> "covid"
    stem: str
    patient: str
    kind: str  # "whole" (both lungs) or "single"
    label: str  # "lungs", "right lung", "left lung"
    crop: np.ndarray  # bool h x w, the mask inside its tight box


def _patients(folder: Path) -> dict[str, str]:
    meta = folder.parent / "metadata.csv"
    if not meta.is_file():
        return {}
    with meta.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if rows and not {"image_id", "patientid"} <= set(rows[0]):
        return {}
    return {Path(r["image_id"]).stem: str(r["patientid"]) for r in rows}


def load_items(folders: list[str | Path]) -> list[MaskItem]:
    """Every mask PNG of the folders -> whole + left + right items. Unreadable or empty files are logged, skipped."""
    items: list[MaskItem] = []
    for folder in map(Path, folders):
        if not folder.is_dir():
            raise ValueError(f"{folder}: mask folder not found")
        source = folder.parent.name if folder.name == "masks" else folder.name
        patients = _patients(folder)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".gif", ".bmp", ".tif", ".tiff"))
        for path in files:
            try:
                with Image.open(path) as im:
                    mask = np.asarray(im.convert("L")) > 127
            except OSError as e:
                log.warning("%s: unreadable mask skipped (%s)", path, e)
                continue
            parts = split_lungs(mask)
            if not parts:
                log.warning("%s: empty mask skipped", path)
                continue
            # Shenzhen names end in _0 (normal) / _1 (TB): the label, not part of the patient
            patient = f"{source}:{patients.get(path.stem, re.sub(r'_[01]$', '', path.stem))}"
            whole = np.logical_or.reduce(list(parts.values()))
            for label, m in [("lungs", whole), *parts.items()]:
                x1, y1, x2, y2 = mask_box(m)  # type: ignore[misc]
                kind = "whole" if label == "lungs" else "single"
                items.append(MaskItem(source, path.stem, patient, kind, label, m[y1:y2, x1:x2].copy()))
    log.info("%d mask items from %d folder(s)", len(items), len(folders))
    return items


def held_out_patients(source: str, patients: set[str], val_fraction: float, seed: int) -> set[str]:
    """The validation patients of one source: ~val_fraction of them (at least one when there are two or more),
    drawn by a seeded shuffle of the sorted ids, so the split does not depend on file order."""
    pats = sorted(patients)
    if len(pats) < 2:
        return set()
    random.Random(f"{seed}:{source}").shuffle(pats)
    return set(pats[: max(1, round(val_fraction * len(pats)))])


def split_by_patient(items: list[MaskItem], val_fraction: float, seed: int) -> tuple[list[MaskItem], list[MaskItem]]:
    """Hold out ~val_fraction of the patients of each source (deterministic for a seed): (train, val)."""
    held: set[str] = set()
    for source in sorted({it.source for it in items}):
        held |= held_out_patients(source, {it.patient for it in items if it.source == source}, val_fraction, seed)
    return [it for it in items if it.patient not in held], [it for it in items if it.patient in held]


def to_canvas(crop: np.ndarray) -> np.ndarray:
    """A tight crop -> uint8 CANVAS x CANVAS (0..255 soft), centred, aspect kept, with MARGIN of space around it."""
    h, w = crop.shape
    scale = CANVAS / (max(h, w) * (1 + 2 * MARGIN))
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize((nw, nh), Image.BILINEAR))
    out = np.zeros((CANVAS, CANVAS), np.uint8)
    y, x = (CANVAS - nh) // 2, (CANVAS - nw) // 2
    out[y:y + nh, x:x + nw] = np.clip(np.round(small * 255), 0, 255)
    return out


def _boxes(masks):  # (B,1,S,S) bool -> (B,4) float x1,y1,x2,y2 pixels (exclusive ends); empty -> whole canvas
    s = masks.shape[-1]
    rows, cols = masks[:, 0].any(2), masks[:, 0].any(1)  # (B,S)
    idx = torch.arange(s, device=masks.device)
    def first_last(a):
        has = a.any(1)
        first = torch.where(a, idx, s).min(1).values
        last = torch.where(a, idx, -1).max(1).values + 1
        return torch.where(has, first, 0), torch.where(has, last, s)
    y1, y2 = first_last(rows)
    x1, x2 = first_last(cols)
    return torch.stack([x1, y1, x2, y2], 1).float()


def augment(canvases, gen, out: int = 64, p_identity: float = 0.15):
    """(B,1,S,S) uint8 canvases -> (B,1,out,out) soft targets in [0,1] after random warps, crops and box jitter.

    Every random draw comes from the torch.Generator `gen`, so a resumed run draws the same batches.
    """
    canvases = canvases.float() / 255
    b, s = canvases.shape[0], canvases.shape[-1]
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    ident = u(b) < p_identity
    ang = (u(b) * 2 - 1) * np.deg2rad(12)
    sx, sy = 1 + (u(b) * 2 - 1) * 0.15, 1 + (u(b) * 2 - 1) * 0.15
    shear = (u(b) * 2 - 1) * 0.12
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([torch.stack([cos * sx, -sin * sy + shear, (u(b) * 2 - 1) * 0.04], 1),
                         torch.stack([sin * sx, cos * sy, (u(b) * 2 - 1) * 0.04], 1)], 1)
    theta[ident] = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
    grid = F.affine_grid(theta, (b, 1, s, s), align_corners=False)
    # elastic: a smooth random displacement (a coarse 5x5 field upsampled), on most non-identity samples
    amp = (u(b) * 0.05 * (~ident & (u(b) < 0.7)).float()).view(b, 1, 1, 1)
    field = F.interpolate((torch.rand(b, 2, 5, 5, generator=gen) * 2 - 1) * amp, size=(32, 32), mode="bicubic",
                          align_corners=True)
    field = F.interpolate(field, size=(s, s), mode="bilinear", align_corners=True)  # 2 stages: 2x cheaper
    # kept soft (not thresholded): a hard 256-px canvas would show its pixel steps when a box is upsampled
    warped = F.grid_sample(canvases, grid + field.permute(0, 2, 3, 1), align_corners=False)
    warped = _straight_cut(warped, gen, ident)
    boxes = _boxes(warped > 0.5)
    wh = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    jitter = (u(b, 4) * 0.09 - 0.03) * wh * torch.tensor([-1.0, -1.0, 1.0, 1.0])  # mostly outward, <= 6%
    boxes = boxes + jitter * ((u(b) < 0.3) & ~ident).float()[:, None]
    return crop_resize_batch(warped, boxes, out)


def _straight_cut(masks, gen, ident, p: float = 0.15):
    """(B,1,S,S) soft masks: zero one side of some beyond a straight line (a lung cut by the film's edge)."""
    b = masks.shape[0]
    boxes = _boxes(masks > 0.5)
    pick = (torch.rand(b, generator=gen) < p) & ~ident
    side = torch.randint(0, 4, (b,), generator=gen)
    frac = 0.05 + torch.rand(b, generator=gen) * 0.2
    s = masks.shape[-1]
    idx = torch.arange(s).float()
    for i in torch.nonzero(pick).flatten().tolist():
        x1, y1, x2, y2 = boxes[i].tolist()
        k = int(side[i])
        ext = (x2 - x1) if k in (0, 2) else (y2 - y1)
        if k == 0:
            masks[i, 0, :, idx < x1 + frac[i] * ext] = 0
        elif k == 2:
            masks[i, 0, :, idx >= x2 - frac[i] * ext] = 0
        elif k == 1:
            masks[i, 0, idx < y1 + frac[i] * ext, :] = 0
        else:
            masks[i, 0, idx >= y2 - frac[i] * ext, :] = 0
    return masks


def crop_resize_batch(masks, boxes, out: int = 64):
    """(B,1,S,S) float + (B,4) pixel boxes -> (B,1,out,out): sampled at 2x then 2x2-averaged (antialiased)."""
    b, s = masks.shape[0], masks.shape[-1]
    x1, y1, x2, y2 = boxes.unbind(1)
    w, h = (x2 - x1).clamp(min=1), (y2 - y1).clamp(min=1)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w / s, -1 + (2 * x1 + w) / s
    theta[:, 1, 1], theta[:, 1, 2] = h / s, -1 + (2 * y1 + h) / s
    grid = F.affine_grid(theta, (b, 1, 2 * out, 2 * out), align_corners=False)
    return F.avg_pool2d(F.grid_sample(masks, grid, align_corners=False), 2).clamp(0, 1)
