"""`cxrvlm train-gate` on a small made-up data root: negatives of every kind found, trained, held-out rates
written, and a run that stops resumes from its checkpoint."""
from __future__ import annotations

import json
import logging

import numpy as np
from PIL import Image

from cxrvlm import cli
from cxrvlm.models.view_gate import SIZE, ViewGate
from cxrvlm.tensorfile import read_tensors
from cxrvlm.train import view_gate as train_gate


def _png(path, pixels) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels * 255, np.uint8)).save(path)
    return str(path)


def _data_root(tmp_path):
    rng = np.random.default_rng(0)
    root, curated = tmp_path / "data", tmp_path / "curated"
    rows = ["image_id,patientid,view"]
    for i in range(8):
        name = f"lat{i}.png"
        _png(root / "covid" / "images" / name, np.tile(np.linspace(0, 1, 96), (96, 1)))
        rows.append(f"{name},{i},L")
    (root / "covid" / "metadata.csv").write_text("\n".join(rows) + "\n")
    questions = []
    for i in range(8):
        name = f"head{i}.jpg"
        _png(root / "vqa_rad" / "VQA_RAD Image Folder" / name, rng.random((96, 96)) * 0.5)
        questions.append({"image_name": name, "image_organ": "HEAD"})
    (root / "vqa_rad" / "VQA_RAD Dataset Public.json").write_text(json.dumps(questions))
    for folder in ("tb/masks", "covid/masks", "shenzhen_lungs/masks"):
        for i in range(3):
            mask = np.zeros((96, 96))
            mask[20:80, 10 + i:40] = 1
            _png(root / folder / f"m{i}.png", mask)
    for split in ("train", "val"):
        lines = []
        for i in range(6):
            path = _png(tmp_path / "films" / f"{split}{i}.png", rng.random((96, 96)) * 0.3 + 0.2)
            lines.append(json.dumps({"task": "classify", "images": [path], "prefix": "q", "suffix": "a",
                                     "study_id": f"s{split}{i}", "patient_id": f"p{split}{i}", "source": "tb",
                                     "target": {}, "meta": {"view_positions": [None]}}))
        (curated / f"{split}.jsonl").parent.mkdir(parents=True, exist_ok=True)
        (curated / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return root, curated


def test_held_out_share_is_stable_and_near_its_target():
    keys = [f"file{i}.png" for i in range(2000)]
    share = np.mean([train_gate.held_out(k) for k in keys])
    assert abs(share - train_gate.HELD_OUT) < 0.04 and train_gate.held_out("a") == train_gate.held_out("a")


def test_generated_graphics_vary():
    images = train_gate.generated(10, np.random.default_rng(0))
    assert images.shape == (10, SIZE, SIZE) and images.dtype == np.uint8
    assert len({int(im.std()) for im in images}) > 3


def test_train_gate_writes_weights_and_held_out_rates_and_resumes(tmp_path, caplog):
    root, curated = _data_root(tmp_path)
    out = tmp_path / "run"
    args = ["train-gate", "--data-root", str(root), "--curated", str(curated), "--out", str(out),
            "--batch-size", "10", "--threads", "1", "--ckpt-every", "2"]
    assert cli.main([*args, "--steps", "2"]) == 0
    assert read_tensors(out / "checkpoint.safetensors")[0]["step"] == "2"
    with caplog.at_level(logging.INFO, logger="cxrvlm.train.view_gate"):
        assert cli.main([*args, "--steps", "4"]) == 0
    assert "at step 2" in caplog.text and read_tensors(out / "checkpoint.safetensors")[0]["step"] == "4"
    measured = json.loads((out / "eval.json").read_text())
    assert measured["n"]["frontal"] == 6 and measured["n"]["inverted"] == 6
    assert measured["n"]["not_a_radiograph"] >= train_gate.N_GENERATED
    assert 0.0 <= measured["negatives_passed"] <= 1.0 and 0.0 <= measured["frontal_rejected"] <= 1.0
    gate = ViewGate.load(out / "view_gate.safetensors")
    assert gate.info["steps"] == 4 and "negatives_passed" in gate.info["held_out"]
