"""Helpers for the model tests (import as `from model_fixtures import TINY, views, example`)."""
from __future__ import annotations

import numpy as np

from cxrvlm.examples import Example

SENTENCES = [
    "The heart size is normal. The lungs are clear.",
    "No pleural effusion or pneumothorax.",
    "There is a focal consolidation in the right lower lobe.",
    "Cavitary lesion in the left upper lobe, suspicious for tuberculosis.",
    "What is the diagnosis of the X-ray image?",
    "Generate a medical report for the X-ray image provided",
    "detect left lung ; right lung",
    "segment left lung",
    "Is there cardiomegaly? yes no normal tuberculosis",
    "Mild cardiomegaly. Bilateral interstitial opacities.",
]

# Every registered configuration shrunk to milliseconds; keys a configuration does not use are ignored by it.
TINY = dict(image_size=32, vit_patch_size=8, vit_width=32, vit_depth=1, vit_heads=2, cnn_widths=[8, 16],
            cnn_blocks=1, n_layer=2, n_embd=32, n_head=2, max_text_len=64, projector_hidden=32, projector_tokens=4,
            projector_depth=1, dropout=0.0)


def views(n: int, size: int = 40, seed: int = 0) -> list[np.ndarray]:
    """n random float32 (size, size) views in [0, 1] (not the model's size: preprocessing resizes them)."""
    rng = np.random.default_rng(seed)
    return [rng.random((size, size), dtype=np.float32) for _ in range(n)]


def example(prefix: str, suffix: str, n_images: int = 1, task: str = "report") -> Example:
    return Example(task=task, images=[f"img{i}.png" for i in range(n_images)], prefix=prefix, suffix=suffix,
                   study_id="s1", patient_id="p1", source="test")
