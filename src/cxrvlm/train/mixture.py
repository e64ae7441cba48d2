"""Task mixture: how often each task is drawn, and which examples form step t's batch.

Strategies (weights over tasks with n_i examples each):
- "inverse":      w_i ∝ 1 / n_i                (PaliGemma-CXR: every task seen about equally often)
- "proportional": w_i ∝ n_i                    (plain concatenation of the task datasets)
- "temperature":  w_i ∝ n_i ** (1 / T)         (T=1 proportional, T→∞ uniform)
- "fixed":        w_i given by the user        (M4CXR: 54% reports / 35% image understanding / 11% VQA)

A batch is a pure function of (seed, step), so a resumed run draws exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

import numpy as np

STRATEGIES = ("inverse", "proportional", "temperature", "fixed")


def mixture_weights(
    sizes: dict[str, int], strategy: str = "inverse", temperature: float = 2.0, fixed: dict[str, float] | None = None
) -> dict[str, float]:
    """Normalised sampling weight per task. Tasks with no examples get weight 0."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown mixture strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    tasks = [t for t, n in sizes.items() if n > 0]
    if not tasks:
        raise ValueError("mixture: no task has any example")
    if strategy == "inverse":
        raw = {t: 1.0 / sizes[t] for t in tasks}
    elif strategy == "proportional":
        raw = {t: float(sizes[t]) for t in tasks}
    elif strategy == "temperature":
        if temperature <= 0:
            raise ValueError(f"mixture temperature must be positive, got {temperature}")
        raw = {t: float(sizes[t]) ** (1.0 / temperature) for t in tasks}
    else:
        if not fixed:
            raise ValueError("mixture strategy 'fixed' needs mixture_ratios, e.g. {\"report\": 0.54, \"vqa\": 0.11}")
        unknown = sorted(set(fixed) - set(sizes))
        if unknown:
            raise ValueError(f"mixture_ratios name task(s) {unknown} that the data does not have; tasks: {sorted(sizes)}")
        if any(v < 0 for v in fixed.values()):
            raise ValueError("mixture_ratios must be non-negative")
        raw = {t: float(fixed.get(t, 0.0)) for t in tasks}
    total = sum(raw.values())
    if total <= 0:
        raise ValueError("mixture: all task weights are zero")
    return {t: raw.get(t, 0.0) / total for t in sizes}


def sample_batch(
    weights: dict[str, float], sizes: dict[str, int], batch_size: int, seed: int, step: int
) -> list[tuple[str, int]]:
    """The (task, example index) pairs of global batch `step`: tasks drawn by weight, examples uniformly."""
    rng = np.random.default_rng([seed, step])
    tasks = sorted(t for t, w in weights.items() if w > 0)
    p = np.array([weights[t] for t in tasks])
    picks = rng.choice(len(tasks), size=batch_size, p=p / p.sum())
    return [(tasks[k], int(rng.integers(sizes[tasks[k]]))) for k in picks]


def effective_ratios(weights: dict[str, float], sizes: dict[str, int], batch_size: int, seed: int, steps: int) -> dict[str, float]:
    """Share of each task among the examples actually drawn in steps 0..steps-1 (what gets logged)."""
    counts = {t: 0 for t in weights}
    for s in range(steps):
        for task, _ in sample_batch(weights, sizes, batch_size, seed, s):
            counts[task] += 1
    n = max(sum(counts.values()), 1)
    return {t: c / n for t, c in counts.items()}
