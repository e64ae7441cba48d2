"""COCO run-length encoding of binary masks through pycocotools (the format COCO tools and our JSON output use).

COCO RLE runs go down each column, then on to the next column (column-major), alternating 0 and 1 and starting with
a run of 0s. A mask resized by nearest neighbour repeats (or skips) whole columns and stretches each column's runs,
so `rle_encode_resized` writes a big image's mask straight from a small one and `rle_decode_resized` reads a big
mask's runs at a small size: neither builds the big H x W mask."""
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


def nearest_indices(n: int, size: int) -> np.ndarray:
    """For `size` cells spread over `n` (a row or column resized by nearest neighbour), the index among the `n` of
    the cell under each one's centre: (2i + 1) * n // (2 * size)."""
    if n < 1 or size < 1:
        raise ValueError(f"cannot resize {n} pixels to {size}")
    return (2 * np.arange(size, dtype=np.int64) + 1) * n // (2 * size)


def rle_encode_resized(mask: np.ndarray, size: tuple[int, int]) -> dict:
    """bool h x w -> the COCO RLE of the mask resized to `size` (H, W) by nearest neighbour (`nearest_indices`):
    `rle_encode` of the resized mask, made from the mask's own runs, so no H x W array is built."""
    mask = np.asarray(mask, bool)
    if mask.ndim != 2 or 0 in mask.shape:
        raise ValueError(f"mask must be 2-D (H x W) and not empty, got shape {mask.shape}")
    big_h, big_w = (int(v) for v in size)
    if (big_h, big_w) == mask.shape:
        return rle_encode(mask)
    if big_h < mask.shape[0]:  # fewer rows: pick them first, then each kept row is one row of the result
        mask = mask[nearest_indices(mask.shape[0], big_h)]
    rows = np.bincount(nearest_indices(mask.shape[0], big_h), minlength=mask.shape[0])  # result rows per mask row
    first_row = np.concatenate([[0], np.cumsum(rows)])  # the result's first row of each mask row
    counts = _column_runs(np.ascontiguousarray(mask.T), first_row, nearest_indices(mask.shape[1], big_w), big_h)
    rle = coco_mask.frPyObjects({"size": [big_h, big_w], "counts": counts.tolist()}, big_h, big_w)
    return {"size": [big_h, big_w], "counts": rle["counts"].decode("ascii")}


def _column_runs(columns: np.ndarray, first_row: np.ndarray, column_of: np.ndarray, height: int) -> np.ndarray:
    """Run lengths (column-major, from a run of 0s) of the mask whose column j is `columns[column_of[j]]` (a mask
    column as a row of `columns`) with mask row r stretched over result rows first_row[r] .. first_row[r + 1]."""
    col, row = np.nonzero(columns[:, 1:] != columns[:, :-1])  # value changes inside each mask column, in order
    per_column = np.bincount(col, minlength=len(columns))
    k = per_column[column_of]  # changes inside each result column
    start = np.concatenate([[0], np.cumsum(per_column)])[column_of] - np.concatenate([[0], np.cumsum(k)])[:-1]
    picked = np.repeat(start, k) + np.arange(int(k.sum()))
    inside = np.repeat(np.arange(len(column_of)), k) * height + first_row[row[picked] + 1]
    top, bottom = columns[column_of, 0], columns[column_of, -1]
    across = (np.nonzero(bottom[:-1] != top[1:])[0] + 1) * height  # a column starts with another value than the last
    changes = np.sort(np.concatenate([inside, across]))
    counts = np.diff(np.concatenate([[0], changes, [height * len(column_of)]]))
    return np.concatenate([[0], counts]) if top[0] else counts


def rle_counts(rle: dict) -> np.ndarray:
    """The run lengths of a COCO RLE dict (compressed string or list counts), as int64."""
    counts: list[int] = []
    text, p = _coco(rle)["counts"], 0
    while p < len(text):  # pycocotools' rleFrString: 5-bit groups, a continuation bit, deltas after the third run
        x, k, more = 0, 0, True
        while more:
            c = text[p] - 48
            x |= (c & 0x1F) << 5 * k
            more, p, k = bool(c & 0x20), p + 1, k + 1
            if not more and c & 0x10:
                x |= -1 << 5 * k
        counts.append(x + counts[-2] if len(counts) > 2 else x)
    return np.asarray(counts, np.int64)


def rle_decode_resized(rle: dict, size: tuple[int, int]) -> np.ndarray:
    """COCO RLE dict -> bool `size` (H, W): the mask resized by nearest neighbour (`nearest_indices`), read from its
    runs, so a big mask is never decoded whole."""
    big_h, big_w = (int(v) for v in _coco(rle)["size"])
    h, w = (int(v) for v in size)
    ends = np.cumsum(rle_counts(rle))
    where = nearest_indices(big_w, w)[None, :] * big_h + nearest_indices(big_h, h)[:, None]
    return np.searchsorted(ends, where, side="right") % 2 == 1
