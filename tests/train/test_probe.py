"""The encoder probe runs end to end on a curated fixture and reports a validation AUROC."""
from __future__ import annotations

import json

import pytest

from curated_fixtures import write_curated
from cxrvlm.train.probe import main


def test_probe_prints_validation_auroc(tmp_path, capsys) -> None:
    data = write_curated(tmp_path / "curated")
    assert main(["--data", str(data), "--image-size", "32", "--epochs", "2", "--batch-size", "4",
                 "--set", "cnn_widths=[8,16]"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and all(0.0 <= r["val_auroc"] <= 1.0 for r in rows)
    assert rows[-1]["step"] == 5  # 2 epochs of 4 images in batches of 4 is 2 steps; the probe runs at least 5


def test_probe_needs_both_classes(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for split in ("train", "val"):
        (empty / f"{split}.jsonl").write_text("")
    with pytest.raises(ValueError, match="needs TB and normal"):
        main(["--data", str(empty)])
