"""Timed training steps and generation on synthetic inputs of realistic shapes.

The two models are measured alternately (native step, HF step, native step, ...), so a change in the load other
processes put on the machine hits both alike; each figure is a median over the timed repetitions.
"""
from __future__ import annotations

import copy
import logging
import random
import statistics
import string
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


def synthetic_corpus(n_words: int = 20000, seed: int = 0) -> list[str]:
    """Pseudo-sentences of random lower-case words (3-10 letters): enough distinct pairs for BPE to reach a
    realistic vocabulary, without reading any data."""
    rng = random.Random(seed)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 10))) for _ in range(n_words)]
    return [" ".join(words[i : i + 12]) for i in range(0, n_words, 12)]


def synthetic_batch(vocab: int, first_text_id: int, batch: int, views: int, image_size: int, prompt_len: int,
                    answer_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch in the layout both backends' `collate` produce: pixel_values (B, M, 1, S, S) in [-1, 1],
    image_mask (B, M), input_ids / attention_mask / labels (B, T), prefix_lengths (B,); text ids are drawn
    from [first_text_id, vocab) and every example has the same length (no padding)."""
    g = torch.Generator().manual_seed(seed)
    T = prompt_len + answer_len
    ids = torch.randint(first_text_id, vocab, (batch, T), generator=g)
    labels = ids.clone()
    labels[:, :prompt_len] = -100
    return {"pixel_values": torch.rand(batch, views, 1, image_size, image_size, generator=g) * 2 - 1,
            "image_mask": torch.ones(batch, views, dtype=torch.bool), "input_ids": ids,
            "attention_mask": torch.ones(batch, T, dtype=torch.long), "labels": labels,
            "prefix_lengths": torch.full((batch,), prompt_len, dtype=torch.long)}


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor]) -> float:
    """One training step as the trainer takes it (per-example loss, mean, backward, AdamW); -> seconds."""
    t0 = time.perf_counter()
    model.train()
    _, per_example = model(**batch, reduction="none")
    optimizer.zero_grad(set_to_none=True)
    per_example.mean().backward()
    optimizer.step()
    return time.perf_counter() - t0


def time_training(models: dict[str, nn.Module], batch: dict[str, torch.Tensor], steps: int, warmup: int,
                  between: Callable[[], Any] | None = None) -> dict[str, float]:
    """Median seconds per training step of each model, steps interleaved across models; `between` runs after
    every timed round (the matmul peak is sampled there, under the load the steps ran under)."""
    opts = {k: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4) for k, m in models.items()}
    times: dict[str, list[float]] = {k: [] for k in models}
    for i in range(warmup + steps):
        for k, m in models.items():
            t = train_step(m, opts[k], batch)
            if i >= warmup:
                times[k].append(t)
        if between is not None and i >= warmup:
            between()
        log.debug("step %d: %s", i, {k: round(v[-1], 3) for k, v in times.items() if v})
    return {k: statistics.median(v) for k, v in times.items()}


def never_stopping(model: nn.Module) -> nn.Module:
    """A shallow copy of `model` whose tokenizer's <eos> id is -1, which no token has: a randomly initialised
    model may emit <eos> at any step, and every timed generation must produce all its tokens."""
    clone = copy.copy(model)
    clone.tokenizer = copy.copy(model.tokenizer)
    clone.tokenizer.eos_id = -1
    return clone


def time_generation(models: dict[str, nn.Module], image: np.ndarray, prompt: str, new_tokens: int,
                    repeats: int) -> dict[str, float]:
    """Median milliseconds of `generate([image], [prompt], new_tokens)` (batch 1, KV cache, the image encoded
    in the call), after one warm-up call each; calls interleaved across models."""
    runners: dict[str, Callable[[], Any]] = {}
    for k, m in models.items():
        clone = never_stopping(m)
        runners[k] = lambda clone=clone: clone.generate([image], [prompt], max_new_tokens=new_tokens,
                                                        return_scores=True)
    times: dict[str, list[float]] = {k: [] for k in models}
    for i in range(repeats + 1):
        for k, run in runners.items():
            t0 = time.perf_counter()
            _, scores = run()
            if i > 0:
                times[k].append((time.perf_counter() - t0) * 1000)
            if len(scores[0]) != new_tokens:
                raise ValueError(f"{k}: generated {len(scores[0])} tokens, not {new_tokens} (max_text_len too short "
                                 "for the prompt + new tokens?)")
    return {k: statistics.median(v) for k, v in times.items()}
