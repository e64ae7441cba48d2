"""Report-generation metric: language scores (`nlg`) and clinical efficacy (`clinical`) of generated reports.

Target of `ReportMetric.update`: `{"report": str}` (the reference report). Prediction fields read: `pred.valid`,
`pred.text` (falling back to `pred.answer`). An invalid prediction is scored as an empty report and counted in
`n_invalid`; a valid but empty one in `n_empty_prediction`. A case whose reference is empty cannot be scored: it is
left out and counted in `n_empty_reference`.

Keys of `compute()`: n, n_invalid, n_empty_prediction, n_empty_reference; bleu_1..bleu_4, meteor, rouge_l, cider
(pycocoevalcap); sacrebleu (corpus, /100); bleu_per_sample_lowercase (PaliGemma-CXR's per-sample BLEU-4);
f1_14_micro, f1_14_macro, f1_5_micro, f1_5_macro, precision_14_micro, recall_14_micro and chexpert_f1_<label>
(clinical efficacy with the rule-based CheXpert labeler, uncertain counted positive). Everything is NaN when no case
was scored.
"""
from __future__ import annotations

import logging
import math
from typing import Any

from cxrvlm.metrics.clinical import Labeler, clinical_f1
from cxrvlm.metrics.common import require
from cxrvlm.metrics.nlg import bleu_per_sample_lowercase, coco_scores, sacrebleu_corpus
from cxrvlm.examples import Prediction

log = logging.getLogger(__name__)


class ReportMetric:
    """Accumulates (generated, reference) report pairs; `compute()` scores the corpus.

    coco: run pycocoevalcap (starts Java for the tokenizer, under a second); meteor: also METEOR (a second Java
    process, 5-15 s to load); clinical: run the CheXpert labeler F1; labeler: a replacement labeler for the clinical
    F1 (texts -> (N, 14) of 1/0/-1/NaN)."""

    def __init__(self, coco: bool = True, meteor: bool = True, clinical: bool = True,
                 labeler: Labeler | None = None) -> None:
        self.coco, self.meteor, self.clinical, self.labeler = coco, meteor, clinical, labeler
        self.reset()

    def reset(self) -> None:
        self._hyp: list[str] = []
        self._ref: list[str] = []
        self._n_invalid = self._n_empty_pred = self._n_empty_ref = 0

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        reference = require(target, "report", "ReportMetric")
        if not isinstance(reference, str):
            raise ValueError(f"ReportMetric: target 'report' must be a string, got {type(reference).__name__}")
        if not pred.valid:
            self._n_invalid += 1
            hypothesis = ""
        else:
            hypothesis = pred.text or pred.answer or ""
            self._n_empty_pred += not hypothesis.strip()
        if not reference.strip():
            self._n_empty_ref += 1
            return
        self._hyp.append(hypothesis.strip())
        self._ref.append(reference.strip())

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {
            "n": float(len(self._hyp)), "n_invalid": float(self._n_invalid),
            "n_empty_prediction": float(self._n_empty_pred), "n_empty_reference": float(self._n_empty_ref)}
        if self.coco:
            out.update(coco_scores(self._hyp, self._ref, meteor=self.meteor))
        out["sacrebleu"] = sacrebleu_corpus(self._hyp, self._ref)
        out["bleu_per_sample_lowercase"] = bleu_per_sample_lowercase(self._hyp, self._ref)
        if self.clinical:
            if self._hyp:
                out.update(clinical_f1(self._hyp, self._ref, self.labeler))
            else:
                out.update({k: math.nan for k in ("f1_14_micro", "f1_14_macro", "f1_5_micro", "f1_5_macro")})
        return out
