"""Evaluation of a model with a label head: the image-level labels are scored from the head, and the TB question
(screening cases and other-disease films) reads the head's TB output instead of the decoder's likelihoods."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY

from cxrvlm.data.split import read_split
from cxrvlm.eval.runner import EvalOptions, evaluate
from cxrvlm.models import Tokenizer, create_model
from cxrvlm.tasks import labels


@pytest.fixture(scope="module")
def head_model(curated: Path):
    texts = [t for e in read_split(curated, "train") for t in (e.prefix, e.suffix)]
    torch.manual_seed(0)
    return create_model("cxrvlm-tiny", tokenizer=Tokenizer.train(texts, vocab_size=400),
                        label_names=list(labels.LABEL_SPACE), **TINY).eval()


def test_labels_and_tb_come_from_the_head(curated: Path, head_model) -> None:
    examples = [e for e in read_split(curated, "test") if e.task in ("classify", labels.NAME)]
    result = evaluate(head_model, examples, EvalOptions(fast_metrics=True, progress=False, batch_size=4))
    assert result.tasks[labels.NAME].n == sum(e.task == labels.NAME for e in examples)
    assert "labels_auroc_tuberculosis" in result.tasks[labels.NAME].metrics
    head = {r["images"][0]: r["prediction"]["probs"] for r in result.records if r["task"] == labels.NAME}
    tb_records = [r for r in result.records if r["task"] == "classify" and r["target"]["kind"] == "tb"]
    assert tb_records
    for r in tb_records:
        assert r["prediction"]["probs"]["tuberculosis"] == pytest.approx(head[r["images"][0]]["Tuberculosis"])
    assert result.other_disease_records  # the COVID-19 films, asked the TB question
    for r in result.other_disease_records:
        assert r["prediction"]["probs"]["tuberculosis"] == pytest.approx(head[r["images"][0]]["Tuberculosis"])


def test_findings_step1_is_stated_from_the_head_and_step2_follows_it(curated: Path, head_model) -> None:
    from cxrvlm.data.images import ImageCache
    from cxrvlm.tasks import findings_then_report as ftr

    examples = [e for e in read_split(curated, "test") if e.task == ftr.NAME]
    assert examples, "the curated fixture has no findings-then-report study"
    result = evaluate(head_model, examples, EvalOptions(fast_metrics=True, progress=False, threshold=0.3))
    cache = ImageCache(int(head_model.config.image_size))
    by_study = {}
    for ex in examples:
        if ex.target["step"] == 1:
            head = head_model.label_probs([cache.views(ex)])[0]
            by_study[ex.study_id] = ftr.text_from_head(ex, head, 0.3)
    for r in result.records:
        if r["target"]["step"] == 1:
            assert r["generated"] == by_study[r["study_id"]]
        else:
            assert r["prefix"].split("\n")[1] == by_study[r["study_id"]]  # the report follows the head's findings
    assert "findings_majority_f1" in result.tasks[ftr.NAME].metrics


def test_calibrate_fits_a_temperature_per_label_and_writes_it(curated: Path, head_model, tmp_path) -> None:
    import json

    from cxrvlm.eval.calibrate import calibrate, write_temperatures
    from cxrvlm.models import load_model

    examples = read_split(curated, "test") + read_split(curated, "train")
    result = calibrate(head_model, examples, batch_size=4)
    assert result["n_films"] == sum(e.task == labels.NAME for e in examples)
    assert list(result["temperatures"]) == list(labels.LABEL_SPACE)
    assert all(0.05 <= t <= 20 for t in result["temperatures"].values())
    assert 0 <= result["ece_before"] <= 1 and 0 <= result["ece_after"] <= 1
    head_model.save_pretrained(tmp_path / "m")
    before = head_model.label_probs(images=[[np.full((64, 64), 0.4, np.float32)]])[0]
    temperatures = {name: 2.0 for name in labels.LABEL_SPACE}
    write_temperatures(tmp_path / "m", temperatures)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["label_temperatures"] == [2.0] * 20
    after = load_model(tmp_path / "m").label_probs(images=[[np.full((64, 64), 0.4, np.float32)]])[0]
    for name in labels.LABEL_SPACE:  # sigmoid(z / 2): the same side of 0.5, nearer to it
        z = np.log(before[name] / (1 - before[name]))
        assert after[name] == pytest.approx(1 / (1 + np.exp(-z / 2)), abs=1e-4)
    with pytest.raises(ValueError, match="not the calibrated labels"):
        write_temperatures(tmp_path / "m", {"Tuberculosis": 1.0})


def test_the_eval_report_draws_the_head_s_reliability(curated: Path, head_model, tmp_path) -> None:
    from cxrvlm.eval.figures import calibration_figures

    examples = [e for e in read_split(curated, "test") if e.task == labels.NAME]
    result = evaluate(head_model, examples, EvalOptions(fast_metrics=True, progress=False))
    assert "labels_ece" in result.tasks[labels.NAME].metrics
    figs = calibration_figures(result.records, tmp_path)
    assert figs and all((tmp_path / f["path"]).is_file() for f in figs)


def test_reports_are_checked_against_the_head_and_contradictions_counted(curated: Path, head_model) -> None:
    from cxrvlm.data.images import ImageCache
    from cxrvlm.tasks import verdict

    examples = [e for e in read_split(curated, "test") if e.task == "report"]
    result = evaluate(head_model, examples, EvalOptions(fast_metrics=True, progress=False, threshold=0.3))
    m = result.tasks["report"].metrics
    assert m["head_checked"] == result.tasks["report"].n == len(examples)
    assert m["head_contradicted"] == sum(bool(r["contradictions"]) for r in result.records)
    cache = ImageCache(int(head_model.config.image_size))
    heads = head_model.label_probs([cache.views(e) for e in examples])
    for r, head in zip(result.records, heads):  # what the model gives agrees with its head
        assert verdict.contradictions(r["generated"], head, 0.3) == []
