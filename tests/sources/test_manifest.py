"""The generic CSV / JSONL manifest adapter for a user's own data, on manifests written here."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrvlm.records import load_mask
from cxrvlm.sources.base import open_source


def _png(path: Path, width: int = 40, height: int = 20) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((height, width), np.uint8)
    arr[: height // 2, : width // 4] = 255
    Image.fromarray(arr).save(path)
    return path.name


def _write_csv(root: Path, rows: list[dict[str, str]]) -> None:
    header = list(dict.fromkeys(k for r in rows for k in r))
    with (root / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)


@pytest.fixture()
def csv_root(tmp_path: Path) -> Path:
    root = tmp_path / "mine"
    for name in ("p1_pa.png", "p1_lat.png", "p1_b.png", "p3.png", "p4.png", "p6.png"):
        _png(root / "imgs" / name)
    _png(root / "masks" / "p1_left.png")
    box = [{"label": "Cardiomegaly", "x1": 10, "y1": 5, "x2": 30, "y2": 15}]
    _write_csv(root, [
        {"image": "imgs/p1_pa.png|imgs/p1_lat.png", "patient_id": "p1", "study_id": "s1", "view": "PA|L",
         "findings": "Enlarged heart.", "impression": "Cardiomegaly.", "label:Cardiomegaly": "1",
         "label:Edema": "0", "label:Pneumonia": "", "boxes": json.dumps(box),
         "mask:left lung": "masks/p1_left.png|", "days": "0", "sex": "F"},
        {"image": "imgs/p1_b.png", "patient_id": "p1", "report": "Stable nodule.", "labels": "Nodule|Mass",
         "question": "Is there a nodule?", "answer": "yes", "days": "10", "width": "40", "height": "20"},
        {"image": "imgs/missing.png", "patient_id": "p2"},
        {"image": "imgs/p3.png", "patient_id": "p3", "label:Cardiomegaly": "maybe"},
        {"image": "imgs/p4.png", "patient_id": "p4", "boxes": "[{\"label\": \"x\", "},
        {"image": "", "patient_id": "p5", "report": "No acute disease."},
        {"image": "imgs/p6.png", "patient_id": "p6", "study_id": "s1"},
        {"image": "imgs/p6.png", "patient_id": "p7", "box_units": "normalised",
         "boxes": json.dumps([{"label": "Nodule", "x1": 0.5, "y1": 0.25, "x2": 0.75, "y2": 0.5}])},
    ])
    return root


def test_csv_manifest_multiview_labels_boxes_masks(csv_root: Path) -> None:
    src = open_source("manifest", csv_root)
    studies = {s.study_id: s for s in src}
    s1 = studies["s1"]
    assert s1.patient_id == "p1" and [v.view_position for v in s1.views] == ["PA", "LATERAL"]
    assert s1.labels == {"Cardiomegaly": 1.0, "Edema": 0.0}  # empty = unknown, left out
    assert s1.report.findings == "Enlarged heart." and s1.report.impression == "Cardiomegaly."
    (box,) = s1.views[0].boxes
    assert box.label == "Cardiomegaly" and box.as_tuple() == pytest.approx((0.25, 0.25, 0.75, 0.75))
    assert s1.views[0].size == (20, 40)  # read from the image header for the pixel boxes
    assert load_mask(s1.views[0].masks["left lung"], (20, 40))[0, 0] and s1.views[1].masks == {}
    assert s1.meta == {"sex": "F"}
    nb = studies["p7:imgs/p6.png"].views[0].boxes[0]
    assert nb.as_tuple() == pytest.approx((0.5, 0.25, 0.75, 0.5))  # normalised coordinates kept as given


def test_csv_manifest_report_qa_prior_and_text_only(csv_root: Path) -> None:
    studies = {s.study_id: s for s in open_source("manifest", csv_root)}
    b = studies["p1:imgs/p1_b.png"]
    assert b.labels == {"Nodule": 1.0, "Mass": 1.0} and b.report.findings == "Stable nodule."
    assert b.qa[0].question == "Is there a nodule?" and b.qa[0].answer == "yes" and b.qa[0].closed
    assert b.views[0].size == (20, 40)
    assert b.prior is studies["s1"] and b.prior_interval_days == 10.0
    text_only = studies["p5:line7"]
    assert text_only.views == [] and text_only.report.findings == "No acute disease."


def test_csv_manifest_bad_rows_are_skipped_with_line_and_column(csv_root: Path) -> None:
    src = open_source("manifest", csv_root)
    assert len(list(src)) == 4
    reasons = dict(src.skipped)
    assert reasons["manifest.csv line 4"] == f"column 'image': imgs/missing.png not found under {csv_root}"
    assert reasons["manifest.csv line 5"] == "column 'label:Cardiomegaly': 'maybe' is not 1, 0, -1 or empty"
    assert reasons["manifest.csv line 6"].startswith("column 'boxes': not valid JSON")
    assert reasons["manifest.csv line 8"].startswith("column 'study_id': 's1' already used at line 2")


def test_jsonl_manifest_lists_and_qa(tmp_path: Path) -> None:
    root = tmp_path / "j"
    _png(root / "a.png", 10, 10)
    _png(root / "b.png", 10, 10)
    lines = [
        {"image": ["a.png", "b.png"], "patient_id": 7, "view": ["AP", "lateral"], "labels": ["Edema"],
         "boxes": [{"label": "Edema", "x1": 0, "y1": 0, "x2": 5, "y2": 10, "view": 1}],
         "qa": [{"question": "Which view?", "answer": "lateral"}], "impression": "Edema."},
        {"image": "a.png", "patient_id": 8, "view": "oblique"},
        {"image": "a.png", "patient_id": 9, "boxes": [{"label": "x", "x1": 0, "y1": 0, "x2": 5, "y2": 5, "view": 3}]},
        {"image": "a.png", "patient_id": 10, "question": "Is it normal?"},
    ]
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    src = open_source("manifest", root)
    (s,) = list(src)
    assert s.patient_id == "7" and [v.view_position for v in s.views] == ["AP", "LATERAL"]
    assert s.views[0].boxes == [] and s.views[1].boxes[0].as_tuple() == pytest.approx((0.0, 0.0, 0.5, 1.0))
    assert s.qa[0].answer == "lateral" and not s.qa[0].closed and s.labels == {"Edema": 1.0}
    reasons = dict(src.skipped)
    assert "column 'view': 'oblique'" in reasons["manifest.jsonl line 2"]
    assert "view 3 but the row has 1 image(s)" in reasons["manifest.jsonl line 3"]
    assert reasons["manifest.jsonl line 4"] == "column 'answer': empty while the other one is given"


def test_manifest_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither manifest.csv nor manifest.jsonl"):
        list(open_source("manifest", tmp_path))
    (tmp_path / "manifest.csv").write_text("image,patient\na.png,1\n")
    with pytest.raises(ValueError, match="missing column.*patient_id"):
        list(open_source("manifest", tmp_path))
    (tmp_path / "manifest.jsonl").write_text("")
    with pytest.raises(ValueError, match="both manifest.csv and manifest.jsonl"):
        list(open_source("manifest", tmp_path))
