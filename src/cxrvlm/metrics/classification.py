"""Classification metrics: accuracy, sensitivity / specificity / F1, AUROC with a bootstrap 95% CI, and the operating
point of a screening test chosen on validation data and applied unchanged to test data.

Target of `ClassificationMetric.update`: `{"label": str, "candidates": [str, ...], "positive": str (optional)}`; the
metric's own `candidates` / `positive` (given at construction) are the reference. Prediction fields read:
`pred.valid`, `pred.label`, `pred.extra["probs"]` (candidate -> probability, the model's normalised likelihood of each
candidate answer).

Conventions (stated because they change the numbers):
- An invalid prediction (malformed text, or a label outside `candidates`) is counted in `n_invalid` and is wrong: in
  the binary view (when `positive` is given) it is a false negative on a positive case and a false positive on a
  negative case; in the per-class one-vs-rest view it predicts no class.
- Scores for AUROC are `probs` when the prediction carries them (even when its text was malformed: the likelihoods
  are still a valid score); otherwise the hard label (1 for the predicted class, 0 else), and 1/C for every class
  when the prediction is invalid and has no probabilities (ranks it as a tie, uninformative).
- AUROC is the Mann-Whitney statistic (ties count 1/2); NaN when one of the two classes is absent.
- Bootstrap CIs are percentile intervals over `n_boot` resamples (seeded). AUROC resamples are stratified by the
  true class (positives and negatives resampled separately, so every resample has both and the AUROC is defined);
  accuracy resamples are plain (resample the cases).
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from cxrvlm.metrics.common import div, f1_from_counts, require, slug
from cxrvlm.examples import Prediction

log = logging.getLogger(__name__)


def _binary_arrays(y: Sequence[float], score: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=float).ravel()
    s_arr = np.asarray(score, dtype=float).ravel()
    if y_arr.shape != s_arr.shape:
        raise ValueError(f"y and score must have the same length, got {y_arr.size} and {s_arr.size}")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("y must contain only 0 (negative) and 1 (positive)")
    if not np.isfinite(s_arr).all():
        raise ValueError("score contains NaN or infinite values")
    return y_arr.astype(int), s_arr


def auroc(y: Sequence[float], score: Sequence[float]) -> float:
    """Area under the ROC curve, rank-based (Mann-Whitney U / (n_pos * n_neg)); tied scores count 1/2.

    y: (N,) 0/1 truth; score: (N,) higher = more likely positive. NaN when y has no positives or no negatives."""
    y_arr, s_arr = _binary_arrays(y, score)
    n_pos = int(y_arr.sum())
    n_neg = y_arr.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(s_arr)  # average ranks: ties share their rank
    return float((ranks[y_arr == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(y: Sequence[float], score: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds descending, starting at +inf (nothing called positive).

    A case is called positive when score >= threshold."""
    y_arr, s_arr = _binary_arrays(y, score)
    thresholds = np.concatenate([[np.inf], np.unique(s_arr)[::-1]])
    n_pos, n_neg = int(y_arr.sum()), int((1 - y_arr).sum())
    called = s_arr[None, :] >= thresholds[:, None]  # (T, N)
    tpr = called[:, y_arr == 1].sum(1) / n_pos if n_pos else np.full(len(thresholds), np.nan)
    fpr = called[:, y_arr == 0].sum(1) / n_neg if n_neg else np.full(len(thresholds), np.nan)
    return fpr, tpr, thresholds


def binary_at_threshold(y: Sequence[float], score: Sequence[float], threshold: float) -> dict[str, float]:
    """Sensitivity, specificity, accuracy, PPV, NPV and the counts when `score >= threshold` is called positive."""
    y_arr, s_arr = _binary_arrays(y, score)
    called = s_arr >= threshold
    tp = int((called & (y_arr == 1)).sum())
    fp = int((called & (y_arr == 0)).sum())
    tn = int((~called & (y_arr == 0)).sum())
    fn = int((~called & (y_arr == 1)).sum())
    return {
        "sensitivity": div(tp, tp + fn), "specificity": div(tn, tn + fp), "accuracy": div(tp + tn, y_arr.size),
        "ppv": div(tp, tp + fp), "npv": div(tn, tn + fn),
        "tp": float(tp), "fp": float(fp), "tn": float(tn), "fn": float(fn),
    }


