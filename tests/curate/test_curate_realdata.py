"""Curating all four folders of ../shared/data (skipped where the data is absent). Slow: the segment task encodes
~300 lung masks with the VQ-VAE mask tokenizer (1-3 minutes on two CPU cores)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from cxrvlm.curate.card import write_card
from cxrvlm.curate.pipeline import CurateConfig, curate
from cxrvlm.curate.split import SPLITS
from cxrvlm.curate.write import write_dataset
from cxrvlm.tasks.base import list_tasks

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def test_curate_shared_data_every_task_no_leak(shared_data: Path, tmp_path: Path) -> None:
    names = ("tb", "covid", "shenzhen_lungs", "openi")
    config = CurateConfig(sources=[(n, shared_data / n) for n in names], out=tmp_path, render=3, progress=False)
    result = curate(config)
    per_task = {t: sum(1 for s in SPLITS for e in result.examples[s] if e.task == t) for t in list_tasks()}
    assert all(n > 0 for n in per_task.values()), per_task
    patient_split: dict[str, str] = {}
    for split in SPLITS:
        for ex in result.examples[split]:
            assert patient_split.setdefault(ex.patient_id, split) == split, ex.patient_id
    # every source with images reaches every split; Open-i text lands in text.jsonl
    for source in ("tb", "covid", "shenzhen_lungs"):
        assert all(any(e.source == source for e in result.examples[s]) for s in SPLITS), source
    assert len(result.text) > 2000 and all(t["text"] for t in result.text)
    # the tb folder holds two byte-identical images (n6, n32): one study kept, both patients in one split
    assert any(d.match == "bytes" and {Path(d.kept_path).name, Path(d.dropped_path).name} == {"n6.png", "n32.png"}
               for d in result.duplicates)
    for d in result.duplicates:
        assert result.study_split[d.kept_study] in SPLITS and d.dropped_study not in result.study_split
    out = write_dataset(result)
    card = write_card(result, out).read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"| **total** | {manifest['counts']['examples']['train']} |" in card
    assert len(list((out / "card").glob("*.png"))) == 3


def test_curate_new_folders_patient_level_with_their_tasks(shared_data: Path, tmp_path: Path) -> None:
    names = ("nih", "hannover", "vqa_rad")
    result = curate(CurateConfig(sources=[(n, shared_data / n) for n in names], out=tmp_path, render=0,
                                 progress=False))
    by_source: dict[str, set[str]] = {}
    patient_split: dict[str, str] = {}
    for split in SPLITS:
        for ex in result.examples[split]:
            by_source.setdefault(ex.source, set()).add(ex.task)
            assert patient_split.setdefault(ex.patient_id, split) == split, ex.patient_id
    assert by_source["nih"] >= {"classify", "detect", "ground", "report", "vqa"}
    assert by_source["hannover"] >= {"classify", "report", "vqa"} and by_source["vqa_rad"] == {"vqa"}
    assert all(any(e.source == n for e in result.examples[s]) for n in names for s in SPLITS)
    rad = [e for s in SPLITS for e in result.examples[s] if e.source == "vqa_rad"]
    assert len(rad) == 800 and all(e.meta["official_split"] in ("train", "test") for e in rad)
    assert sum(r["kind"] == "not_chest" for r in result.skipped) == 144  # VQA-RAD's head and abdomen images
    films = [e for s in SPLITS for e in result.examples[s] if e.source == "hannover"]
    assert len({e.patient_id for e in films}) == 50
