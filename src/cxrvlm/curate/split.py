"""Patient-level train/val/test splits, deterministic by seed.

Every patient falls in exactly one split. Patients are linked into groups that must share a split: the same
patient id seen in several sources (``shenzhen:CHNCXR_0002`` in `tb` and `shenzhen_lungs`), a study and its prior
(the prior belongs to the same person even when an adapter names it differently), and studies that hold the same
image (an exact duplicate means one person). A group's split depends only on the seed and the group's key (its
smallest patient id), never on the order the data was read in:

- unstratified: the group's bucket ``sha256(f"{seed}:{key}") -> [0, 1)`` is compared with the cumulative split
  fractions, so adding data never moves an existing patient;
- stratified (the default): groups are ranked by bucket within their stratum (the sources they appear in), and each
  stratum is cut by the fractions, with at least one group in every split with a non-zero fraction when the
  stratum has enough groups. Every source of three or more patients then lands in all three splits.
"""
from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

SPLITS = ("train", "val", "test")


def parse_fractions(text: str | Sequence[float]) -> tuple[float, float, float]:
    """"0.8,0.1,0.1" (or three numbers) -> (train, val, test) fractions; ValueError unless three numbers >= 0 that
    sum to 1 (within 1e-6) with a positive train fraction."""
    if isinstance(text, str):
        parts = [p.strip() for p in text.split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"--split {text!r}: expected three numbers such as 0.8,0.1,0.1") from None
    else:
        values = [float(v) for v in text]
    if len(values) != 3:
        raise ValueError(f"--split {text!r}: expected three fractions (train,val,test), got {len(values)}")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"--split {text!r}: fractions must be finite and >= 0")
    if abs(sum(values) - 1.0) > 1e-6:
        raise ValueError(f"--split {text!r}: fractions sum to {sum(values):g}, not 1")
    if values[0] <= 0:
        raise ValueError(f"--split {text!r}: the train fraction must be positive")
    return values[0], values[1], values[2]


def bucket(seed: int, key: str) -> float:
    """Deterministic uniform number in [0, 1) for (seed, key): the first 8 bytes of SHA-256, over 2**64."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class PatientLinks:
    """Union-find over patient ids: `link(a, b)` puts a and b in one group; `key(a)` is the group's smallest id."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}

    def add(self, patient_id: str) -> None:
        self._parent.setdefault(patient_id, patient_id)

    def _root(self, patient_id: str) -> str:
        self.add(patient_id)
        root = patient_id
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[patient_id] != root:  # path compression
            self._parent[patient_id], patient_id = root, self._parent[patient_id]
        return root

    def link(self, a: str, b: str) -> None:
        ra, rb = self._root(a), self._root(b)
        if ra != rb:
            # the smaller id becomes the root, so a group's key does not depend on the order of links
            lo, hi = sorted((ra, rb))
            self._parent[hi] = lo

    def key(self, patient_id: str) -> str:
        return self._root(patient_id)

    def groups(self) -> dict[str, list[str]]:
        """Group key -> its patient ids (sorted)."""
        out: dict[str, list[str]] = defaultdict(list)
        for pid in sorted(self._parent):
            out[self._root(pid)].append(pid)
        return dict(out)


def _allocate(n: int, fractions: Sequence[float]) -> list[int]:
    """Split n items by fractions (largest remainder), then give each split with a positive fraction at least one
    item when n allows, taking it from the largest split."""
    raw = [n * f for f in fractions]
    counts = [int(math.floor(r)) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    if n >= len(wanted):
        for i in wanted:
            if counts[i] == 0:
                donor = max(range(len(counts)), key=lambda j: (counts[j], -j))
                counts[donor] -= 1
                counts[i] += 1
    return counts


def _by_threshold(keys: Iterable[str], fractions: Sequence[float], seed: int) -> dict[str, str]:
    edges = [sum(fractions[: i + 1]) for i in range(len(fractions))]
    out = {}
    for key in keys:
        b = bucket(seed, key)
        out[key] = next((SPLITS[i] for i, e in enumerate(edges) if b < e), SPLITS[len(edges) - 1])
    return out


def assign_splits(groups: Mapping[str, Iterable[str]], fractions: Sequence[float], seed: int = 0,
                  stratify: bool = True) -> dict[str, str]:
    """Group key -> "train" / "val" / "test".

    `groups` maps each group key to the sources its studies come from (the stratum when `stratify`).
    """
    fractions = parse_fractions(fractions)
    if not stratify:
        return _by_threshold(groups, fractions, seed)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, sources in groups.items():
        strata["+".join(sorted(set(sources)))].append(key)
    out: dict[str, str] = {}
    for stratum in sorted(strata):
        ranked = sorted(strata[stratum], key=lambda k: (bucket(seed, k), k))
        counts = _allocate(len(ranked), fractions)
        start = 0
        for split, count in zip(SPLITS, counts):
            for key in ranked[start: start + count]:
                out[key] = split
            start += count
    return out
