"""Evaluation of a model with a label head: the image-level labels are scored from the head, and the TB question
(screening cases and other-disease films) reads the head's TB output instead of the decoder's likelihoods."""
from __future__ import annotations

from pathlib import Path

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
