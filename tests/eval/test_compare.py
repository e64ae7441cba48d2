"""`cxrvlm compare`: evaluations of one split and the specialists side by side."""
from __future__ import annotations

import json
from pathlib import Path

from cxrvlm.cli import main


def _eval(folder: Path, tb: float, iou: float, rate: float) -> Path:
    folder.mkdir(parents=True)
    doc = {"tasks": {
        "classify": {"metrics": {"tb_auroc": tb}, "other_disease": {"rate": rate},
                     "by_source": {"tb/shenzhen": {"metrics": {"tb_auroc": tb - 0.1}}, "covid": {"metrics": {}}}},
        "segment": {"metrics": {"iou": iou}, "by_source": {"covid": {"metrics": {"iou": iou}}}},
        "vqa": {"metrics": {"closed_accuracy": 0.8}, "by_type": {"types": {
            "view": {"at_or_below_baseline": True}, "label": {"at_or_below_baseline": False}}}}}}
    (folder / "metrics.json").write_text(json.dumps(doc))
    return folder


def test_columns_per_evaluation_and_the_specialists(tmp_path: Path, capsys) -> None:
    old, new = _eval(tmp_path / "old", 0.87, 0.85, 0.66), _eval(tmp_path / "new", 0.93, 0.9, 0.05)
    spec = tmp_path / "specialists.json"
    spec.write_text(json.dumps({"tb_cnn": {"auroc": 0.89, "by_source": {"tb/shenzhen": {"auroc": 0.95}}},
                                "lung_unet": {"iou": 0.91, "by_source": {"covid": {"iou": 0.92}}}}))
    out = tmp_path / "compare.md"
    assert main(["compare", f"old={old}", f"new={new}", "--specialists", str(spec), "--out", str(out)]) == 0
    text = out.read_text()
    assert "|  | old | new | specialists |" in text
    assert "| classify: tb_auroc | 0.870 | 0.930 | 0.890 |" in text
    assert "| classify: other disease read as tuberculosis | 0.660 | 0.050 | – |" in text
    assert "| vqa: question types at or below their majority answer | 1 of 2 (view) | 1 of 2 (view) | – |" in text
    assert "| vqa: closed_accuracy | 0.800 | 0.800 | – |" in text and "detect" not in text  # no eval had it
    assert "| tb/shenzhen | 0.770 | 0.830 | 0.950 |" in text and "| covid | 0.850 | 0.900 | 0.920 |" in text
    by_source = text.split("## classify: tb_auroc by source")[1].split("##")[0]
    assert "covid" not in by_source  # no TB films there: no row


def test_bad_arguments_name_what_is_wrong(tmp_path: Path, capsys) -> None:
    assert main(["compare", "old"]) == 2
    assert "'old' is not NAME=DIR" in capsys.readouterr().err
    assert main(["compare", f"old={tmp_path}"]) == 2
    assert "metrics.json not found" in capsys.readouterr().err
