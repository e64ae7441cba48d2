"""COCO run-length encoding of binary masks through pycocotools (the format COCO tools and our JSON output use)."""
from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask


def rle_encode(mask: np.ndarray) -> dict:
    """bool H x W -> {"size": [H, W], "counts": str} (compressed COCO RLE, JSON-safe)."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H x W), got shape {mask.shape}")
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: dict) -> np.ndarray:
    """COCO RLE dict (compressed string or uncompressed list counts) -> bool H x W."""
    try:
        size = [int(s) for s in rle["size"]]
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a COCO RLE dict with 'size' and 'counts': {e}") from None
    if isinstance(counts, list):
        rle = coco_mask.frPyObjects({"size": size, "counts": counts}, size[0], size[1])
    else:
        rle = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return coco_mask.decode(rle).astype(bool)
