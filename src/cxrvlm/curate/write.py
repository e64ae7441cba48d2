"""Writing a curated dataset folder.

    DIR/train.jsonl, val.jsonl, test.jsonl   one `Example.to_json()` a line
    DIR/text.jsonl       report text of studies without images: {"source", "study_id", "patient_id", "text",
                         "split", "meta"}
    DIR/skipped.jsonl    every item left out, with {"kind", "source", "item", "reason", ...}; kinds: "source" (the
                         adapter skipped it), "study" (repeated id, nothing usable), "not_chest" (another organ), "duplicate", "task" (a task
                         failed on the study), "missing_image"
    DIR/manifest.json    command, sources, seed, split fractions, counts, cxrvlm version
    DIR/card.md + DIR/card/*.png   the data card (`cxrvlm.curate.card`)
"""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cxrvlm.about import VERSION
from cxrvlm.jsonl import clean, write_jsonl
from cxrvlm.curate.pipeline import Curated
from cxrvlm.curate.split import SPLITS


def counts(result: Curated) -> dict[str, Any]:
    """The figures the manifest and the card report."""
    per_task: dict[str, Counter] = {}
    per_source: dict[str, Counter] = {}
    per_source_task: dict[str, dict[str, Counter]] = {}
    patients: dict[str, set[str]] = {s: set() for s in SPLITS}
    for split, examples in result.examples.items():
        for ex in examples:
            per_task.setdefault(ex.task, Counter())[split] += 1
            per_source.setdefault(ex.source, Counter())[split] += 1
            per_source_task.setdefault(ex.source, {}).setdefault(ex.task, Counter())[split] += 1
            patients[split].add(ex.patient_id)
    return {
        "examples": {s: len(result.examples[s]) for s in SPLITS},
        "tasks": {t: {s: c[s] for s in SPLITS} for t, c in sorted(per_task.items())},
        "sources": {n: {s: c[s] for s in SPLITS} for n, c in sorted(per_source.items())},
        "source_tasks": {n: {t: {s: c[s] for s in SPLITS} for t, c in sorted(tasks.items())}
                         for n, tasks in sorted(per_source_task.items())},
        "patients": {s: len(patients[s]) for s in SPLITS},
        "studies": {s: sum(1 for v in result.study_split.values() if v == s) for s in SPLITS},
        "text": {s: sum(1 for t in result.text if t["split"] == s) for s in SPLITS},
        "skipped": dict(sorted(Counter(r["kind"] for r in result.skipped).items())),
        "duplicates": len(result.duplicates),
    }


def manifest(result: Curated) -> dict[str, Any]:
    c = result.config
    return {
        "cxrvlm_version": VERSION,
        "command": c.command,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": c.seed,
        "split": dict(zip(SPLITS, c.fractions)),
        "stratify": c.stratify,
        "on_duplicate": c.on_duplicate,
        "pixel_check": c.pixel_check,
        "limit": c.limit,
        "tasks": result.tasks,
        "sources": [vars(i) for i in result.sources],
        "counts": counts(result),
    }


def write_dataset(result: Curated) -> Path:
    """Write the jsonl files and manifest.json into `result.config.out`; returns the folder."""
    out = Path(result.config.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        write_jsonl(out / f"{split}.jsonl", [ex.to_json() for ex in result.examples[split]])
    write_jsonl(out / "text.jsonl", result.text)
    write_jsonl(out / "skipped.jsonl", result.skipped)
    (out / "manifest.json").write_text(json.dumps(clean(manifest(result)), indent=2, ensure_ascii=False) + "\n",
                                       encoding="utf-8")
    return out
