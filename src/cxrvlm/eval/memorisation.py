"""Memorisation in an evaluation: the share of generated reports and case notes that copy a run of
`metrics.memorisation.RUN` words found in only one training report or case note (patient-specific text).

    index = training_index("runs/curated")        # the train split's reference texts (None without a train split)
    by_task(records, index)                       # {task: {"n", "n_copied", "rate", "examples", ...,
                                                  #         "before_checks": {the same of what the model said}}}

A reference text is any example target's "report" (the report task's, the findings-then-report chain's step 2).
`rate` is of the texts given (a report that copied was replaced when the evaluation had a copy guard);
`before_checks` of what the model generated (`generated_before_check` of a replaced record), the model's own habit.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxrvlm.data.split import read_split
from cxrvlm.metrics.memorisation import CopyIndex, memorisation

log = logging.getLogger(__name__)


def training_index(data: str | Path) -> CopyIndex | None:
    """The copy index of the curated folder's training reports; None (with a warning) without a train split."""
    if not (Path(data) / "train.jsonl").is_file():
        log.warning("no train split in %s: memorisation is not measured", data)
        return None
    texts = {(e.study_id, e.target["report"]) for e in read_split(data, "train") if e.target.get("report")}
    return CopyIndex(text for _, text in sorted(texts))  # one document per study and text


def by_task(records: Sequence[dict[str, Any]], index: CopyIndex) -> dict[str, dict[str, Any]]:
    """Memorisation of each task's generated report texts (records whose target holds a reference report)."""
    given: dict[str, list[str]] = defaultdict(list)
    said: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if "skipped" not in r and (r.get("target") or {}).get("report") and r.get("generated"):
            given[r["task"]].append(str(r["generated"]))
            said[r["task"]].append(str(r.get("generated_before_check") or r["generated"]))
    return {task: {**memorisation(texts, index), "before_checks": memorisation(said[task], index, examples=0)}
            for task, texts in sorted(given.items())}
