"""The shipped mask tokenizer on real lung masks of patients it was not trained on (the validation patients of
its training run: same split function, fraction and seed)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from seg_shapes import iou

from cxrvlm.tokens.seg import MaskTokenizer, mask_box, split_lungs
from cxrvlm.train.mask_data import held_out_patients

pytestmark = pytest.mark.realdata


def test_round_trip_on_held_out_covid_patients(shared_data):
    covid = shared_data / "covid"
    with (covid / "metadata.csv").open(newline="", encoding="utf-8") as f:
        patient = {Path(r["image_id"]).stem: f"covid:{r['patientid']}" for r in csv.DictReader(f)}
    stems = sorted(p.stem for p in (covid / "masks").glob("*.png"))
    held = held_out_patients("covid", {patient[s] for s in stems}, 0.15, seed=0)
    val = [s for s in stems if patient[s] in held][:6]
    assert len(val) == 6
    tok = MaskTokenizer.default()
    ious: dict[str, list[float]] = {"whole": [], "single": []}
    for stem in val:
        with Image.open(covid / "masks" / f"{stem}.png") as im:
            mask = np.asarray(im.convert("L")) > 127
        parts = split_lungs(mask)
        whole = np.logical_or.reduce(list(parts.values()))
        for kind, m in [("whole", whole)] + [("single", p) for p in parts.values()]:
            box = mask_box(m)
            ious[kind].append(iou(tok.decode(tok.encode(m, box), box, m.shape), m))
    assert min(ious["whole"] + ious["single"]) > 0.85, ious
    assert np.mean(ious["whole"]) > 0.92 and np.mean(ious["single"]) > 0.93, ious
