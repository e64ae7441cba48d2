"""Memorisation of training text: does a generated report copy a run of words that only one training report or case
note holds (patient-specific text), rather than the stock phrases many reports share?

    index = CopyIndex(training_texts)            # every RUN-word run of every training document
    index.copied(generated_text)                 # the runs it shares with exactly one training document
    memorisation(generated_texts, index)         # {"n", "n_copied", "rate", "examples"}
    guard = CopyGuard.from_index(index)          # the same single-document runs, kept only as 64-bit hashes
    guard.copied(generated_text)                 # as index.copied, without holding any training text

Words are lower-cased runs of letters and digits, so punctuation and spacing do not hide a copy.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

RUN = 12  # consecutive words: longer than the stock sentences templated and normal reports repeat
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(str(text).lower())


def runs(text: str, n: int = RUN) -> set[tuple[str, ...]]:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


class CopyIndex:
    """How many training documents hold each RUN-word run (counted up to 2: one or several). A document is one
    patient's text: the same words in two patients' reports (a template, a stock normal) are two documents."""

    def __init__(self, documents: Iterable[str], n: int = RUN) -> None:
        self.n = n
        self.count: dict[tuple[str, ...], int] = {}
        self.documents = 0
        for text in (str(d) for d in documents if d):
            self.documents += 1
            for run in runs(text, n):
                self.count[run] = min(self.count.get(run, 0) + 1, 2)

    def copied(self, text: str) -> list[str]:
        """The runs of `text` found in exactly one training document, as text."""
        return [" ".join(r) for r in sorted(runs(text, self.n)) if self.count.get(r) == 1]


def memorisation(generated: Sequence[str], index: CopyIndex, examples: int = 3) -> dict[str, Any]:
    """Share of generated texts that copy at least one run found in a single training document."""
    hits = [(t, index.copied(t)) for t in generated]
    copied = [(t, c) for t, c in hits if c]
    return {"n": len(generated), "n_copied": len(copied), "rate": len(copied) / len(generated) if generated else None,
            "run_words": index.n, "training_documents": index.documents,
            "examples": [{"generated": t[:300], "copied_run": c[0]} for t, c in copied[:examples]]}


def run_hash(run: Sequence[str]) -> int:
    """64 bits of the run's BLAKE2b digest: at ~10^4 runs a false match is ~10^-11 per run looked up."""
    return int.from_bytes(hashlib.blake2b(" ".join(run).encode(), digest_size=8).digest(), "little")


class CopyGuard:
    """The runs that only one training document holds, as sorted 64-bit hashes: a model can ship it and check its
    own reports at reading time without carrying any patient's text."""

    def __init__(self, hashes: Iterable[int] | np.ndarray, n: int = RUN) -> None:
        self.n = int(n)
        self.hashes = np.unique(np.asarray(list(hashes) if not isinstance(hashes, np.ndarray) else hashes,
                                           dtype=np.uint64))

    @classmethod
    def from_index(cls, index: CopyIndex) -> CopyGuard:
        return cls((run_hash(r) for r, c in index.count.items() if c == 1), index.n)

    def copied(self, text: str) -> list[str]:
        """The runs of `text` that one training document holds, as text (sorted)."""
        found = sorted(runs(text, self.n))
        if not found or not len(self.hashes):
            return []
        keys = np.array([run_hash(r) for r in found], dtype=np.uint64)
        at = np.minimum(np.searchsorted(self.hashes, keys), len(self.hashes) - 1)
        return [" ".join(r) for r, hit in zip(found, self.hashes[at] == keys) if hit]
