"""Detection scores as probabilities: which boxes were right, the Platt fit, the file beside the model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cxrvlm.eval.box_calibration import fit, outcomes
from cxrvlm.models.box_calibration import BOX_CALIBRATION_FILE, saved_box_calibration, write_box_calibration


def _record(study: str, boxes: list, scores: list, truth: list) -> dict:
    return {"task": "detect", "study_id": study, "target": {"boxes": [{"label": l, "box": b} for l, b in truth]},
            "prediction": {"boxes": [{"label": l, "box": b} for l, b in boxes], "box_scores": scores}}


def test_a_box_is_right_once_per_true_box_of_its_label():
    lung = [0.1, 0.1, 0.4, 0.9]
    r = _record("s1", [("right lung", lung), ("right lung", lung), ("left lung", lung)], [0.9, 0.5, 0.8],
                [("right lung", lung)])
    assert outcomes([r]) == [("s1", 0.9, True), ("s1", 0.8, False), ("s1", 0.5, False)]  # the duplicate is wrong
    assert outcomes([{**r, "skipped": "image unreadable"}]) == []


def test_fit_needs_both_kinds_and_calibrates_out_of_sample():
    rng = np.random.default_rng(0)
    records = []
    for i in range(60):
        right = bool(rng.random() < 0.6)
        box = [0.1, 0.1, 0.4, 0.9] if right else [0.6, 0.1, 0.9, 0.9]
        score = float(np.clip(rng.normal(0.3 if right else 0.15, 0.05), 0.01, 0.99))
        records.append(_record(f"s{i}", [("right lung", box)], [score], [("right lung", [0.1, 0.1, 0.4, 0.9])]))
    out = fit(records)
    assert out["n"] == 60 and out["ece_calibrated"] < out["ece_raw"] and out["a"] > 0
    assert fit(records[:3]) is None


def test_the_saved_file_is_read_back_and_a_bad_one_named(tmp_path):
    assert saved_box_calibration(tmp_path) is None
    write_box_calibration({"a": 2.0, "b": -1.0, "n": 10}, tmp_path / BOX_CALIBRATION_FILE)
    assert saved_box_calibration(tmp_path) == (2.0, -1.0)
    (tmp_path / BOX_CALIBRATION_FILE).write_text(json.dumps({"a": -1, "b": 0}))
    with pytest.raises(ValueError, match="box_calibration.json"):
        saved_box_calibration(tmp_path)
