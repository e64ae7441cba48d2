"""`cxrvlm curate` end to end on tiny datasets written here in the real layouts (tb, shenzhen_lungs, covid)."""
from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from curate_fixtures import write_png
from PIL import Image

from cxrvlm.cli import main

REQUIRED = ("task", "images", "prefix", "suffix", "study_id", "patient_id", "source")


def _tb(root: Path) -> Path:
    rows = [("CHNCXR_0001_0", "shenzhen", 0), ("CHNCXR_0002_1", "shenzhen", 1), ("MCUCXR_0003_1", "montgomery", 1)]
    rows += [(f"n{i}", "da_db", i % 2) for i in range(12)]
    for i, (image_id, _, _) in enumerate(rows):
        write_png(root / "images" / f"{image_id}.png", 100 + i, size=(64, 64))
    shutil.copy(root / "images" / "n0.png", root / "images" / "n11.png")  # a byte-identical copy, as in the data
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "source", "tb", "width", "height"])
        w.writerows([(i, s, t, 64, 64) for i, s, t in rows])
    return root


def _shenzhen(root: Path) -> Path:
    for i, name in enumerate(("CHNCXR_0001_0", "CHNCXR_0002_1")):
        write_png(root / "images" / f"{name}.png", 200 + i, size=(80, 72))
        mask = np.zeros((80, 72), np.uint8)
        mask[10:70, 8:32] = mask[10:70, 40:64] = 255
        (root / "masks").mkdir(parents=True, exist_ok=True)
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")
    return root


def _covid(root: Path) -> Path:
    header = ["image_id", "patientid", "offset", "sex", "age", "finding", "view", "clinical_notes", "license",
              "has_lung_mask", "geographic_extent_mean", "opacity_mean", "width", "height"]
    rows = [["a1.png", "1", "0", "F", "50", "COVID-19", "PA", "Bilateral opacities.", "CC BY", "0", "3.0", "2.0"],
            ["a2.png", "1", "4", "F", "50", "COVID-19", "PA", "Worse opacities.", "CC BY", "0", "6.0", "4.0"],
            ["a3.png", "1", "4", "F", "50", "COVID-19", "L", "Worse opacities.", "CC BY", "0", "", ""],
            ["b1.png", "2", "0", "M", "60", "No Finding", "PA", "", "CC BY", "0", "", ""],
            ["c1.png", "3", "1", "M", "70", "Pneumonia", "AP", "Right lower lobe opacity.", "CC BY", "0", "", ""]]
    for i, r in enumerate(rows):
        write_png(root / "images" / r[0], 300 + i, size=(60, 50))
        r += ["50", "60"]
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    boxes = {"images": [{"id": 1, "file_name": "a1.png", "width": 50, "height": 60}],
             "categories": [{"id": 1, "name": "Right Lung"}, {"id": 2, "name": "Left Lung"}],
             "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 6, 18, 45]},
                             {"id": 2, "image_id": 1, "category_id": 2, "bbox": [27, 6, 18, 45]}]}
    (root / "lung_boxes.json").write_text(json.dumps(boxes))
    return root


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    root = tmp_path_factory.mktemp("curate_cli")
    tb, sz, cv = _tb(root / "tb"), _shenzhen(root / "shenzhen_lungs"), _covid(root / "covid")
    out = root / "out"
    rc = main(["curate", "--source", f"tb={tb}", "--source", f"shenzhen_lungs={sz}", "--source", f"covid={cv}",
               "--out", str(out), "--seed", "1", "--render", "6"])
    return rc, out


def test_curate_writes_splits_with_the_required_fields(curated: tuple[int, Path]) -> None:
    rc, out = curated
    assert rc == 0
    examples = {s: _read(out / f"{s}.jsonl") for s in ("train", "val", "test")}
    assert all(examples.values())
    patient_splits: dict[str, set[str]] = {}
    for split, rows in examples.items():
        for row in rows:
            assert all(k in row for k in REQUIRED)
            assert all(Path(p).is_file() for p in row["images"])
            patient_splits.setdefault(row["patient_id"], set()).add(split)
    assert all(len(s) == 1 for s in patient_splits.values())
    # the same Shenzhen patient in tb and shenzhen_lungs sits in one split
    linked = [r for rows in examples.values() for r in rows if r["patient_id"] == "shenzhen:CHNCXR_0002"]
    assert {r["source"] for r in linked} == {"tb", "shenzhen_lungs"}
    # the copied image: one study kept, the other reported
    skipped = _read(out / "skipped.jsonl")
    assert [r["study_id"] for r in skipped if r["kind"] == "duplicate"] == ["tb:n11"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 1 and manifest["cxrvlm_version"] and "--source tb=" in manifest["command"]
    assert manifest["counts"]["examples"] == {s: len(v) for s, v in examples.items()}
    assert {s["name"] for s in manifest["sources"]} == {"tb", "shenzhen_lungs", "covid"}


def test_card_reports_the_counts_and_draws_examples(curated: tuple[int, Path]) -> None:
    _, out = curated
    card = (out / "card.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    for task, per in manifest["counts"]["tasks"].items():
        row = f"| {task} | {per['train']} | {per['val']} | {per['test']} | {sum(per.values())} |"
        assert row in card
    for source, tasks in manifest["counts"]["source_tasks"].items():
        for task, per in tasks.items():
            assert f"| {source} | {task} | {per['train']} | {per['val']} | {per['test']} | {sum(per.values())} |" in card
        per = manifest["counts"]["sources"][source]
        assert f"| {source} | **all** | {per['train']} | {per['val']} | {per['test']} | {sum(per.values())} |" in card
    assert set(manifest["counts"]["source_tasks"]["tb"]) >= {"classify", "vqa", "report"}
    assert "## Label balance" in card and "Tuberculosis" in card and "## Left out" in card
    pngs = re.findall(r"\]\((card/[^)]+\.png)\)", card)
    assert 1 <= len(pngs) <= 6 and all((out / p).is_file() for p in pngs)
    with Image.open(out / pngs[0]) as im:
        assert im.width >= 640 and im.height > 400


def test_curate_is_reproducible(curated: tuple[int, Path], tmp_path: Path) -> None:
    _, out = curated
    root = out.parent
    again = tmp_path / "again"
    rc = main(["curate", "--source", f"covid={root / 'covid'}", "--source", f"shenzhen_lungs={root / 'shenzhen_lungs'}",
               "--source", f"tb={root / 'tb'}", "--out", str(again), "--seed", "1", "--render", "0"])
    assert rc == 0
    for split in ("train", "val", "test"):
        key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
        assert sorted(map(key, _read(again / f"{split}.jsonl"))) == sorted(map(key, _read(out / f"{split}.jsonl")))


def test_cli_errors_exit_2_with_a_clear_message(curated: tuple[int, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    _, out = curated
    tb = out.parent / "tb"
    assert main(["curate", "--source", f"nosuch={tb}", "--out", str(tmp_path / "o")]) == 2
    assert "unknown source 'nosuch'" in capsys.readouterr().err
    assert main(["curate", "--source", f"tb={tmp_path / 'absent'}", "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["curate", "--source", f"tb={tb}", "--out", str(tmp_path / "o"), "--tasks", "ground"]) == 2
    assert "no examples" in capsys.readouterr().err  # tb has no boxes: nothing to ground
    assert main(["curate", "--source", f"tb={tb}", "--out", str(tmp_path / "o"), "--on-duplicate", "error"]) == 2
    err = capsys.readouterr().err
    assert "n11.png" in err and "n0.png" in err
