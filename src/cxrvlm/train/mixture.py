"""Task mixture: how often each task is drawn, and which examples form step t's batch.

Strategies (weights over tasks with n_i examples each):
- "inverse":      w_i ∝ 1 / n_i                (PaliGemma-CXR: every task seen about equally often)
- "proportional": w_i ∝ n_i                    (plain concatenation of the task datasets)
- "temperature":  w_i ∝ n_i ** (1 / T)         (T=1 proportional, T→∞ uniform)
- "fixed":        w_i given by the user        (M4CXR: 54% reports / 35% image understanding / 11% VQA)

Within a task, examples are drawn uniformly, or (`balance_answers`) so every answer of a close-ended question type
gets an equal share of that type's draws (`answer_balance`).

A batch is a pure function of (seed, step), so a resumed run draws exactly the batches an uninterrupted run would.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from cxrvlm.examples import Example
from cxrvlm.tasks.base import question_type

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


MAX_ANSWER_BOOST = 5.0  # a rare answer is drawn at most this many times as often as uniform drawing would


def answer_balance(examples: Sequence[Example]) -> np.ndarray | None:
    """Drawing weights over one task's examples that give every answer of a close-ended question type an equal
    share of that type's draws (each type keeps its share of the task; a rare answer's boost is capped at
    MAX_ANSWER_BOOST); None when no example has a question type. So "pa" stops being the safe answer to every
    projection question."""
    keys = [(question_type(e.target), str(e.target.get("answer", "")).strip().lower()) for e in examples]
    if all(kind is None for kind, _ in keys):
        return None
    per_answer = Counter(keys)
    per_type = Counter(kind for kind, _ in keys)
    answers = Counter(kind for kind, _ in per_answer)
    w = np.array([1.0 if kind is None else min(per_type[kind] / (answers[kind] * per_answer[(kind, a)]),
                                                MAX_ANSWER_BOOST) for kind, a in keys])
    return w / w.sum()


def sample_batch(
    weights: dict[str, float], sizes: dict[str, int], batch_size: int, seed: int, step: int,
    example_weights: Mapping[str, np.ndarray | None] | None = None,
) -> list[tuple[str, int]]:
    """The (task, example index) pairs of global batch `step`: tasks drawn by weight, examples uniformly or by
    `example_weights[task]` (`answer_balance`)."""
    rng = np.random.default_rng([seed, step])
    tasks = sorted(t for t, w in weights.items() if w > 0)
    p = np.array([weights[t] for t in tasks])
    picks = rng.choice(len(tasks), size=batch_size, p=p / p.sum())
    out = []
    for k in picks:
        task = tasks[k]
        within = (example_weights or {}).get(task)
        index = rng.choice(sizes[task], p=within) if within is not None else rng.integers(sizes[task])
        out.append((task, int(index)))
    return out


def effective_ratios(weights: dict[str, float], sizes: dict[str, int], batch_size: int, seed: int, steps: int) -> dict[str, float]:
    """Share of each task among the examples actually drawn in steps 0..steps-1 (what gets logged)."""
    counts = {t: 0 for t in weights}
    for s in range(steps):
        for task, _ in sample_batch(weights, sizes, batch_size, seed, s):
            counts[task] += 1
    n = max(sum(counts.values()), 1)
    return {t: c / n for t, c in counts.items()}
