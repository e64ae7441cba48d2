"""Mask refiner: the image redraws a decoded mask along its own edges.

A `<seg>` answer gives an object's shape as 16 codes of a 64x64 mask inside a box of four `<loc>` tokens. The
codes cannot see the image, and the mask stops at the box, so a box that ends short of the costophrenic angle
cuts the lung base off. The refiner is a small U-Net that reads the film around the box (the box grown by
`MARGIN` of its size on each side) together with the decoded mask, and gives the object's mask back; it may
move the outline anywhere in the grown box. It runs after any backend and mask tokenizer (its input is the
decoded mask, not the codes). Image-reading mask heads after a VLM are how LISA and GLaMM segment; here the
VLM's own mask stays the prompt.

    ref = MaskRefiner.default()                    # the weights shipped in the package (cached)
    masks = ref.refine(pixels, boxes, masks)       # pixels float (H, W) in [0, 1]; boxes (x1, y1, x2, y2) px;
                                                   # masks bool (H, W) each -> refined bool (H, W) each

Trained by `cxrvlm train-mask-refiner` (`train.mask_refiner`) on the training split's masks, with coarse
masks made the way a model errs: the box's edges moved, the mask sent through the tokenizer, some codes wrong.
"""
from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from cxrvlm.tensorfile import read_tagged_tensors, write_tensors
from cxrvlm.tokens import seg

WORK_SIDE = 512  # the film is refined at most this long on its long side: lung edges survive, big films stay cheap
BIG_SIDE = 4096  # masks longer than this are box-reduced in 8-bit before the float resize (`_mask_levels`)
SIZE = 128  # the refiner's square input: the grown box, resized
PASSES = 3  # each from the last pass's mask and box (val IoU of the shipped refiner: 0.84, 0.86, 0.87)
MARGIN = 0.2  # the box grows by this share of its width / height on each side: room for a short edge
WEIGHTS = Path(__file__).parent / "weights" / "mask_refiner.safetensors"
FORMAT = "cxrvlm-mask-refiner"
Box = Sequence[float]


class MaskRefinerError(ValueError):
    """Weights, pixels, a box or a mask the refiner cannot use; the message says which and why."""


def work_scale(size: tuple[int, int]) -> float:
    """Factor from the film's pixels to the refiner's working pixels (at most WORK_SIDE on the long side)."""
    return min(1.0, WORK_SIDE / max(int(size[0]), int(size[1])))


