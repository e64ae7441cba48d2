"""Mask tokenizer: a binary mask inside a box <-> 16 `<segNNN>` tokens (PaliGemma's segmentation convention).

    tok = MaskTokenizer.default()             # the trained weights shipped in the package (cached)
    codes = tok.encode(mask, box)             # mask: bool H x W; box: (x1, y1, x2, y2) pixels -> 16 ints in 0..127
    mask2 = tok.decode(codes, box, (H, W))    # -> bool H x W
    mask2, reason = tok.try_decode(codes, box, (H, W))   # never raises: empty mask + reason on bad input

Geometry (as big_vision): the box is rounded to whole pixels (x2, y2 exclusive; the tight box of a mask is
`mask_box(mask)`), the mask is cropped to it (zero outside the image), resized to 64x64 with PIL's bilinear filter
(antialiased when shrinking) on the 0/1 float mask and fed to the encoder *unthresholded* (the soft edge carries
sub-pixel shape); the decoder's 64x64 scores are resized bilinearly to the box and thresholded at 0 (our decoder
gives logits, so this is probability 0.5; PaliGemma's gives values in [-1, 1], thresholded at 0 by big_vision).

"""
from __future__ import annotations

import functools
import json
import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from cxrvlm.tensorfile import read_tagged_tensors, write_tensors
from cxrvlm.tokens.paligemma_vae import load_paligemma_npz
from cxrvlm.tokens.seg_vqvae import MaskVQVAE, VQVAEConfig

log = logging.getLogger(__name__)

NUM_CODES = 128
NUM_TOKENS = 16
SEG_TOKENS = tuple(f"<seg{i:03d}>" for i in range(NUM_CODES))
SEG_RE = re.compile(r"<seg(\d{3})>")
SIZE = 64
WEIGHTS = Path(__file__).parent / "weights" / "mask_vqvae.safetensors"
FORMAT = "cxrvlm-mask-vqvae"
_PASTE_PIXELS = 1 << 20  # pixels of a pasted mask thresholded at a time

Box = Sequence[float]  # (x1, y1, x2, y2) in pixels, x2/y2 exclusive


class MaskTokenError(ValueError):
    """A mask, box or code sequence the tokenizer cannot use; the message says which and why."""


