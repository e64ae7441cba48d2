"""Clinical efficacy of generated reports: micro / macro F1 over the 14 CheXpert observations (mF1-14) and over the
five of CheXpert's competition (mF1-5: Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion), with the
labels of the generated and the reference report extracted by the same labeler.

Convention (that of the `f1chexbert` package used to report mF1-14 for M4CXR, MAIRA-2, LLaVA-Rad, CheXagent, in its
"rrg" mode): a label is positive when the labeler says positive OR uncertain (1 or -1); negative, not mentioned and
blank are 0. "No Finding" is one of the 14. Micro F1 pools TP/FP/FN over the labels; macro F1 averages the per-label
F1 over the labels where it is defined (some reference or generated positive); the `f1chexbert` package (through
scikit-learn) counts an undefined label as 0 instead, which only differs on sets too small to contain every label.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from cxrvlm.metrics.chexpert_labeler import label_reports
from cxrvlm.metrics.common import div, f1_from_counts, slug
from cxrvlm.records import CHEXPERT_14

CHEXPERT_5 = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")

Labeler = Callable[[Sequence[str]], np.ndarray]


def binarize(labels: np.ndarray, uncertain_as_positive: bool = True) -> np.ndarray:
    """(N, L) of 1 / 0 / -1 / NaN -> (N, L) bool positives."""
    labels = np.asarray(labels, dtype=float)
    return (labels == 1) | ((labels == -1) & uncertain_as_positive)


def f1_table(pred: np.ndarray, ref: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Micro / macro precision, recall, F1 and per-label F1 of bool (N, L) predictions against bool (N, L) truth."""
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape or pred.ndim != 2 or pred.shape[1] != len(names):
        raise ValueError(f"f1_table: need two (N, {len(names)}) arrays, got {pred.shape} and {ref.shape}")
    tp = (pred & ref).sum(0)
    fp = (pred & ~ref).sum(0)
    fn = (~pred & ref).sum(0)
    per_label = [f1_from_counts(int(a), int(b), int(c)) for a, b, c in zip(tp, fp, fn)]
    defined = [f for f in per_label if not math.isnan(f)]
    out = {
        "micro_precision": div(tp.sum(), tp.sum() + fp.sum()), "micro_recall": div(tp.sum(), tp.sum() + fn.sum()),
        "micro_f1": f1_from_counts(int(tp.sum()), int(fp.sum()), int(fn.sum())),
        "macro_f1": float(np.mean(defined)) if defined else math.nan,
    }
    out.update({f"f1_{slug(n)}": f for n, f in zip(names, per_label)})
    return out


def clinical_f1(generated: Sequence[str], references: Sequence[str], labeler: Labeler | None = None,
                uncertain_as_positive: bool = True) -> dict[str, float]:
    """mF1-14 and mF1-5 of generated reports against their references (same order, same length).

    labeler: texts -> (N, 14) array of 1 / 0 / -1 / NaN in CHEXPERT_14 order; default the project's rule-based
    labeler (`chexpert_labeler.label_reports`). Keys: `f1_14_micro`, `f1_14_macro`, `f1_5_micro`, `f1_5_macro`,
    `precision_14_micro`, `recall_14_micro`, and per-label `chexpert_f1_<label>`."""
    if len(generated) != len(references):
        raise ValueError(f"clinical_f1: {len(generated)} generated reports but {len(references)} references")
    labeler = labeler or label_reports
    gen = binarize(labeler(list(generated)), uncertain_as_positive)
    ref = binarize(labeler(list(references)), uncertain_as_positive)
    if gen.shape != (len(generated), 14) or ref.shape != (len(references), 14):
        raise ValueError(f"clinical_f1: the labeler must return (N, 14) arrays, got {gen.shape} and {ref.shape}")
    t14 = f1_table(gen, ref, CHEXPERT_14)
    idx = [CHEXPERT_14.index(k) for k in CHEXPERT_5]
    t5 = f1_table(gen[:, idx], ref[:, idx], CHEXPERT_5)
    out = {"f1_14_micro": t14["micro_f1"], "f1_14_macro": t14["macro_f1"], "f1_5_micro": t5["micro_f1"],
           "f1_5_macro": t5["macro_f1"], "precision_14_micro": t14["micro_precision"],
           "recall_14_micro": t14["micro_recall"]}
    out.update({f"chexpert_{k}": v for k, v in t14.items() if k.startswith("f1_")})
    return out