def choose_threshold(y: Sequence[float], score: Sequence[float], min_sensitivity: float = 0.9) -> float:
    """The operating point of a screening test, chosen on validation data: among the observed scores used as
    thresholds (positive when score >= t), those reaching sensitivity >= `min_sensitivity`; of these the one with
    the highest specificity, then the highest sensitivity. WHO's TB triage target is sensitivity >= 0.9.

    Apply the returned threshold unchanged to test data with `binary_at_threshold`. ValueError when y has no
    positives (no sensitivity to reach)."""
    if not 0.0 <= min_sensitivity <= 1.0:
        raise ValueError(f"min_sensitivity must be in [0, 1], got {min_sensitivity}")
    y_arr, s_arr = _binary_arrays(y, score)
    if y_arr.sum() == 0:
        raise ValueError("choose_threshold: y has no positive cases, so no sensitivity can be reached")
    best: tuple[float, float, float] | None = None  # (specificity, sensitivity, threshold)
    for t in np.unique(s_arr):
        r = binary_at_threshold(y_arr, s_arr, float(t))
        spec = -1.0 if math.isnan(r["specificity"]) else r["specificity"]
        if r["sensitivity"] + 1e-12 >= min_sensitivity and (best is None or (spec, r["sensitivity"]) > best[:2]):
            best = (spec, r["sensitivity"], float(t))
    assert best is not None  # the lowest score calls every case positive: sensitivity 1
    return best[2]


FAST_N_BOOT = 200  # resamples for quick runs and tests (the default 1000 is for reported figures)


