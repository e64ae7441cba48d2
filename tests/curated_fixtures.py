"""A tiny curated folder written in the test: small PNG X-ray stand-ins, lung masks and boxes, TB labels and case
notes, turned into examples by the real task modules (so every task of the project appears) and written as
`{train,val,test}.jsonl`, the layout `cxrvlm curate` writes."""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from cxrvlm.records import Box, Report, Study, View
from cxrvlm.tasks.base import get_task, list_tasks

SIZE = (48, 48)  # (H, W) of every image and mask
INFECTIOUS = ("COVID-19", "Viral Pneumonia", "Bacterial Pneumonia", "Fungal Pneumonia", "Pneumonia")


def _png(path: Path, seed: int, tb: bool) -> str:
    """A chest-like picture: two dark lung fields on a bright body; TB cases get a bright blob in the right lung."""
    rng = np.random.default_rng(seed)
    h, w = SIZE
    img = np.full((h, w), 180, np.float32) + rng.normal(0, 8, (h, w))
    img[8:40, 6:21] -= 110
    img[8:40, 27:42] -= 110
    if tb:
        img[12:20, 9:17] += 90
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L").save(path)
    return str(path)


def _lungs() -> np.ndarray:
    m = np.zeros(SIZE, bool)
    m[8:40, 6:21] = True
    m[8:40, 27:42] = True
    return m


def tb_study(folder: Path, i: int, positive: bool) -> Study:
    view = View(f"tb{i}", path=_png(folder / f"tb{i}.png", i, positive), view_position="PA", size=SIZE)
    tb = 1.0 if positive else 0.0
    return Study(f"tb:{i}", f"ptb{i}", "tb", "test", views=[view],
                 labels={"Tuberculosis": tb, "No Finding": 1.0 - tb})


def lung_study(folder: Path, i: int, covid: bool) -> Study:
    """Lung boxes + a lung mask + infectious labels + case notes: detect, ground, segment, finding, reports."""
    view = View(f"cv{i}", path=_png(folder / f"cv{i}.png", 100 + i, False), view_position="PA", size=SIZE,
                boxes=[Box("right lung", 6 / 48, 8 / 48, 21 / 48, 40 / 48),
                       Box("left lung", 27 / 48, 8 / 48, 42 / 48, 40 / 48)],
                masks={"lungs": _lungs()})
    labels = {k: 0.0 for k in INFECTIOUS} | {"Tuberculosis": 0.0, "No Finding": 0.0 if covid else 1.0}
    if covid:
        labels.update({"COVID-19": 1.0, "Viral Pneumonia": 1.0, "Pneumonia": 1.0})
    notes = "Bilateral patchy opacities." if covid else "The lungs are clear."
    return Study(f"cv:{i}", f"pcv{i}", "covid", "test", views=[view], labels=labels,
                 report=Report(findings=notes, kind="case_notes"))


def _examples(studies: list[Study], seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for study in studies:
        for task in list_tasks():
            out += [e.to_json() for e in get_task(task).format(study, rng)]
    return out


def write_curated(folder: Path, n_tb: int = 4, n_lung: int = 2) -> Path:
    """`folder/{train,val,test}.jsonl` (+ images under folder/images); every split has TB positives and negatives
    and lung studies. Returns folder."""
    images = folder / "images"
    base = 0
    for split in ("train", "val", "test"):
        studies = [tb_study(images, base + k, positive=k % 2 == 0) for k in range(n_tb)]
        studies += [lung_study(images, base + k, covid=k % 2 == 0) for k in range(n_lung)]
        base += 100
        rows = _examples(studies, base)
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def read_rows(folder: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines() if line.strip()]
