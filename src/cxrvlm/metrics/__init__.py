"""Metrics of every task, as `update(pred, target)` / `compute() -> dict[str, float]` / `reset()` objects over pure
functions (MONAI style), plus the rule-based CheXpert report labeler. Each module documents the target keys it reads.

    m = ClassificationMetric(["normal", "tuberculosis"], positive="tuberculosis")
    for pred, ex in zip(predictions, examples):
        m.update(pred, ex.target)
    m.compute()  # {"accuracy": ..., "auroc": ..., "auroc_ci_low": ..., "sensitivity": ..., ...}

Every `compute()` returns a flat JSON-able dict of floats (NaN where a value is undefined, e.g. AUROC with one class)
with `n` and `n_invalid` (malformed predictions, scored as wrong). Report metrics need the "eval" extra
(pycocoevalcap, sacrebleu; METEOR and the PTB tokenizer need Java).
"""
from __future__ import annotations

import importlib
from typing import Any

# Lazy (PEP 562), not plain imports: `python -m cxrvlm.metrics.chexpert_labeler` runs after this file, which must
# not have imported that module already (runpy would run it twice). Public name -> defining module:
_EXPORTS = {
    "label_report": "chexpert_labeler", "label_reports": "chexpert_labeler",
    "validate_against_openi": "chexpert_labeler",
    "ClassificationMetric": "classification", "auroc": "classification", "binary_at_threshold": "classification",
    "bootstrap_ci": "classification", "choose_threshold": "classification", "roc_curve": "classification",
    "CHEXPERT_5": "clinical", "clinical_f1": "clinical",
    "DetectionMetric": "detection", "GroundingMetric": "detection", "box_iou": "detection",
    "bleu_per_sample_lowercase": "nlg", "coco_scores": "nlg", "sacrebleu_corpus": "nlg", "sentence_bleu": "nlg",
    "ReportMetric": "report",
    "SegmentationMetric": "segmentation", "dice_iou": "segmentation",
    "ClosedVQAMetric": "vqa", "OpenVQAMetric": "vqa", "exact_match": "vqa", "normalize_answer": "vqa",
    "token_f1": "vqa",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cxrvlm.metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cxrvlm.metrics.{_EXPORTS[name]}"), name)


def __dir__() -> list[str]:
    return __all__
