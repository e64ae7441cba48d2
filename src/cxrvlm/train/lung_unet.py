"""The lung segmentation specialist: a plain U-Net from the film alone to the mask of both lungs, trained on the
segmentation task's training films (the single-task baseline the multi-task model is compared with).

It learns from every training film whose segmentation examples cover both lungs ("lungs", or "right lung" and
"left lung"), at `size` x `size` pixels with the trainer's intensity augmentation, BCE + soft Dice. `predict` gives
the bool mask of both lungs at the film's size; `prediction` turns it into the masks a segmentation example asks
for ("right lung" / "left lung" split by connected components, as the model's answers are), so the specialist is
scored by the segmentation task's own metric.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cxrvlm.data.images import ImageCache, augment_intensity
from cxrvlm.examples import Example, Prediction
from cxrvlm.metrics.segmentation import load_target_mask
from cxrvlm.tokens.seg import mask_box, split_lungs
from cxrvlm.tokens.seg_refine import UNet

log = logging.getLogger(__name__)

BOTH = {"lungs", "lung"}
SIDES = ("right lung", "left lung")


def _target_size(ex: Example) -> tuple[int, int]:
    h, w = ex.target["size"]
    return int(h), int(w)


def lung_masks(examples: Sequence[Example]) -> dict[str, np.ndarray]:
    """Image path -> bool mask of both lungs at the film's size, for the single-image segmentation examples whose
    masks, together, cover both lungs of that film."""
    masks: dict[str, list[np.ndarray]] = defaultdict(list)
    labels: dict[str, set[str]] = defaultdict(set)
    for ex in examples:
        if len(ex.images) != 1 or "masks" not in ex.target:
            continue
        for i, entry in enumerate(ex.target["masks"]):
            masks[ex.images[0]].append(load_target_mask(entry, _target_size(ex), f"{ex.study_id} masks[{i}]"))
            labels[ex.images[0]].add(str(entry.get("label", "")).lower())
    whole = {p for p, names in labels.items() if names & BOTH or set(SIDES) <= names}
    return {p: np.logical_or.reduce(masks[p]) for p in sorted(whole)}


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.BILINEAR)) >= 128


class LungUNet:
    """The U-Net and its input size; `fit` trains it, `predict` reads a film."""

    def __init__(self, size: int = 128, widths: Sequence[int] = (16, 32, 64, 128), seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.size, self.seed = int(size), seed
        self.net = UNet(widths, in_channels=1)
        self.cache = ImageCache(self.size)

    def fit(self, masks: dict[str, np.ndarray], epochs: int = 30, batch_size: int = 8,
            lr: float = 2e-3) -> list[dict[str, float]]:
        """Train on (film path -> lung mask); one row (step, loss, seconds) per epoch."""
        if not masks:
            raise ValueError("lung U-Net: no training film has masks of both lungs")
        paths = sorted(masks)
        targets = {p: torch.from_numpy(_resize_mask(masks[p], self.size)).float() for p in paths}
        rng = np.random.default_rng(self.seed)
        steps = max(epochs * len(paths) // batch_size, 1)
        opt = torch.optim.AdamW(self.net.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
        rows, t0 = [], time.perf_counter()
        self.net.train()
        for step in range(steps):
            batch = [paths[i] for i in rng.integers(0, len(paths), batch_size)]
            x = torch.stack([torch.from_numpy(augment_intensity(self.cache.get(p), rng))[None] for p in batch])
            y = torch.stack([targets[p] for p in batch])
            logits = self.net(x * 2.0 - 1.0)
            prob = torch.sigmoid(logits)
            dice = 1 - (2 * (prob * y).sum((1, 2)) + 1) / (prob.sum((1, 2)) + y.sum((1, 2)) + 1)
            loss = F.binary_cross_entropy_with_logits(logits, y) + dice.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if (step + 1) % max(len(paths) // batch_size, 1) == 0 or step == steps - 1:
                rows.append({"step": step + 1, "loss": round(loss.item(), 4),
                             "elapsed_s": round(time.perf_counter() - t0, 1)})
                log.info("lung U-Net %s", rows[-1])
        self.net.eval()
        return rows

    @torch.inference_mode()
    def predict(self, path: str, size: tuple[int, int]) -> np.ndarray:
        """The bool (H, W) mask of both lungs of the film at `path`, at `size` (H, W)."""
        x = torch.from_numpy(self.cache.get(path))[None, None] * 2.0 - 1.0
        prob = torch.sigmoid(self.net(x))[None]  # (1, 1, S, S)
        return (F.interpolate(prob, size=size, mode="bilinear", align_corners=False)[0, 0] >= 0.5).numpy()

    def prediction(self, ex: Example) -> Prediction:
        """A segmentation example answered by the specialist: each asked-for label's mask (the whole mask for
        "lungs", the side's connected component for "right lung" / "left lung")."""
        mask = self.predict(ex.images[0], _target_size(ex))
        sides = split_lungs(mask)
        objects = []
        for label in ex.target.get("labels") or ["lungs"]:
            m = mask if label.lower() in BOTH else sides.get(label.lower(), np.zeros_like(mask))
            box = mask_box(m)
            if box is not None:
                objects.append((label, tuple(float(v) for v in box), m))
        return Prediction(ex.task, masks=objects, boxes=[(lab, box) for lab, box, _ in objects])
