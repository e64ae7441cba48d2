"""`cxrvlm specialists` trains the TB CNN and the lung U-Net on a curated fixture and scores them on its split."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cxrvlm.cli import main
from cxrvlm.data.split import read_split
from cxrvlm.eval.operating_point import tb_examples
from cxrvlm.eval.specialists import score_tb
from cxrvlm.tasks import mask_task
from cxrvlm.train.lung_unet import LungUNet, lung_masks


def test_specialists_command_writes_both_tables(curated: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "spec"
    assert main(["specialists", "--data", str(curated), "--split", "test", "--out", str(out), "--tb-epochs", "1",
                 "--unet-epochs", "2", "--unet-size", "32"]) == 0
    doc = json.loads((out / "specialists.json").read_text())
    tb, unet = doc["tb_cnn"], doc["lung_unet"]
    cases = tb_examples(read_split(curated, "test"))
    assert tb["n"] == len(cases) and 0.0 <= tb["auroc"] <= 1.0 and tb["sensitivity"] >= 0.9  # the rule's threshold
    assert set(tb["by_source"]) == {e.source for e in cases} and tb["other_disease_as_tb"]["n"] == 1
    assert unet["n"] >= 1 and 0.0 <= unet["iou"] <= 1.0 and set(unet["by_source"]) == {"covid"}
    assert "## TB: plain CNN" in (out / "specialists.md").read_text()


def test_only_one_specialist_and_bad_arguments(curated: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "spec"
    assert main(["specialists", "--data", str(curated), "--split", "test", "--out", str(out), "--only", "tb_cnn",
                 "--tb-epochs", "1"]) == 0
    assert "lung_unet" not in json.loads((out / "specialists.json").read_text())
    capsys.readouterr()
    assert main(["specialists", "--data", str(curated), "--out", str(out), "--unet-size", "0"]) == 2
    assert "--unet-size must be >= 1" in capsys.readouterr().err


def test_tb_figures_from_probabilities() -> None:
    y, p = [1, 1, 0, 0, 0], [0.9, 0.6, 0.7, 0.2, 0.1]
    out = score_tb(y, p, ["a", "a", "a", "b", "b"], [0.65, 0.1])
    assert out["auroc"] == pytest.approx(5 / 6) and out["threshold"] == pytest.approx(0.6)
    assert out["sensitivity"] == 1.0 and out["specificity"] == pytest.approx(2 / 3) and out["accuracy"] == 0.8
    assert out["by_source"] == {"a": {"n": 3, "auroc": 0.5}, "b": {"n": 2, "auroc": None}}
    assert out["other_disease_as_tb"] == {"n": 2, "rate": 0.5}


def test_unet_learns_the_fixture_lungs(curated: Path) -> None:
    masks = lung_masks([e for e in read_split(curated, "train") if e.task == mask_task().name])
    assert masks and all(m.dtype == bool and m.any() for m in masks.values())
    unet = LungUNet(size=32, widths=(8, 16), seed=0)
    unet.fit(masks, epochs=60, batch_size=2, lr=5e-3)
    path, truth = next(iter(masks.items()))
    pred = unet.predict(path, truth.shape)
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert iou > 0.7, iou
    assert np.array_equal(pred.shape, truth.shape)
