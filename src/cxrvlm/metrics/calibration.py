"""Calibration of probabilities: expected calibration error, the reliability diagram's bins, temperature scaling.

    ece(y, p)                      # sum over equal-width bins of |mean p - share positive| x share of cases
    reliability(y, p)              # [(bin low, bin high, n, mean p, share positive)] of the non-empty bins
    fit_temperature(y, logits)     # T > 0 minimising the NLL of sigmoid(logits / T) (Guo et al., 2017)
    fit_platt(y, scores)           # (a, b) of sigmoid(a * logit(score) + b) (Platt scaling)
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar

BINS = 10  # equal-width bins: with a few hundred cases, more leaves most bins near empty
EPS = 1e-6


def _arrays(y: Sequence[float], p: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"calibration: labels {y.shape} and probabilities {p.shape} must be two equal 1-D arrays")
    if len(y) and (not np.all(np.isin(y, (0.0, 1.0))) or not np.all((p >= 0) & (p <= 1))):
        raise ValueError("calibration: labels must be 0/1 and probabilities in [0, 1]")
    return y, p


def reliability(y: Sequence[float], p: Sequence[float], bins: int = BINS) -> list[tuple[float, float, int, float,
                                                                                          float]]:
    """The reliability diagram's points: per non-empty bin of predicted probability, (low, high, cases, mean
    predicted probability, observed share of positives)."""
    y, p = _arrays(y, p)
    which = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        hit = which == b
        if hit.any():
            out.append((b / bins, (b + 1) / bins, int(hit.sum()), float(p[hit].mean()), float(y[hit].mean())))
    return out


def ece(y: Sequence[float], p: Sequence[float], bins: int = BINS) -> float:
    """Expected calibration error: the case-weighted mean gap between predicted probability and observed share over
    equal-width bins; nan without cases."""
    y, _ = _arrays(y, p)
    if not len(y):
        return float("nan")
    return float(sum(n * abs(mean_p - share) for _, _, n, mean_p, share in reliability(y, p, bins)) / len(y))


def fold_of(key: str, folds: int) -> int:
    """A stable cross-validation fold for a patient or study id (the first 8 hex digits of its SHA-1). Not
    `curate.split.bucket`: the curated splits are cut from that number, so every id of one split lies in one band of
    it and would fall in one fold."""
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % folds


def logit(p: Sequence[float]) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p / (1 - p))


def fit_temperature(y: Sequence[float], logits: Sequence[float]) -> float:
    """The temperature T (0.05 to 20) whose sigmoid(logits / T) has the lowest binary cross-entropy on (y, logits)."""
    y, z = np.asarray(y, np.float64), np.asarray(logits, np.float64)
    if not len(y) or y.min() == y.max():
        raise ValueError("fit_temperature needs positive and negative cases")

    def nll(log_t: float) -> float:
        q = np.clip(1 / (1 + np.exp(-z / np.exp(log_t))), EPS, 1 - EPS)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    return float(np.exp(minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded").x))


def platt(scores: Sequence[float], a: float, b: float) -> np.ndarray:
    """sigmoid(a * logit(score) + b)."""
    return 1 / (1 + np.exp(-(a * logit(scores) + b)))


def fit_platt(y: Sequence[float], scores: Sequence[float]) -> tuple[float, float]:
    """(a, b) minimising the binary cross-entropy of `platt(scores, a, b)` against y: Newton steps on the
    two-parameter logistic regression on logit(score), with Platt's (1999) smoothed targets (N+ + 1) / (N+ + 2) and
    1 / (N- + 2), so that a few negatives cannot make the fit a step function."""
    y, x = np.asarray(y, np.float64), logit(scores)
    if not len(y) or y.min() == y.max():
        raise ValueError("fit_platt needs positive and negative cases")
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    y = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    X = np.stack([x, np.ones_like(x)], 1)
    w = np.array([1.0, 0.0])
    for _ in range(50):
        q = 1 / (1 + np.exp(-X @ w))
        grad = X.T @ (q - y) + 1e-3 * w
        hess = X.T @ (X * (q * (1 - q))[:, None]) + 1e-3 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return float(w[0]), float(w[1])
