"""Image -> model input: grayscale, plain resize to a square, normalise.

Plain resize (aspect not kept), as PaliGemma does: boxes and masks are normalised to the image, so a plain
resize keeps the mapping between `<loc>` tokens and the original image exact, with no letterbox offsets to undo.
Chest X-rays are near-square (portrait 0.8-1.25), so the distortion is mild. Shrinking uses area averaging
(`cxrvlm.io.resize_to`), which keeps fine lines that bilinear sampling would alias.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cxrvlm.io import resize_to


class ImageInputError(ValueError):
    """An image array the model cannot take; the message says which and why."""


def to_gray(image: np.ndarray, where: str = "image") -> np.ndarray:
    """float32 (H, W) in [0, 1] from (H, W) float in [0, 1], uint8 / uint16 (H, W), or RGB(A) (H, W, 3|4)."""
    a = np.asarray(image)
    if a.dtype == np.uint8 or a.dtype == np.uint16:
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    elif a.dtype.kind != "f":
        raise ImageInputError(f"{where}: expected float pixels in [0, 1] (or uint8/uint16), got dtype {a.dtype}")
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., :3].mean(axis=2)  # RGB(A) screenshots of X-rays: the channels are (nearly) equal
    if a.ndim != 2 or 0 in a.shape:
        raise ImageInputError(f"{where}: expected a 2-D (H, W) grayscale array, got shape {a.shape}")
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        raise ImageInputError(f"{where}: pixels contain NaN or infinity")
    lo, hi = float(a.min()), float(a.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise ImageInputError(f"{where}: float pixels must lie in [0, 1], got range [{lo:.3g}, {hi:.3g}]")
    return np.clip(a, 0.0, 1.0)


def preprocess(image: np.ndarray, size: int, mean: float = 0.5, std: float = 0.5, where: str = "image") -> torch.Tensor:
    """One view -> float32 tensor (1, size, size), (x - mean) / std."""
    gray = to_gray(image, where)
    if gray.shape != (size, size):
        gray = resize_to(gray, (size, size), method="area")
    return (torch.from_numpy(np.ascontiguousarray(gray))[None] - mean) / std


def preprocess_views(views: list[np.ndarray], size: int, mean: float, std: float, max_images: int,
                     where: str = "example") -> torch.Tensor:
    """One example's views -> (N, 1, size, size); ValueError when there are more views than slots."""
    if isinstance(views, np.ndarray):
        raise ImageInputError(f"{where}: views must be a list of (H, W) arrays, got one array; wrap it in a list")
    if len(views) > max_images:
        raise ImageInputError(f"{where}: {len(views)} views, but the model has {max_images} image slots (max_images)")
    if not views:
        return torch.zeros(0, 1, size, size)
    return torch.stack([preprocess(v, size, mean, std, f"{where} view {i}") for i, v in enumerate(views)])


def as_examples(images: Any) -> list[list[np.ndarray]]:
    """Normalise an image argument: one array = one view of one example; a list of arrays = ONE example's views;
    a list of lists = per example, its views."""
    if isinstance(images, np.ndarray):
        return [[images]]
    if not isinstance(images, (list, tuple)):
        raise ImageInputError(f"images must be arrays or lists of arrays, got {type(images).__name__}")
    if images and all(isinstance(v, np.ndarray) for v in images):
        return [list(images)]
    if not all(isinstance(views, (list, tuple)) for views in images):
        raise ImageInputError("images must be a list of arrays (one example's views) or a list of such lists")
    return [list(views) for views in images]