def encode_seg(codes: Sequence[int]) -> str:
    """16 codes -> "<seg012><seg100>..."."""
    return "".join(SEG_TOKENS[int(c)] for c in codes)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight box of a bool H x W mask in pixels (x1, y1, x2, y2), x2/y2 exclusive; None when the mask is empty."""
    ys = np.flatnonzero(mask.any(1))
    if ys.size == 0:
        return None
    xs = np.flatnonzero(mask.any(0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def pixel_box(box: Box, size: tuple[int, int]) -> tuple[tuple[int, int, int, int] | None, str]:
    """Round a pixel box and check it against the image size (H, W): (box, "") or (None, reason)."""
    try:
        x1, y1, x2, y2 = (float(v) for v in box)
    except (TypeError, ValueError):
        return None, f"box {box!r} is not four numbers"
    if not all(np.isfinite([x1, y1, x2, y2])):
        return None, f"box {box!r} has a non-finite coordinate"
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        return None, f"image size {size!r} is not positive"
    r = tuple(int(round(v)) for v in (x1, y1, x2, y2))
    if r[2] <= r[0] or r[3] <= r[1]:
        return None, f"box {box!r} has zero area after rounding to pixels"
    if r[2] <= 0 or r[3] <= 0 or r[0] >= w or r[1] >= h:
        return None, f"box {box!r} lies outside the {h}x{w} image"
    return r, ""  # type: ignore[return-value]


def crop_resize(mask: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """bool H x W and a rounded pixel box -> float32 64 x 64 in [0, 1] (zero where the box leaves the image)."""
    x1, y1, x2, y2 = box
    h, w = mask.shape
    crop = np.zeros((y2 - y1, x2 - x1), np.float32)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    crop[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = mask[sy1:sy2, sx1:sx2]
    out = np.asarray(Image.fromarray(crop, mode="F").resize((SIZE, SIZE), Image.BILINEAR), np.float32)
    return np.clip(out, 0.0, 1.0)


def paste(scores: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """64 x 64 decoder scores -> bool H x W: resized bilinearly into the box, thresholded at 0, clipped to the image."""
    x1, y1, x2, y2 = box
    h, w = int(size[0]), int(size[1])
    inside = Image.fromarray(scores.astype(np.float32), mode="F").resize((x2 - x1, y2 - y1), Image.BILINEAR)
    out = np.zeros((h, w), bool)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    step = max(1, _PASTE_PIXELS // max(1, sx2 - sx1))  # thresholded a band at a time: a big box is no float copy
    for top in range(sy1, sy2, step):
        bottom = min(sy2, top + step)
        band = inside.crop((sx1 - x1, top - y1, sx2 - x1, bottom - y1))
        out[top:bottom, sx1:sx2] = np.asarray(band) > 0
    return out


def check_codes(codes: object, num_codes: int = NUM_CODES) -> tuple[list[int] | None, str]:
    """(16 ints, "") or (None, reason): wrong count, non-integers or codes outside 0..num_codes-1."""
    try:
        vals = [int(c) for c in codes]  # type: ignore[union-attr]
        if any(float(c) != v for c, v in zip(codes, vals)):  # type: ignore[call-overload]
            return None, "codes are not integers"
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite code
        return None, f"codes {codes!r} are not a sequence of integers"
    if len(vals) != NUM_TOKENS:
        return None, f"expected {NUM_TOKENS} codes, got {len(vals)}"
    bad = [v for v in vals if not 0 <= v < num_codes]
    if bad:
        return None, f"code(s) {bad[:3]} outside 0..{num_codes - 1}"
    return vals, ""


def split_lungs(mask: np.ndarray, min_fraction: float = 0.01) -> dict[str, np.ndarray]:
    """A both-lungs mask -> {"right lung": ..., "left lung": ...} by connected components.

    The two largest components are the lungs; smaller ones of at least `min_fraction` of the mask's area join the
    lung whose centroid is nearer along x; smaller specks are dropped. Sides are the patient's: the patient's right
    lung is on the image's left (radiological convention). One component gives one lung, named by which image half
    it lies in; an empty mask gives {}.
    """
    lab, n = ndimage.label(mask)
    if n == 0:
        return {}
    areas = np.bincount(lab.ravel())[1:]
    keep = [i + 1 for i in np.argsort(-areas) if areas[i] >= min_fraction * areas.sum()]
    cx = {i: float(np.mean(np.nonzero(lab == i)[1])) for i in keep}
    if len(keep) == 1:
        side = "right lung" if cx[keep[0]] < mask.shape[1] / 2 else "left lung"
        return {side: lab == keep[0]}
    a, b = sorted(keep[:2], key=lambda i: cx[i])  # a: image-left = patient's right
    right, left = lab == a, lab == b
    for i in keep[2:]:
        if abs(cx[i] - cx[a]) <= abs(cx[i] - cx[b]):
            right |= lab == i
        else:
            left |= lab == i
    return {"right lung": right, "left lung": left}


class MaskTokenizer:
    """A mask VQ-VAE with the crop/resize/threshold around it. Thread-safe for inference (no state changes)."""

    def __init__(self, model: MaskVQVAE, name: str = "custom"):
        self.model = model.eval()
        self.name = name
        self.num_codes = model.cfg.num_codes
        self.can_encode = model.encoder is not None

    # --- construction ---------------------------------------------------------------------------------------
    @classmethod
    def default(cls) -> MaskTokenizer:
        """The weights shipped in the package (loaded once, then cached)."""
        return _default()

    @classmethod
    def from_file(cls, path: str | Path) -> MaskTokenizer:
        """Load a safetensors file written by `save` (tensor names as in vae-oid.npz, config in the metadata)."""
        path = Path(path)
        meta, tensors = read_tagged_tensors(path, FORMAT, "config", "mask tokenizer weights", MaskTokenError)
        model = MaskVQVAE(VQVAEConfig.from_dict(json.loads(meta["config"])))
        model.import_tensors(tensors, str(path))
        return cls(model, name=path.name)

    @classmethod
    def from_paligemma_npz(cls, path: str | Path) -> MaskTokenizer:
        """PaliGemma's released mask VAE (`vae-oid.npz`, big_vision) from a local path; decoder-only files decode."""
        return cls(load_paligemma_npz(path), name=Path(path).name)

    def save(self, path: str | Path, meta: dict[str, str] | None = None) -> None:
        """Write safetensors atomically (tmp file, then rename)."""
        write_tensors(path, self.model.export_tensors(),
                      {"format": FORMAT, "config": json.dumps(self.model.cfg.to_dict()), **(meta or {})})

    # --- encode ---------------------------------------------------------------------------------------------
    def prepare(self, mask: np.ndarray, box: Box) -> np.ndarray:
        """Check a mask and box and return the 64 x 64 float input; MaskTokenError with the reason otherwise."""
        mask = np.asarray(mask)
        if mask.ndim != 2:
            raise MaskTokenError(f"mask must be 2-D (H x W), got shape {mask.shape}")
        r, reason = pixel_box(box, mask.shape)
        if r is None:
            raise MaskTokenError(reason)
        return crop_resize(mask.astype(bool), r)

    def encode(self, mask: np.ndarray, box: Box) -> list[int]:
        """bool H x W + pixel box -> 16 codes in 0..127 (row-major over the 4 x 4 grid)."""
        return self.encode_arrays(self.prepare(mask, box)[None])[0]

    def encode_batch(self, masks: Sequence[np.ndarray], boxes: Sequence[Box]) -> list[list[int] | None]:
        """Many masks at once; a bad item is logged and gives None, the rest are encoded."""
        if len(masks) != len(boxes):
            raise MaskTokenError(f"{len(masks)} masks but {len(boxes)} boxes")
        inputs, where = [], []
        for i, (m, b) in enumerate(zip(masks, boxes)):
            try:
                inputs.append(self.prepare(m, b))
                where.append(i)
            except MaskTokenError as e:
                log.warning("mask %d skipped: %s", i, e)
        out: list[list[int] | None] = [None] * len(masks)
        if inputs:
            for i, codes in zip(where, self.encode_arrays(np.stack(inputs))):
                out[i] = codes
        return out

    def encode_arrays(self, arrays: np.ndarray, batch_size: int = 256) -> list[list[int]]:
        """Already-prepared inputs (B, 64, 64) float in [0, 1] -> codes, batched through the encoder."""
        if not self.can_encode:
            raise MaskTokenError(f"{self.name}: this checkpoint has no encoder (decoder-only); it cannot encode masks")
        out: list[list[int]] = []
        for s in range(0, len(arrays), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(arrays[s:s + batch_size], np.float32))[:, None]
            out += self.model.encode(x).tolist()
        return out

    # --- decode ---------------------------------------------------------------------------------------------
    def decode(self, codes: Sequence[int], box: Box, size: tuple[int, int]) -> np.ndarray:
        """16 codes + pixel box + image size (H, W) -> bool H x W. Bad input gives an empty mask (see try_decode)."""
        return self.try_decode(codes, box, size)[0]

    def try_decode(self, codes: Sequence[int], box: Box, size: tuple[int, int]) -> tuple[np.ndarray, str]:
        """Like `decode`, also returning why the mask is empty when the input was unusable ("" when it was fine)."""
        return self.try_decode_batch([codes], [box], [size])[0]

    def decode_batch(self, codes: Sequence[Sequence[int]], boxes: Sequence[Box],
                     sizes: tuple[int, int] | Sequence[tuple[int, int]]) -> list[np.ndarray]:
        """Many code sequences at once; `sizes` is one (H, W) for all or one per item."""
        return [m for m, _ in self.try_decode_batch(codes, boxes, sizes)]

    def try_decode_batch(self, codes: Sequence[Sequence[int]], boxes: Sequence[Box],
                         sizes: tuple[int, int] | Sequence[tuple[int, int]]) -> list[tuple[np.ndarray, str]]:
        """(mask, reason) per item; never raises for bad items (an empty mask, or 1x1 when the size is unusable)."""
        n = len(codes)
        if _is_size(sizes):
            sizes = [sizes] * n  # type: ignore[list-item]
        if len(boxes) != n or len(sizes) != n:
            raise MaskTokenError(f"{n} code sequences, {len(boxes)} boxes, {len(sizes)} sizes: counts differ")
        results: list[tuple[np.ndarray, str]] = [(np.zeros((1, 1), bool), "")] * n
        good, ok_codes = [], []
        for i, (c, b, hw) in enumerate(zip(codes, boxes, sizes)):
            vals, reason = check_codes(c, self.num_codes)
            r, box_reason = pixel_box(b, hw) if _is_size(hw) else (None, f"image size {hw!r} is not (H, W)")
            if vals is None or r is None:
                empty = np.zeros(tuple(int(v) for v in hw) if _is_size(hw) and min(hw) > 0 else (1, 1), bool)
                results[i] = (empty, reason or box_reason)
                continue
            good.append((i, r, hw))
            ok_codes.append(vals)
        if good:
            scores = self.decode_scores(ok_codes)
            for (i, r, hw), s in zip(good, scores):
                results[i] = (paste(s, r, hw), "")
        return results

    def decode_scores(self, codes: Sequence[Sequence[int]], batch_size: int = 256) -> np.ndarray:
        """Checked codes (B, 16) -> decoder scores (B, 64, 64) float32; > 0 inside."""
        out = []
        for s in range(0, len(codes), batch_size):
            c = torch.tensor(codes[s:s + batch_size], dtype=torch.long)
            out.append(self.model.decode(c)[:, 0].numpy())
        return np.concatenate(out) if out else np.zeros((0, SIZE, SIZE), np.float32)


def _is_size(v: object) -> bool:
    return isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, (int, np.integer)) for x in v)


@functools.lru_cache(maxsize=1)
def _default() -> MaskTokenizer:
    if not WEIGHTS.is_file():
        raise MaskTokenError(f"{WEIGHTS}: the shipped mask tokenizer weights are missing from the package")
    return MaskTokenizer.from_file(WEIGHTS)
