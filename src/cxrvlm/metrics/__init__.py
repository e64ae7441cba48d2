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

from cxrvlm.metrics.chexpert_labeler import label_report, label_reports, validate_against_openi
from cxrvlm.metrics.classification import (ClassificationMetric, auroc, binary_at_threshold, bootstrap_ci,
                                           choose_threshold, roc_curve)
from cxrvlm.metrics.clinical import CHEXPERT_5, clinical_f1
from cxrvlm.metrics.detection import DetectionMetric, GroundingMetric, box_iou
from cxrvlm.metrics.nlg import bleu_per_sample_lowercase, coco_scores, sacrebleu_corpus, sentence_bleu
from cxrvlm.metrics.report import ReportMetric
from cxrvlm.metrics.segmentation import SegmentationMetric, dice_iou
from cxrvlm.metrics.vqa import ClosedVQAMetric, OpenVQAMetric, exact_match, normalize_answer, token_f1

__all__ = ["CHEXPERT_5", "ClassificationMetric", "ClosedVQAMetric", "DetectionMetric", "GroundingMetric",
           "OpenVQAMetric", "ReportMetric", "SegmentationMetric", "auroc", "binary_at_threshold",
           "bleu_per_sample_lowercase", "bootstrap_ci", "choose_threshold", "clinical_f1", "coco_scores", "dice_iou",
           "exact_match", "box_iou", "label_report", "label_reports", "normalize_answer", "roc_curve",
           "sacrebleu_corpus", "sentence_bleu", "token_f1", "validate_against_openi"]