def bootstrap_ci(fn: Callable[..., float], *arrays: Sequence[Any], n_boot: int = 1000, alpha: float = 0.05,
                 seed: int = 0, strata: Sequence[Any] | None = None) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of `fn(*arrays)`, resampling the N cases with replacement.

    arrays: each (N, ...), resampled with the same indices. strata: (N,) group of each case; when given, each
    group is resampled separately (stratified bootstrap: group sizes stay fixed). Resamples where fn is NaN are
    dropped; (NaN, NaN) when fewer than half are left or N == 0."""
    if n_boot < 1 or not 0 < alpha < 1:
        raise ValueError(f"bootstrap_ci: need n_boot >= 1 and 0 < alpha < 1, got {n_boot}, {alpha}")
    arrs = [np.asarray(a) for a in arrays]
    n = len(arrs[0]) if arrs else 0
    if any(len(a) != n for a in arrs):
        raise ValueError("bootstrap_ci: all arrays must have the same length")
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if strata is None else [np.flatnonzero(np.asarray(strata) == g) for g in
                                                     np.unique(np.asarray(strata))]
    stats = []
    for _ in range(n_boot):
        idx = np.concatenate([g[rng.integers(0, len(g), len(g))] for g in groups])
        v = fn(*(a[idx] for a in arrs))
        if not math.isnan(v):
            stats.append(v)
    if len(stats) < n_boot / 2:
        return math.nan, math.nan
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _macro_ovr_auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """Mean one-vs-rest AUROC over the classes (columns of scores (N, C)) present and absent in y (N,)."""
    vals = [auroc(y == c, scores[:, c]) for c in range(scores.shape[1])]
    vals = [v for v in vals if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


class ClassificationMetric:
    """Accumulates (prediction, target) pairs of a classification task; see the module docstring for conventions.

    candidates: the class names; positive: the class of a binary screening view (e.g. "tuberculosis"), enabling
    sensitivity/specificity/F1 of that class, its AUROC and the operating point; threshold: an operating point chosen
    on validation data, reported on this data as `*_at_threshold`; min_sensitivity: target for `chosen_threshold`
    (the operating point this data would give, to carry to test data)."""

    def __init__(self, candidates: Sequence[str], positive: str | None = None, threshold: float | None = None,
                 min_sensitivity: float = 0.9, n_boot: int = 1000, seed: int = 0) -> None:
        self.candidates = [str(c) for c in candidates]
        if len(self.candidates) < 2 or len(set(self.candidates)) != len(self.candidates):
            raise ValueError(f"ClassificationMetric: need >= 2 distinct candidates, got {self.candidates}")
        if positive is not None and positive not in self.candidates:
            raise ValueError(f"ClassificationMetric: positive {positive!r} is not one of {self.candidates}")
        self.positive, self.threshold = positive, threshold
        self.min_sensitivity, self.n_boot, self.seed = min_sensitivity, n_boot, seed
        self.reset()

    def reset(self) -> None:
        self._y: list[int] = []
        self._pred: list[int] = []  # index into candidates, -1 = invalid
        self._scores: list[np.ndarray] = []

    def update(self, pred: Prediction, target: dict[str, Any]) -> None:
        label = require(target, "label", "ClassificationMetric")
        if label not in self.candidates:
            raise ValueError(f"ClassificationMetric: target label {label!r} is not one of {self.candidates}")
        c = len(self.candidates)
        p = self.candidates.index(pred.label) if pred.valid and pred.label in self.candidates else -1
        probs = pred.extra.get("probs") if isinstance(pred.extra, dict) else None
        if probs:
            score = np.array([float(probs.get(k, 0.0)) for k in self.candidates])
            if not np.isfinite(score).all():
                raise ValueError(f"ClassificationMetric: prediction probs are not finite: {probs}")
        elif p >= 0:
            score = np.eye(c)[p]
        else:
            score = np.full(c, 1.0 / c)
        self._y.append(self.candidates.index(label))
        self._pred.append(p)
        self._scores.append(score)

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """(y (N,) class index, scores (N, C)) of the cases seen so far."""
        c = len(self.candidates)
        return np.asarray(self._y, dtype=int), np.asarray(self._scores, dtype=float).reshape(-1, c)

    def confusion(self) -> np.ndarray:
        """(C, C + 1) counts: row = true class, column = predicted class, last column = invalid."""
        c = len(self.candidates)
        m = np.zeros((c, c + 1), dtype=int)
        for t, p in zip(self._y, self._pred):
            m[t, p if p >= 0 else c] += 1
        return m

    def compute(self) -> dict[str, float]:
        y, scores = self.scores()
        pred = np.asarray(self._pred, dtype=int)
        correct = (pred == y).astype(float)
        out: dict[str, float] = {"n": float(len(y)), "n_invalid": float((pred < 0).sum()),
                                 "accuracy": float(correct.mean()) if len(y) else math.nan}
        lo, hi = bootstrap_ci(np.mean, correct, n_boot=self.n_boot, seed=self.seed)
        out.update(accuracy_ci_low=lo, accuracy_ci_high=hi)
        f1s = []
        for i, name in enumerate(self.candidates):
            tp = int(((pred == i) & (y == i)).sum())
            fp = int(((pred == i) & (y != i)).sum())
            fn = int(((pred != i) & (y == i)).sum())
            tn = len(y) - tp - fp - fn
            k = slug(name)
            out[f"sensitivity_{k}"], out[f"specificity_{k}"] = div(tp, tp + fn), div(tn, tn + fp)
            out[f"precision_{k}"], out[f"f1_{k}"] = div(tp, tp + fp), f1_from_counts(tp, fp, fn)
            out[f"auroc_{k}"] = auroc(y == i, scores[:, i]) if len(y) else math.nan
            f1s.append(out[f"f1_{k}"])
        defined = [f for f in f1s if not math.isnan(f)]
        out["f1_macro"] = float(np.mean(defined)) if defined else math.nan
        if self.positive is None:
            out["auroc"] = _macro_ovr_auroc(y, scores) if len(y) else math.nan
            lo, hi = bootstrap_ci(_macro_ovr_auroc, y, scores, n_boot=self.n_boot, seed=self.seed, strata=y)
            out.update(auroc_ci_low=lo, auroc_ci_high=hi)
        else:
            out.update(self._binary(y, pred, scores))
        return out

    def _binary(self, y: np.ndarray, pred: np.ndarray, scores: np.ndarray) -> dict[str, float]:
        i = self.candidates.index(self.positive)
        yb, sb = (y == i).astype(int), scores[:, i]
        called = (pred == i) | ((pred < 0) & (yb == 0))  # invalid = wrong: FP on a negative, FN on a positive
        tp, fp = int((called & (yb == 1)).sum()), int((called & (yb == 0)).sum())
        fn, tn = int((~called & (yb == 1)).sum()), int((~called & (yb == 0)).sum())
        out = {"sensitivity": div(tp, tp + fn), "specificity": div(tn, tn + fp), "precision": div(tp, tp + fp),
               "f1": f1_from_counts(tp, fp, fn), "auroc": auroc(yb, sb) if len(y) else math.nan}
        lo, hi = bootstrap_ci(auroc, yb, sb, n_boot=self.n_boot, seed=self.seed, strata=yb)
        out.update(auroc_ci_low=lo, auroc_ci_high=hi)
        if yb.sum() > 0:
            t = choose_threshold(yb, sb, self.min_sensitivity)
            r = binary_at_threshold(yb, sb, t)
            out.update(chosen_threshold=t, chosen_threshold_sensitivity=r["sensitivity"],
                       chosen_threshold_specificity=r["specificity"])
        if self.threshold is not None and len(y):
            r = binary_at_threshold(yb, sb, self.threshold)
            out.update(threshold=float(self.threshold), sensitivity_at_threshold=r["sensitivity"],
                       specificity_at_threshold=r["specificity"], accuracy_at_threshold=r["accuracy"])
        return out
