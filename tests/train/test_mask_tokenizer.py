"""Mask tokenizer training: data loading by patient, augmentation, a few real optimiser steps, exact resume, CLI."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from cxrvlm.cli import main
from cxrvlm.tokens.seg import MaskTokenizer, crop_resize, mask_box
from cxrvlm.train import mask_tokenizer
from cxrvlm.train.mask_data import CANVAS, augment, load_items, split_by_patient, to_canvas

sys.path.insert(0, str(Path(__file__).parents[1] / "tokens"))
from seg_shapes import iou, lungs_image  # noqa: E402


@pytest.fixture(scope="module")
def mask_dirs(tmp_path_factory):
    """A covid-like folder (metadata.csv gives patients; two images per patient) and a Shenzhen-like one."""
    root = tmp_path_factory.mktemp("masks")
    covid = root / "covid" / "masks"
    covid.mkdir(parents=True)
    rows = ["image_id,patientid,view"]
    for i in range(12):
        Image.fromarray((lungs_image(120 + 8 * i, 110, seed=i) * 255).astype(np.uint8)).save(covid / f"img{i}.png")
        rows.append(f"img{i}.jpg,{i // 2},PA")
    (root / "covid" / "metadata.csv").write_text("\n".join(rows) + "\n")
    (covid / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(covid / "empty.png")
    sz = root / "shenzhen" / "masks"
    sz.mkdir(parents=True)
    for i, suffix in enumerate(["0001_0", "0002_1", "0003_0"]):
        Image.fromarray((lungs_image(100, 90, seed=20 + i) * 255).astype(np.uint8)).save(sz / f"CHNCXR_{suffix}.png")
    return [covid, sz]


def test_load_items_patients_and_parts(mask_dirs, caplog):
    items = load_items(mask_dirs)
    assert len(items) == 3 * 15  # whole + right + left per readable, non-empty file
    assert "broken.png: unreadable" in caplog.text and "empty.png: empty mask" in caplog.text
    by_stem = {(i.stem, i.label): i for i in items}
    assert by_stem[("img5", "lungs")].patient == "covid:2" and by_stem[("img5", "lungs")].source == "covid"
    assert by_stem[("CHNCXR_0002_1", "left lung")].patient == "shenzhen:CHNCXR_0002"
    whole = by_stem[("img3", "lungs")]
    assert whole.kind == "whole" and mask_box(whole.crop) == (0, 0, whole.crop.shape[1], whole.crop.shape[0])
    with pytest.raises(ValueError, match="not found"):
        load_items([mask_dirs[0] / "nope"])


def test_split_by_patient_is_disjoint_and_deterministic(mask_dirs):
    items = load_items(mask_dirs)
    train, val = split_by_patient(items, 0.34, seed=3)
    assert {i.patient for i in train}.isdisjoint({i.patient for i in val})
    assert len(train) + len(val) == len(items) and {i.source for i in val} == {"covid", "shenzhen"}
    again = split_by_patient(items, 0.34, seed=3)[1]
    assert [(i.stem, i.label) for i in again] == [(i.stem, i.label) for i in val]
    assert {i.patient for i in split_by_patient(items, 0.34, seed=4)[1]} != {i.patient for i in val}


def test_augment_shapes_determinism_and_identity(mask_dirs):
    items = load_items(mask_dirs)[:8]
    canv = torch.from_numpy(np.stack([to_canvas(i.crop) for i in items]))[:, None]
    assert canv.shape == (8, 1, CANVAS, CANVAS) and canv.dtype == torch.uint8
    a = augment(canv, torch.Generator().manual_seed(1))
    b = augment(canv, torch.Generator().manual_seed(1))
    assert a.shape == (8, 1, 64, 64) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1
    assert not torch.equal(a, augment(canv, torch.Generator().manual_seed(2)))
    same = augment(canv, torch.Generator().manual_seed(1), p_identity=1.0)  # no warp: the tokenizer's own input
    for it, t in zip(items, same[:, 0].numpy()):
        ref = crop_resize(it.crop, (0, 0, it.crop.shape[1], it.crop.shape[0]))
        assert iou(t > 0.5, ref > 0.5) > 0.93


def _args(masks, out, steps, fresh=False):
    return argparse.Namespace(masks=[str(m) for m in masks], out=str(out), steps=steps, batch_size=4, lr=1e-3,
                              seed=0, val_fraction=0.3, threads=1, eval_every=1000, ckpt_every=2,
                              embedding_dim=8, fresh=fresh)


def _state(path):
    return load_file(str(path))


def test_training_writes_outputs_and_resumes_exactly(mask_dirs, tmp_path, capsys):
    assert mask_tokenizer.run(_args(mask_dirs, tmp_path / "a", 4)) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 4 and {"miou_whole", "miou_single", "codes_used"} <= set(summary["val"])
    tok = MaskTokenizer.from_file(tmp_path / "a" / "mask_vqvae.safetensors")
    assert tok.model.cfg.embedding_dim == 8
    report = json.loads((tmp_path / "a" / "eval.json").read_text())
    assert report["val_patients"] and len(report["items"]) == summary["val"]["n"]
    assert (tmp_path / "a" / "worst.png").is_file() and len((tmp_path / "a" / "log.jsonl").read_text()) > 0
    # the same run cut in two (2 steps, then resumed to 4) ends bit-identical
    mask_tokenizer.run(_args(mask_dirs, tmp_path / "b", 2))
    mask_tokenizer.run(_args(mask_dirs, tmp_path / "b", 4))
    a, b = _state(tmp_path / "a" / "checkpoint.safetensors"), _state(tmp_path / "b" / "checkpoint.safetensors")
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_cli_command_and_wrong_checkpoint(mask_dirs, tmp_path):
    out = tmp_path / "c"
    argv = ["train-mask-tokenizer", "--masks", *map(str, mask_dirs), "--out", str(out), "--steps", "2",
            "--batch-size", "4", "--embedding-dim", "8", "--eval-every", "1000"]
    assert main(argv) == 0 and (out / "mask_vqvae.safetensors").is_file()
    assert main(argv[:-4] + ["--embedding-dim", "16"]) == 2  # checkpoint of another shape: a clear error
    assert main(["train-mask-tokenizer", "--masks", str(tmp_path / "none"), "--out", str(out)]) == 2