def work_size(size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the refiner's working film for a film of `size` pixels."""
    s = work_scale(size)
    return max(1, round(int(size[0]) * s)), max(1, round(int(size[1]) * s))


def shrink(array: np.ndarray, scale: float) -> np.ndarray:
    """float (H, W) -> its working-size copy (antialiased bilinear); unchanged at scale 1."""
    if scale >= 1.0:
        return array.astype(np.float32)
    h, w = array.shape
    return shrink_to(array, (max(1, round(h * scale)), max(1, round(w * scale))))


def shrink_to(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """float or bool (H, W) -> float32 `size` (height, width), antialiased bilinear; a copy when it has that size."""
    if np.shape(array) == tuple(size):
        return np.asarray(array, np.float32)
    if np.asarray(array).dtype == bool:
        image = _mask_levels(np.asarray(array))
    else:
        image = Image.fromarray(np.asarray(array, np.float32), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.BILINEAR), np.float32)


def _mask_levels(mask: np.ndarray) -> Image.Image:
    """bool (H, W) -> a float image in [0, 1] (Pillow's "F", made from the mask's bytes: no numpy float copy); a
    mask of more than BIG_SIDE on its long side is first box-reduced (in 8-bit) to at most that."""
    h, w = mask.shape
    k = -(-max(h, w) // BIG_SIDE)
    if k == 1:
        return Image.fromarray(np.ascontiguousarray(mask).view(np.uint8), mode="L").convert("F")
    levels = Image.fromarray(mask.view(np.uint8) * np.uint8(255), mode="L").reduce(k)
    return Image.fromarray(np.asarray(levels, np.float32) / np.float32(255.0), mode="F")


def _same_field(film: tuple[int, ...], size: tuple[int, ...]) -> bool:
    """A film of `film` pixels can be the image of `size` pixels, or a reduced copy (same aspect to a pixel)."""
    if len(film) != 2 or len(size) != 2 or film[0] > size[0] or film[1] > size[1]:
        return False
    return abs(film[0] * size[1] - film[1] * size[0]) <= max(size)


def grow(box: Box, margin: float = MARGIN) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    dx, dy = margin * (x2 - x1), margin * (y2 - y1)
    return x1 - dx, y1 - dy, x2 + dx, y2 + dy


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    """The float box (x1, y1, x2, y2) of a float (H, W) array -> SIZE x SIZE, bilinear, zero outside the array."""
    im = Image.fromarray(array.astype(np.float32), mode="F")
    return np.asarray(im.transform((SIZE, SIZE), Image.EXTENT, tuple(float(v) for v in box), Image.BILINEAR),
                      np.float32)


def net_input(image: np.ndarray, coarse: np.ndarray, box: Box) -> np.ndarray:
    """Working-size film and coarse mask, the object's working-size box -> the (2, SIZE, SIZE) refiner input:
    the film standardised over the grown box, the coarse mask as -1 / +1."""
    g = grow(box)
    film = crop(image, g)
    return np.stack([(film - film.mean()) / (film.std() + 1e-3), crop(coarse, g) * 2.0 - 1.0])


def paste(prob: np.ndarray, box: Box, size: tuple[int, int]) -> np.ndarray:
    """SIZE x SIZE probabilities over a float box in the film's pixels -> bool (H, W) at probability 0.5."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    if x2 <= x1 or y2 <= y1:
        return np.zeros((int(size[0]), int(size[1])), bool)
    return seg.paste(prob - 0.5, (x1, y1, x2, y2), size)  # the tokenizer's resize-into-box, thresholded at 0


def _block(i: int, o: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.GroupNorm(8, o), nn.SiLU(),
                         nn.Conv2d(o, o, 3, padding=1), nn.GroupNorm(8, o), nn.SiLU())


class UNet(nn.Module):
    """A small U-Net: `in_channels` input channels (the refiner's 2: film, coarse mask) (B, C, S, S) -> 1 logit
    channel (B, S, S)."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), in_channels: int = 2) -> None:
        super().__init__()
        self.widths = [int(w) for w in widths]
        ins = [in_channels, *self.widths[:-1]]
        self.down = nn.ModuleList(_block(i, o) for i, o in zip(ins, self.widths))
        self.up = nn.ModuleList(_block(self.widths[i + 1] + self.widths[i], self.widths[i])
                                for i in reversed(range(len(self.widths) - 1)))
        self.out = nn.Conv2d(self.widths[0], 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, down in enumerate(self.down):
            x = down(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, skip in zip(self.up, reversed(skips[:-1])):
            x = up(torch.cat([F.interpolate(x, scale_factor=2, mode="bilinear"), skip], 1))
        return self.out(x)[:, 0]


def build_net(widths: Sequence[int] = (16, 32, 64, 128)) -> UNet:
    """A new, randomly initialised refiner net of these widths (one per U-Net level)."""
    return UNet(widths)


class MaskRefiner:
    """The U-Net and the geometry around it. Inference only; thread-safe (no state changes)."""

    def __init__(self, net: nn.Module, name: str = "custom") -> None:
        self.net = net.eval()
        self.name = name

    @classmethod
    def default(cls) -> MaskRefiner:
        """The weights shipped in the package (loaded once, then cached)."""
        return _default()

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> MaskRefiner:
        path = Path(path)
        meta, tensors = read_tagged_tensors(path, FORMAT, "widths", "mask refiner weights", MaskRefinerError)
        net = build_net(json.loads(meta["widths"]))
        missing, unexpected = net.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=False)
        if missing or unexpected:
            raise MaskRefinerError(f"{path}: weights do not fit the refiner (missing {missing[:3]}, "
                                   f"unexpected {unexpected[:3]})")
        return cls(net, name=path.name)

    def save(self, path: str | os.PathLike, meta: dict[str, str] | None = None) -> None:
        """Write safetensors atomically (a temporary file, then renamed)."""
        write_tensors(path, self.net.state_dict(), {"format": FORMAT, "widths": json.dumps(self.net.widths),
                                                    **(meta or {})})

    def refine(self, pixels: np.ndarray, boxes: Sequence[Box], masks: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One film's objects: pixel boxes and bool (H, W) masks -> refined bool (H, W) masks, in order. `pixels`
        is the film at the masks' size or reduced (the same field at fewer pixels, e.g. a big file read reduced)."""
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim != 2:
            raise MaskRefinerError(f"pixels must be 2-D (H, W), got shape {pixels.shape}")
        if len(boxes) != len(masks):
            raise MaskRefinerError(f"{len(boxes)} boxes but {len(masks)} masks")
        if not masks:
            return []
        size = np.shape(masks[0])
        for i, m in enumerate(masks):
            if np.shape(m) != size or not _same_field(pixels.shape, size):
                raise MaskRefinerError(f"mask {i} has shape {np.shape(m)}, the film {pixels.shape} (the film must "
                                       "have the masks' size, or be a reduced copy of the image they cover)")
        s, work = work_scale(size), work_size(size)
        image = shrink_to(pixels, work)
        small = [[float(v) * s for v in b] for b in boxes]
        x = np.stack([net_input(image, shrink_to(m, work), b) for m, b in zip(masks, small)])
        with torch.inference_mode():
            prob = torch.sigmoid(self.net(torch.from_numpy(x))).numpy()
        return [paste(p, [v / s for v in grow(b)], size) for p, b in zip(prob, small)]


@functools.lru_cache(maxsize=1)
def _default() -> MaskRefiner:
    return MaskRefiner.from_file(WEIGHTS)


def refine_objects(pixels: np.ndarray, objects: Sequence[tuple], refiner: MaskRefiner | None = None,
                   passes: int = PASSES) -> list[tuple]:
    """One film's parsed objects [(label, normalised box (x1, y1, x2, y2), bool (H, W) mask or None, ...)] -> the
    same tuples with each mask redrawn by the refiner and its box made the redrawn mask's tight box; each pass
    starts from the last one's mask and box. An object without a mask, or whose redrawn mask would be empty, is
    kept as it was: the refiner never drops an object. The masks have the film's size (a big image's masks are
    decoded at its reduced film's size)."""
    refiner = refiner or MaskRefiner.default()
    h, w = np.shape(pixels)
    out = list(objects)
    for _ in range(passes):
        todo = [i for i, o in enumerate(out) if o[2] is not None and np.shape(o[2]) == (h, w) and np.any(o[2])]
        if not todo:
            break
        boxes = [[out[i][1][0] * w, out[i][1][1] * h, out[i][1][2] * w, out[i][1][3] * h] for i in todo]
        for i, mask in zip(todo, refiner.refine(pixels, boxes, [out[i][2] for i in todo])):
            tight = seg.mask_box(mask)
            if tight is not None:
                out[i] = (out[i][0], (tight[0] / w, tight[1] / h, tight[2] / w, tight[3] / h), mask, *out[i][3:])
    return out
