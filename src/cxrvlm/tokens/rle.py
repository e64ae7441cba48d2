"""COCO run-length encoding of binary masks through pycocotools (the format COCO tools and our JSON output use)."""
from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask


def rle_encode(mask: np.ndarray) -> dict:
    """bool H x W -> {"size": [H, W], "counts": str} (compressed COCO RLE, JSON-safe)."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H x W), got shape {mask.shape}")
    mask = np.asarray(mask)
    as_bytes = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)  # no second copy of a bool mask
    rle = coco_mask.encode(np.asfortranarray(as_bytes))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _coco(rle: dict) -> dict:
    """A COCO RLE dict (compressed string or uncompressed list counts) as pycocotools takes it."""
    try:
        size = [int(s) for s in rle["size"]]
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a COCO RLE dict with 'size' and 'counts': {e}") from None
    if isinstance(counts, list):
        return coco_mask.frPyObjects({"size": size, "counts": counts}, size[0], size[1])
    return {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def rle_decode(rle: dict) -> np.ndarray:
    """COCO RLE dict (compressed string or uncompressed list counts) -> bool H x W."""
    return coco_mask.decode(_coco(rle)).view(bool)  # 0 / 1 bytes: a view, not a second copy


def rle_area(rle: dict) -> int:
    """Pixels in a COCO RLE mask, counted from its runs (the mask is not decoded)."""
    return int(coco_mask.area(_coco(rle)))
