"""Is the model reading the source? A linear probe on the model's pooled image features that tells the films'
sources apart.

Each film of the split (the first image of every example, once) is encoded by the model (`encode_images`) and its
image tokens are averaged (masked mean) into one vector: what the decoder reads, pooled. A multinomial logistic
regression (L2, standardised features) predicts the film's source from it, stratified k-fold cross-validated on the
split, and its balanced accuracy (mean recall over sources) is reported beside chance (1 / number of sources). Two
labellings: the curated `source`, and `by_source.source_key` (the tb set's Shenzhen / Montgomery / DA/DB films
apart). A source with fewer films than folds is left out (listed in `left_out`). Near chance: the features do not
carry the source; near 1: a head on them can tell where a film comes from, so a label that differs by source (TB
vs COVID-19) may be learnt from the source, not the disease.

    probe = source_probe(model, read_split("runs/curated", "val"))   # {"source": {...}, "source_key": {...}}
"""
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize

from cxrvlm.data.images import ImageCache
from cxrvlm.eval.by_source import example_source
from cxrvlm.examples import Example

log = logging.getLogger(__name__)

Labeller = Callable[[Example], str]
LABELLINGS: dict[str, Labeller] = {"source": lambda e: e.source, "source_key": example_source}


def films(examples: Sequence[Example]) -> list[Example]:
    """One example per film (its first image), in file order."""
    first: dict[str, Example] = {}
    for e in examples:
        if e.images:
            first.setdefault(e.images[0], e)
    return list(first.values())


def pooled_features(model: Any, found: Sequence[Example], batch_size: int = 8) -> tuple[list[Example], np.ndarray]:
    """(films read, (N, C) masked mean of each film's image tokens); a film that cannot be read is skipped."""
    cache = ImageCache(int(model.config.image_size))
    kept, rows = [], []
    for start in range(0, len(found), batch_size):
        chunk, views = [], []
        for e in found[start:start + batch_size]:
            try:
                views.append([cache.views(e)[0]])
                chunk.append(e)
            except (ValueError, OSError) as err:
                log.warning("source probe: skipping %s: %s", e.images[0], err)
        if chunk:
            rows.append(_pool(model.encode_images(views)))
            kept += chunk
    return kept, np.concatenate(rows) if rows else np.zeros((0, 0))


def _pool(features: Any) -> np.ndarray:
    tokens = np.asarray(features.tokens.detach().float().cpu().numpy(), dtype=np.float64)
    mask = np.asarray(features.mask.detach().cpu().numpy(), dtype=np.float64)[..., None]
    return (tokens * mask).sum(1) / np.maximum(mask.sum(1), 1.0)


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression, mean cross-entropy + l2 / (2 N) |W|^2 (scikit-learn's C = 1 / l2), fitted
    by L-BFGS; (W (C, K), b (K,)). Features are expected standardised."""
    n, d = x.shape
    onehot = np.eye(n_classes)[y]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-n_classes].reshape(d, n_classes), theta[-n_classes:]
        z = x @ w + b
        log_p = z - z.max(1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
        g = (np.exp(log_p) - onehot) / n
        value = -(onehot * log_p).sum() / n + 0.5 * l2 / n * (w ** 2).sum()
        return value, np.concatenate([(x.T @ g + l2 / n * w).ravel(), g.sum(0)])

    theta = minimize(loss, np.zeros(d * n_classes + n_classes), jac=True, method="L-BFGS-B",
                     options={"maxiter": 500}).x
    return theta[:-n_classes].reshape(d, n_classes), theta[-n_classes:]


def stratified_folds(y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """(N,) fold of each case: each class's cases shuffled and dealt round-robin over k folds."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), dtype=int)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = np.arange(len(idx)) % k
    return fold


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean over the true classes of the share predicted right."""
    return float(np.mean([(pred[y == c] == c).mean() for c in np.unique(y)]))


def cross_validated(x: np.ndarray, y: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Each case's predicted class from a probe fitted on the other folds (standardised on them)."""
    fold, pred = stratified_folds(y, k, seed), np.empty(len(y), dtype=int)
    for f in range(k):
        train, test = fold != f, fold == f
        mean, std = x[train].mean(0), x[train].std(0) + 1e-6
        w, b = fit_logistic((x[train] - mean) / std, y[train], int(y.max()) + 1)
        pred[test] = ((x[test] - mean) / std @ w + b).argmax(1)
    return pred


def probe_labels(x: np.ndarray, labels: Sequence[str], k: int = 5, seed: int = 0) -> dict[str, Any]:
    """Cross-validated balanced accuracy of telling `labels` apart from `x`, beside chance."""
    counts = Counter(labels)
    kept = sorted(c for c, n in counts.items() if n >= k)
    out: dict[str, Any] = {"films": dict(sorted(counts.items())), "left_out": sorted(set(counts) - set(kept)),
                           "folds": k, "balanced_accuracy": None, "accuracy": None, "chance": None}
    if len(kept) < 2:
        return out
    rows = np.array([i for i, s in enumerate(labels) if s in kept])
    y = np.array([kept.index(labels[i]) for i in rows])
    pred = cross_validated(x[rows], y, k, seed)
    out.update(balanced_accuracy=balanced_accuracy(y, pred), accuracy=float((pred == y).mean()),
               chance=1.0 / len(kept), n=len(rows))
    return out


def source_probe(model: Any, examples: Sequence[Example], k: int = 5, seed: int = 0,
                 batch_size: int = 8) -> dict[str, Any]:
    """The probe under each labelling (`LABELLINGS`): {labelling: {"balanced_accuracy", "chance", ...}}."""
    kept, x = pooled_features(model, films(examples), batch_size)
    return {name: probe_labels(x, [label(e) for e in kept], k, seed) for name, label in LABELLINGS.items()}
